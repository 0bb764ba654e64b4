"""Deterministic reproductions of what the soak (test_soak.py) catches only now and then,
depending on timing: each isolates one situation Codex's writers create."""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path

import pytest

from codex_indexd.store.status_file import read_status
from tests.support.codexsim import Rollout, date_dir, rollout_file_name
from tests.support.daemons import Spawn
from tests.support.homes import build_home, new_thread, rollout_name, rollout_path
from tests.support.waiting import wait_for

from .test_watch_resilience import history_keys, in_history, indexed, latest_names


def test_thread_seen_before_its_first_turn_gets_its_title(tmp_path: Path, spawn: Spawn) -> None:
    """Codex writes a rollout one line per write(2), session_meta first; a paginated fork has
    no user message at all until the user types. When the daemon reconciles in between, the
    thread has no title yet. Once the first user turn arrives, the index must name the thread
    after it, not after its id (and the daemon's own placeholder is not a user rename)."""
    home = build_home(tmp_path / "home", [new_thread(0, turns=1)], db=False)
    daemon = spawn(home, "--debounce-ms", "50")
    daemon.wait_ready()
    wait_for(lambda: (read_status(home) or {}).get("sessions") == 1, 10, "the start-up reconcile")
    tid = "0195f0a2-1111-7222-8333-444455556666"
    rollout = Rollout(tid, paginated=True)
    now = time.time()
    name = rollout_file_name(tid, now)
    path = home / date_dir(name) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rollout.head(now), encoding="utf-8")  # session_meta + injected context
    wait_for(
        lambda: (read_status(home) or {}).get("sessions") == 2,
        10,
        "a reconcile that saw the new rollout",
    )
    first, rest = rollout.turn("fix the login bug", time.time())
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(first + rest)
    wait_for(
        lambda: (tid, "fix the login bug") in history_keys(home), 10, "the first turn in history"
    )
    assert latest_names(home).get(tid) == "fix the login bug", latest_names(home).get(tid)
    daemon.check_alive()
    assert daemon.terminate() == 0


@pytest.mark.parametrize("watcher", ["inotify", "polling"])
def test_unarchive_move_alone_is_picked_up(tmp_path: Path, spawn: Spawn, watcher: str) -> None:
    """Codex unarchives by renaming the rollout back into sessions/YYYY/MM/DD (same inode,
    same bytes). With nothing else happening, and no DB row that changes, that move alone
    must bring the thread back into the index and its turns into history. (Several rounds:
    whether the daemon sees the old or the new path first varies from run to run.)"""
    live = new_thread(0, turns=1)
    archived = [new_thread(i, turns=1, archived=True) for i in range(1, 7)]  # all on live's day
    home = build_home(tmp_path / "home", [live, *archived], db=False)
    args = ["--poll"] if watcher == "polling" else []
    daemon = spawn(home, *args, env={"CODEX_INDEXD_POLL_INTERVAL_S": "0.3"})
    daemon.wait_ready()
    wait_for(lambda: live.thread_id in latest_names(home), 10, "the start-up reconcile")
    assert not {t.thread_id for t in archived} & set(latest_names(home))
    for n, thread in enumerate(archived):
        target = rollout_path(home, thread, archived=False)
        assert target.parent.is_dir()  # no new directory: only the move itself can be seen
        os.rename(home / "archived_sessions" / rollout_name(thread), target)
        wait_for(
            partial(indexed, home, thread.thread_id),
            10,
            f"round {n}: the unarchived thread in the index",
        )
        key = (thread.thread_id, thread.turns[0].text)
        wait_for(
            partial(in_history, home, key),
            5,
            f"round {n}: the unarchived thread's turn in history",
        )
    daemon.check_alive()
    assert daemon.terminate() == 0
