"""The history append's journal: written before Codex's lock is taken, used under it only for
the file it was written for, removed after the lock is released; no fsync under the lock."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from codex_indexd.index.plan import HistoryAppend
from codex_indexd.write import history_writer, locks
from codex_indexd.write import journal as journal_mod
from codex_indexd.write.history_writer import append_history
from codex_indexd.write.journal import read_journal

CODEX_LINE = b'{"session_id":"s-codex","ts":1,"text":"codex"}\n'
OUR_LINE = b'{"session_id":"s-ours","ts":2,"text":"ours"}\n'


def history_locked(path: Path) -> bool:
    """True when another open file description holds the history file's flock."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def append_ours(size: int, read_at: Callable[[int, int], bytes]) -> HistoryAppend:
    del size, read_at
    return HistoryAppend(OUR_LINE, 1, 0)


@pytest.fixture
def history(tmp_path: Path) -> Path:
    path = tmp_path / "history.jsonl"
    path.write_bytes(CODEX_LINE)
    path.chmod(0o600)
    return path


def test_no_fsync_under_the_lock_and_the_journal_outside_it(
    history: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "state" / "h.history.journal"
    fsyncs: list[bool] = []
    history_syncs: list[tuple[bool, bool]] = []  # (locked, journal still there)
    journal_when_locked: list[bool] = []
    real_fsync = os.fsync
    real_lock = locks.lock_history_fd
    history_ino = history.stat().st_ino

    def fsync(fd: int) -> None:
        fsyncs.append(history_locked(history))
        if os.fstat(fd).st_ino == history_ino:
            history_syncs.append((fsyncs[-1], journal.exists()))
        real_fsync(fd)

    def lock(fd: int, path: Path) -> None:
        journal_when_locked.append(read_journal(journal) is not None)
        real_lock(fd, path)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr("codex_indexd.write.history_writer.lock_history_fd", lock)
    result = append_history(history, journal, append_ours)
    assert result.lines_added == 1
    assert history.read_bytes() == CODEX_LINE + OUR_LINE
    assert journal_when_locked == [True]  # durable before Codex's lock was asked for
    assert fsyncs.count(True) == 0, fsyncs  # a disk's flush latency never holds Codex up
    assert history_syncs == [(False, True)]  # synced after the unlock, before the journal goes
    assert not journal.exists()


def test_a_file_changed_before_the_lock_gets_a_fresh_journal(
    history: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Codex appends between our unlocked look and our lock: the early journal (for the
    shorter file) is not used; the write lands after Codex's line, journaled for that file."""
    journal = tmp_path / "state" / "h.history.journal"
    written: list[int] = []
    real_write = journal_mod.write_journal
    real_lock = locks.lock_history_fd

    def write_journal(path: Path, record: journal_mod.JournalRecord) -> None:
        written.append(record.offset)
        real_write(path, record)

    def lock(fd: int, path: Path) -> None:
        with open(history, "ab") as codex:  # Codex, which does not know our journal lock
            codex.write(CODEX_LINE)
        real_lock(fd, path)

    monkeypatch.setattr("codex_indexd.write.history_writer.write_journal", write_journal)
    monkeypatch.setattr("codex_indexd.write.history_writer.lock_history_fd", lock)
    append_history(history, journal, append_ours)
    assert history.read_bytes() == CODEX_LINE * 2 + OUR_LINE
    assert written == [len(CODEX_LINE), 2 * len(CODEX_LINE)]
    assert not journal.exists()


def test_nothing_to_append_writes_no_journal(history: Path, tmp_path: Path) -> None:
    journal = tmp_path / "state" / "h.history.journal"
    result = append_history(history, journal, lambda size, read_at: HistoryAppend(b"", 0, 0))
    assert result.lines_added == 0
    assert history.read_bytes() == CODEX_LINE
    assert not journal.exists() and not journal.parent.joinpath(journal.name + ".tmp").exists()


def test_a_crash_after_the_early_journal_leaves_the_file_as_it_was(
    history: Path, tmp_path: Path
) -> None:
    """The early journal describes bytes never written; recovery keeps the file (and the
    line Codex appended meanwhile) exactly."""
    journal = tmp_path / "state" / "h.history.journal"
    fd = os.open(history, os.O_RDWR)
    try:
        assert history_writer._journal_before_lock(fd, history, journal, append_ours)
    finally:
        os.close(fd)
    with open(history, "ab") as codex:
        codex.write(CODEX_LINE)
    assert history_writer.recover_history(history, journal) in ("rolled_back", "rolled_forward")
    assert history.read_bytes() == CODEX_LINE * 2
    assert not journal.exists()
