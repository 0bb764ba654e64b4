"""The history journal: whatever the crash point, old or new content comes back, and lines
appended after the crash are kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from codex_indexd.write.journal import JournalRecord, prefix_digest, recover_fd, write_journal

OLD = b'{"session_id":"a","ts":1,"text":"one"}\n{"session_id":"a","ts":5,"text":"five"}\n'
NEW = b'{"session_id":"a","ts":1,"text":"one"}\n{"session_id":"b","ts":3,"text":"three"}\n{"session_id":"a","ts":5,"text":"five"}\n'
CODEX = b'{"session_id":"c","ts":9,"text":"appended after the crash"}\n'
COMMON = OLD.index(b"\n") + 1


def crash_state(path: Path, journal: Path, written: int, appended: bytes) -> int:
    """Leave the file as a crash after `written` bytes of the new tail would, plus a later append."""
    path.write_bytes(OLD)
    st = path.stat()
    write_journal(
        journal, JournalRecord(str(path), st.st_dev, st.st_ino, COMMON, OLD[COMMON:], NEW[COMMON:])
    )
    with open(path, "r+b") as handle:
        handle.truncate(COMMON)
        handle.seek(COMMON)
        handle.write(NEW[COMMON : COMMON + written])
    with open(path, "ab") as handle:
        handle.write(appended)
    return os.open(path, os.O_RDWR)


@pytest.mark.parametrize("written", range(0, len(NEW) - COMMON + 1))
@pytest.mark.parametrize("appended", [b"", CODEX])
def test_every_crash_point_recovers(tmp_path: Path, written: int, appended: bytes) -> None:
    path, journal = tmp_path / "history.jsonl", tmp_path / "j" / "h.journal"
    fd = crash_state(path, journal, written, appended)
    try:
        outcome = recover_fd(fd, journal, path)
    finally:
        os.close(fd)
    data = path.read_bytes()
    if written == len(NEW) - COMMON:
        assert outcome == "rolled_forward"
        assert data == NEW + appended
    else:
        assert outcome == "rolled_back"
        assert data == OLD + appended
    assert not journal.exists()
    assert not list(journal.parent.glob("*.tmp"))


def test_stale_journal_for_another_inode_is_dropped(tmp_path: Path) -> None:
    path, journal = tmp_path / "history.jsonl", tmp_path / "h.journal"
    path.write_bytes(OLD)
    write_journal(journal, JournalRecord(str(path), 1, 1, 0, b"", b"x\n"))
    fd = os.open(path, os.O_RDWR)
    try:
        assert recover_fd(fd, journal, path) == "stale"
    finally:
        os.close(fd)
    assert path.read_bytes() == OLD and not journal.exists()


@pytest.mark.parametrize("written", [0, 10, len(CODEX)])
def test_a_journal_is_dropped_when_codex_trimmed_the_file_since(
    tmp_path: Path, written: int
) -> None:
    """Crash during an append, then Codex appends and trims in place (same inode, every byte
    shifted): the journal's digest of the bytes before its offset no longer matches, so it is
    dropped and the file is left as Codex wrote it (no doubled or glued lines)."""
    path, journal = tmp_path / "history.jsonl", tmp_path / "j" / "h.journal"
    lines = [b'{"session_id":"a","ts":%d,"text":"prompt %d"}\n' % (i, i) for i in range(40)]
    path.write_bytes(b"".join(lines))
    ours = b'{"session_id":"b","ts":3,"text":"ours"}\n'
    fd = os.open(path, os.O_RDWR)
    try:
        st = os.fstat(fd)
        offset = st.st_size
        write_journal(
            journal,
            JournalRecord(
                str(path), st.st_dev, st.st_ino, offset, b"", ours, prefix_digest(fd, offset)
            ),
        )
        os.pwrite(fd, ours[:written], offset)
        # Codex: append, then trim in place to the newest lines (truncate, rewrite).
        kept = b"".join(lines[25:]) + CODEX
        os.ftruncate(fd, 0)
        os.pwrite(fd, kept, 0)
        assert recover_fd(fd, journal, path) == "stale"
    finally:
        os.close(fd)
    assert path.read_bytes() == kept
    assert not journal.exists()
