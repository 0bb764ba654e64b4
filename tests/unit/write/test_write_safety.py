"""Writes open with O_NOFOLLOW and check the fd once the lock is held: a link swapped in while
we wait is never written through, and a hard-linked or foreign file is refused untouched."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import pytest

from codex_indexd.write.backup import BackupPolicy
from codex_indexd.write.index_writer import append_index, replace_index
from codex_indexd.write.safety import UnsafeTarget, check_fd, open_target
from tests.support.waiting import wait_for

NOTES = b"a user's notes\n" * 300


def _hold(lock: Path) -> int:
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _opened_by_us(path: Path) -> int:
    """How many fds of this process are open on `path`."""
    fd_dir = Path("/proc/self/fd")
    count = 0
    for entry in fd_dir.iterdir():
        try:
            count += os.readlink(entry) == str(path)
        except OSError:
            continue
    return count


@pytest.mark.parametrize("writer", ["append", "replace"])
def test_a_link_swapped_in_while_the_lock_is_held_is_not_written_through(
    tmp_path: Path, writer: str
) -> None:
    index, lock = tmp_path / "session_index.jsonl", tmp_path / "session_index.jsonl.lock"
    index.write_bytes(b'{"old":1}\n')
    notes = tmp_path / "notes.txt"
    notes.write_bytes(NOTES)
    holder = _hold(lock)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            if writer == "append":
                append_index(index, lock, lambda current: [b'{"new":1}'], lock_timeout_s=10)
            else:
                replace_index(
                    index,
                    lock,
                    lambda current: b'{"new":1}\n',
                    backup_dir=tmp_path / "b",
                    backup=BackupPolicy(enabled=False),
                    lock_timeout_s=10,
                )
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        # The writer has opened the lock file and polls it: any check before the lock is done.
        wait_for(lambda: _opened_by_us(lock) >= 2, what="the writer to wait for the lock")
        index.unlink()
        index.symlink_to(notes)
    finally:
        os.close(holder)  # releases the lock: the writer goes on
    thread.join(timeout=15)
    assert not thread.is_alive()
    assert notes.read_bytes() == NOTES
    assert os.readlink(index) == str(notes)
    assert len(errors) == 1 and isinstance(errors[0], UnsafeTarget)
    assert "symlink" in str(errors[0]) and str(index) in str(errors[0])


def test_a_hard_linked_index_is_refused_untouched(tmp_path: Path) -> None:
    index, lock = tmp_path / "session_index.jsonl", tmp_path / "session_index.jsonl.lock"
    notes = tmp_path / "notes.txt"
    notes.write_bytes(NOTES)
    os.chmod(notes, 0o644)
    os.link(notes, index)
    with pytest.raises(UnsafeTarget, match="2 hard links"):
        append_index(index, lock, lambda current: [b"x"])
    with pytest.raises(UnsafeTarget, match="2 hard links"):
        replace_index(
            index, lock, lambda cur: b"", backup_dir=tmp_path / "b", backup=BackupPolicy()
        )
    assert notes.read_bytes() == NOTES and notes.stat().st_mode & 0o777 == 0o644


def test_check_fd_refuses_a_second_name_before_any_change(tmp_path: Path) -> None:
    """The contract the history writer relies on: refuse before chmod or truncate."""
    history = tmp_path / "history.jsonl"
    notes = tmp_path / "notes.txt"
    notes.write_bytes(NOTES)
    os.chmod(notes, 0o644)
    os.link(notes, history)
    fd = os.open(history, os.O_RDWR | os.O_NOFOLLOW)
    try:
        with pytest.raises(UnsafeTarget, match="hard links"):
            check_fd(fd, history)
    finally:
        os.close(fd)
    assert notes.stat().st_mode & 0o777 == 0o644 and notes.read_bytes() == NOTES


def test_check_fd_refuses_a_file_renamed_over_after_open(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"a\n")
    fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    try:
        check_fd(fd, path)  # fine as opened
        replacement = tmp_path / "other"
        replacement.write_bytes(b"b\n")
        os.replace(replacement, path)
        with pytest.raises(UnsafeTarget, match="replaced"):
            check_fd(fd, path)
    finally:
        os.close(fd)


def test_open_target_refuses_fifo_without_blocking_and_foreign_files(tmp_path: Path) -> None:
    fifo = tmp_path / "session_index.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeTarget, match="not a regular file"):
        open_target(fifo, os.O_WRONLY | os.O_APPEND)  # O_WRONLY on a FIFO would block
    directory = tmp_path / "history.jsonl"
    directory.mkdir()
    with pytest.raises(UnsafeTarget, match="not a regular file"):
        open_target(directory, os.O_RDONLY)
    if os.geteuid() == 0:
        foreign = tmp_path / "foreign.jsonl"
        foreign.write_bytes(b"x\n")
        os.chown(foreign, 4321, 4321)
        with pytest.raises(UnsafeTarget, match="uid 4321"):
            open_target(foreign, os.O_RDWR)
        assert foreign.read_bytes() == b"x\n"
