"""The watcher under stress: inotify failing to start (ENOSPC) falls back to polling and says
so in `status --json`, and a sessions/ directory deleted and recreated again and again keeps
being watched, without leaking descriptors or threads."""

from __future__ import annotations

import os
import shutil
import time
from functools import partial
from pathlib import Path

import pytest

from codex_indexd.store.status_file import read_status
from tests.support.codexsim import Rollout, append_index, index_line, iso
from tests.support.daemons import Spawn, log_records
from tests.support.homes import (
    Thread,
    build_home,
    new_thread,
    rollout_name,
    rollout_path,
    write_rollout,
)
from tests.support.waiting import wait_for

from .harness import jsonl_objects, read_locked, status_cli


def append_turn(path: Path, thread: Thread, text: str) -> None:
    """Append a user turn in the thread's format (continuing the paginated ordinals)."""
    ordinal = path.read_bytes().count(b"\n") if thread.paginated else 0
    first, rest = Rollout(thread.thread_id, paginated=thread.paginated, ordinal=ordinal).turn(
        text, time.time()
    )
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, (first + rest).encode("utf-8"))
    finally:
        os.close(fd)


def latest_names(home: Path) -> dict[str, str]:
    return {o["id"]: o["thread_name"] for o in jsonl_objects(read_locked(home)[0])}


def history_keys(home: Path) -> set[tuple[object, object]]:
    return {(o.get("session_id"), o.get("text")) for o in jsonl_objects(read_locked(home)[1])}


def indexed(home: Path, thread_id: str) -> bool:
    """True when session_index.jsonl has a line for `thread_id`."""
    return thread_id in latest_names(home)


def in_history(home: Path, key: tuple[str, str]) -> bool:
    """True when history.jsonl has the turn `key` (session id, text)."""
    return key in history_keys(home)


def task_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_inotify_enospc_falls_back_to_polling_and_keeps_up(
    tmp_path: Path, spawn: Spawn, log_dir: Path
) -> None:
    seed, other = new_thread(0, turns=1), new_thread(1, turns=1, paginated=True)
    home = build_home(tmp_path / "home", [seed, other], db=False)
    daemon = spawn(
        home, env={"CODEX_INDEXD_POLL_INTERVAL_S": "0.5"}, seams=["inotify-errno=ENOSPC"]
    )
    daemon.wait_ready()

    (warning,) = log_records(log_dir, "watch.inotify_unavailable")
    assert warning["fallback"] == "polling"
    assert "fs.inotify.max_user_watches" in warning["reason"] and "sudo sysctl" in warning["reason"]
    assert log_records(log_dir, "watch.polling")
    record = read_status(home) or {}
    assert record.get("polling") is True, record

    _, report = status_cli(home)
    (home_report,) = report["homes"]
    assert home_report["daemon_pid"] == daemon.pid
    watcher = home_report["watcher"] or ""
    assert "polling" in watcher, watcher
    assert "sysctl" in watcher and "fs.inotify.max_user_watches" in watcher, watcher
    wait_for(
        lambda: {seed.thread_id, other.thread_id} <= set(latest_names(home)),
        10,
        "the start-up reconcile",
    )

    # Changes keep being picked up, by polling alone.
    started = time.monotonic()
    fresh = new_thread(3 * 24 * 60, turns=2)  # a new day directory
    write_rollout(home, fresh)
    wait_for(
        lambda: latest_names(home).get(fresh.thread_id) == fresh.turns[0].text.strip(),
        10,
        "a new rollout, by polling",
    )
    append_turn(rollout_path(home, other), other, "a turn seen by polling")
    wait_for(
        lambda: (other.thread_id, "a turn seen by polling") in history_keys(home),
        10,
        "an appended turn, by polling",
    )
    assert append_index(home, index_line(seed.thread_id, "renamed while polling", iso(time.time())))
    append_turn(rollout_path(home, seed), seed, "after the rename")
    wait_for(
        lambda: (seed.thread_id, "after the rename") in history_keys(home),
        10,
        "a turn after a rename",
    )
    assert latest_names(home)[seed.thread_id] == "renamed while polling"
    # Archive (a move out of sessions/) and unarchive (a move back), then a new thread.
    (home / "archived_sessions").mkdir(exist_ok=True)
    os.rename(rollout_path(home, fresh), home / "archived_sessions" / rollout_name(fresh))
    os.rename(home / "archived_sessions" / rollout_name(fresh), rollout_path(home, fresh))
    append_turn(rollout_path(home, fresh), fresh, "after unarchiving")
    wait_for(
        lambda: (fresh.thread_id, "after unarchiving") in history_keys(home),
        10,
        "a turn after unarchiving",
    )
    assert fresh.thread_id in latest_names(home)
    print(f"\npolling fallback: every change seen within {time.monotonic() - started:.1f} s in all")
    _, history = read_locked(home)
    keys = [(o["session_id"], o["text"]) for o in jsonl_objects(history)]
    assert len(keys) == len(set(keys)), "a turn got two history lines"
    daemon.check_alive()
    assert daemon.terminate() == 0


