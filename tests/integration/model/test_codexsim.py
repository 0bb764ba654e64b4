"""The simulator's Codex protocols, checked against Codex's rules (message-history, rollout)."""

from __future__ import annotations

import fcntl
import os
import random
import sqlite3
import time
from pathlib import Path

from tests.support.codexsim import (
    CodexSim,
    append_history_locked,
    enforce_history_limit,
    history_line,
)


def lines_of(n: int, size: int) -> list[bytes]:
    return [history_line(f"s{i}", "x" * size, 1_800_000_000 + i).encode() for i in range(n)]


def test_trim_is_in_place_down_to_80_percent(tmp_path: Path) -> None:
    home = tmp_path
    path = home / "history.jsonl"
    path.write_bytes(b"".join(lines_of(9, 50)))
    os.chmod(path, 0o600)
    inode = path.stat().st_ino
    newest = history_line("new", "y" * 50, 1_900_000_000).encode()
    result = append_history_locked(home, newest, 500)
    data = path.read_bytes()
    assert result.ok and path.stat().st_ino == inode
    assert len(data) <= 400 and data.endswith(newest)  # floor(0.8 × 500)
    assert b"".join(result.trimmed) + data == b"".join(lines_of(9, 50)) + newest
    # one line fewer would have been over 400: whole lines are dropped, no more than needed
    assert len(data) + len(result.trimmed[-1]) > 400


def test_trim_keeps_the_newest_line_even_when_it_is_over_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"".join(lines_of(3, 20)))
    huge = history_line("big", "z" * 400, 1).encode()
    append_history_locked(tmp_path, huge, 100)
    assert path.read_bytes() == huge


def test_no_trim_at_or_under_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    data = b"".join(lines_of(4, 10))
    path.write_bytes(data)
    fd = os.open(path, os.O_RDWR)
    try:
        assert enforce_history_limit(fd, len(data)) == []
        assert enforce_history_limit(fd, None) == []
    finally:
        os.close(fd)
    assert path.read_bytes() == data


def test_a_held_lock_drops_the_prompt_after_ten_tries(tmp_path: Path) -> None:
    sim = CodexSim(tmp_path, random.Random(1))
    fd = os.open(tmp_path / "history.jsonl", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        started = time.monotonic()
        result = sim.history_append("sid", "lost prompt", 1)
        took = time.monotonic() - started
    finally:
        os.close(fd)
    assert not result.ok and result.lock.tries == 10
    assert 0.9 <= took < 3.0 and result.lock.refused_s >= 0.9
    assert sim.dropped() and b"lost prompt" not in (tmp_path / "history.jsonl").read_bytes()


def test_history_mode_is_forced_to_0600(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"")
    os.chmod(path, 0o644)
    CodexSim(tmp_path, random.Random(1)).history_append("sid", "t", 1)
    assert path.stat().st_mode & 0o777 == 0o600


def test_tui_exec_rename_archive_and_db(tmp_path: Path) -> None:
    sim = CodexSim(tmp_path, random.Random(3), max_bytes=None)
    tui = sim.new_thread(tui=True, history_delay_s=0.0)
    exe = sim.new_thread(tui=False)
    sim.exec_turn(exe, "exec only")
    history = (tmp_path / "history.jsonl").read_bytes()
    assert tui.tid.encode() in history and exe.tid.encode() not in history
    index = (tmp_path / "session_index.jsonl").read_text()
    assert tui.tid in index and tui.names  # the TUI named its new thread
    sim.archive(exe)
    assert (tmp_path / exe.rel).exists() and exe.rel.startswith("archived_sessions/")
    sim.unarchive(exe)
    assert exe.rel.startswith("sessions/") and (tmp_path / exe.rel).stat().st_size == exe.size
    conn = sqlite3.connect(f"file:{tmp_path / 'state_5.sqlite'}?mode=ro", uri=True)
    try:
        rows = dict(conn.execute("SELECT id, archived FROM threads").fetchall())
        name = conn.execute("SELECT name FROM threads WHERE id = ?", (tui.tid,)).fetchone()[0]
    finally:
        conn.close()
    assert rows == {tui.tid: 0, exe.tid: 0} and name == tui.names[-1]
    hist = [e for e in sim.journal if e["op"] == "history"]
    rollout_turn_ts = tui.turns[0][1]
    assert int(rollout_turn_ts) - hist[0]["ts"] in (0, 1)  # ts 0-1 s before the rollout's
