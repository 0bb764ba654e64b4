"""A rollout replaced by its `.jsonl.zst` twin (real zstd) stays the same thread, in the
daemon's tracker, in a running daemon and in `repair`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from codex_indexd.cli import main
from codex_indexd.codex.home import CodexHome
from codex_indexd.engine.live import RolloutTracker
from codex_indexd.index.model import HistoryLine
from tests.support.daemons import DaemonProcess
from tests.support.homes import (
    build_home,
    new_thread,
    read_jsonl,
    rollout_path,
    user_message,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd binary")


def compress(path: Path) -> Path:
    """Write the twin the way Codex would (a new file beside it), then remove the plain one."""
    twin = path.with_name(path.name + ".zst")
    subprocess.run(["zstd", "-q", "-f", str(path), "-o", str(twin)], check=True)
    return twin


def test_tracker_keeps_the_thread_across_the_swap(tmp_path: Path) -> None:
    thread = new_thread(0, turns=3)
    home = build_home(tmp_path / "h", [thread], db=False)
    tracker = RolloutTracker(CodexHome(home))
    tracker.full_scan()
    before = tracker.facts()[thread.thread_id]
    turns = [(t.ts, t.key) for t in before.user_turns]
    plain = rollout_path(home, thread)
    twin = compress(plain)
    tracker.refresh(twin)  # the plain file still exists: nothing changes yet
    assert tracker.facts()[thread.thread_id].path == str(plain)
    plain.unlink()
    assert tracker.refresh(plain)
    after = tracker.facts()[thread.thread_id]
    assert after.path == str(twin)
    assert [(t.ts, t.key) for t in after.user_turns] == turns
    assert (after.title, after.first_user_message) == (before.title, before.first_user_message)
    lines = [HistoryLine(thread.thread_id, ts, None, key) for ts, key in turns]
    texts = tracker.read_texts(lines)
    assert sorted(texts.values()) == sorted(t.text for t in thread.turns)
    assert tracker.full_scan() == 1
    assert tracker.facts()[thread.thread_id].path == str(twin)


def test_running_daemon_sees_no_change(tmp_path: Path) -> None:
    threads = [new_thread(i, paginated=True) for i in range(2)]
    home = build_home(tmp_path / "h", threads)
    daemon = DaemonProcess(home)
    try:
        index, history = home / "session_index.jsonl", home / "history.jsonl"
        wait_for(lambda: index.exists() and history.exists(), 20, "first reconcile")
        wait_for(lambda: len(read_jsonl(index)) == 2, 20, "both threads indexed")
        snapshot = (index.read_bytes(), history.read_bytes())
        plain = rollout_path(home, threads[0])
        compress(plain)
        plain.unlink()
        # A later turn on the other thread proves the daemon reconciled after the swap.
        other = rollout_path(home, threads[1])
        assert daemon.poll() is None
        with open(other, "a") as handle:
            handle.write(user_message("after the swap", "2026-11-20T11:00:00.000Z"))
        wait_for(lambda: b"after the swap" in history.read_bytes(), 20, "the later turn")
        assert daemon.poll() is None
        assert index.read_bytes() == snapshot[0]
        assert history.read_bytes().startswith(snapshot[1])
    finally:
        daemon.terminate(timeout=10)
        daemon.close()


def test_repair_after_the_swap_changes_nothing(tmp_path: Path) -> None:
    threads = [new_thread(i, paginated=True) for i in range(2)]
    home = build_home(tmp_path / "h", threads)
    assert main(["repair", "--codex-home", str(home)]) == 0
    snapshot = ((home / "session_index.jsonl").read_bytes(), (home / "history.jsonl").read_bytes())
    plain = rollout_path(home, threads[0])
    compress(plain)
    plain.unlink()
    assert main(["repair", "--codex-home", str(home)]) == 0
    assert (home / "session_index.jsonl").read_bytes() == snapshot[0]
    assert (home / "history.jsonl").read_bytes() == snapshot[1]