@pytest.mark.parametrize("watcher", ["inotify", "polling"])
def test_sessions_dir_deleted_and_recreated_repeatedly_is_watched_again(
    tmp_path: Path, spawn: Spawn, watcher: str
) -> None:
    threads = [new_thread(i, turns=1, paginated=i % 2 == 1) for i in range(3)]
    home = build_home(tmp_path / "home", threads, db=False)
    args = ["--poll"] if watcher == "polling" else []
    daemon = spawn(home, *args, env={"CODEX_INDEXD_POLL_INTERVAL_S": "0.3"})
    daemon.wait_ready()
    wait_for(
        lambda: {t.thread_id for t in threads} <= set(latest_names(home)),
        10,
        "the start-up reconcile",
    )
    fds, tasks = daemon.fd_count(), task_count(daemon.pid)
    written: list[bytes] = []
    cycle_times = []
    for cycle in range(4):
        started = time.monotonic()
        written = read_locked(home)[0].splitlines()
        shutil.rmtree(home / "sessions")
        if cycle % 2:  # let the daemon see the empty home first; else recreate at once
            wait_for(
                lambda: (read_status(home) or {}).get("sessions") == 0,
                10,
                "the daemon to see sessions/ gone",
            )
        (home / "sessions").mkdir()
        first = new_thread(100 + cycle, turns=1, paginated=cycle % 2 == 0)
        write_rollout(home, first)  # may reuse a deleted file's inode number
        wait_for(
            partial(indexed, home, first.thread_id),
            10,
            f"cycle {cycle}: a rollout in the new sessions/",
        )
        # Now only the watch on the new tree can see these (the periodic reconcile is minutes away).
        second = new_thread(100 + cycle + (cycle + 1) * 24 * 60, turns=1)
        write_rollout(home, second)
        append_turn(rollout_path(home, first), first, f"cycle {cycle}: appended later")
        wait_for(
            partial(indexed, home, second.thread_id),
            10,
            f"cycle {cycle}: a rollout in a new day directory",
        )
        key = (first.thread_id, f"cycle {cycle}: appended later")
        wait_for(partial(in_history, home, key), 10, f"cycle {cycle}: an append in the new tree")
        cycle_times.append(time.monotonic() - started)
        # The index lines of the deleted threads are never taken back.
        now = read_locked(home)[0].splitlines()
        assert now[: len(written)] == written, (
            f"cycle {cycle}: index lines were removed or rewritten"
        )
    print(f"\n{watcher}: cycles took " + ", ".join(f"{s:.1f} s" for s in cycle_times))
    daemon.check_alive()
    assert abs(daemon.fd_count() - fds) <= 3, (fds, daemon.fd_count(), daemon.fds())
    assert task_count(daemon.pid) <= tasks + 2, (
        "threads leaked by the re-watches",
        tasks,
        task_count(daemon.pid),
    )
    assert daemon.terminate() == 0
