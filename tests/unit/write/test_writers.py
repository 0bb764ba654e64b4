"""Writers follow Codex's protocols: lock files, lone newline, same inode, refusals."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import pytest

from codex_indexd.write.backup import BackupPolicy
from codex_indexd.write.history_writer import common_line_prefix, write_history
from codex_indexd.write.index_writer import append_index, replace_index
from codex_indexd.write.locks import LockBusy
from codex_indexd.write.safety import UnsafeTarget


def test_append_adds_lone_newline_and_creates_lock_0666(tmp_path: Path) -> None:
    index, lock = tmp_path / "session_index.jsonl", tmp_path / "session_index.jsonl.lock"
    index.write_bytes(b'{"id":"torn')
    old = os.umask(0)
    try:
        result = append_index(index, lock, lambda current: [b'{"a":1}'])
    finally:
        os.umask(old)
    assert index.read_bytes() == b'{"id":"torn\n{"a":1}\n'
    assert result.lines_added == 1
    assert lock.stat().st_mode & 0o777 == 0o666
    append_index(index, lock, lambda current: [])
    assert lock.exists()  # never deleted


def test_append_waits_for_codex_lock(tmp_path: Path) -> None:
    index, lock = tmp_path / "session_index.jsonl", tmp_path / "session_index.jsonl.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    fcntl.flock(fd, fcntl.LOCK_EX)
    with pytest.raises(LockBusy):
        append_index(index, lock, lambda current: [b"x"], lock_timeout_s=0.2)
    released = threading.Timer(0.3, lambda: os.close(fd))
    released.start()
    append_index(index, lock, lambda current: [b"x"], lock_timeout_s=5)
    assert index.read_bytes() == b"x\n"


def test_replace_keeps_mode_and_refuses_symlinks(tmp_path: Path) -> None:
    index, lock = tmp_path / "session_index.jsonl", tmp_path / "session_index.jsonl.lock"
    index.write_bytes(b"old\n")
    os.chmod(index, 0o640)
    replace_index(
        index, lock, lambda cur: b"new\n", backup_dir=tmp_path / "b", backup=BackupPolicy()
    )
    assert index.read_bytes() == b"new\n" and index.stat().st_mode & 0o777 == 0o640
    target = tmp_path / "elsewhere"
    target.write_bytes(b"precious\n")
    index.unlink()
    index.symlink_to(target)
    with pytest.raises(UnsafeTarget, match="symlink"):
        replace_index(
            index, lock, lambda cur: b"x\n", backup_dir=tmp_path / "b", backup=BackupPolicy()
        )
    assert target.read_bytes() == b"precious\n"
    assert not list(tmp_path.glob(".session_index.*"))


def test_history_write_keeps_inode_and_mode(tmp_path: Path) -> None:
    history, journal = tmp_path / "history.jsonl", tmp_path / "j" / "journal"
    history.write_bytes(b"a\nc\n")
    os.chmod(history, 0o644)
    inode = history.stat().st_ino
    result = write_history(
        history,
        journal,
        lambda cur: b"a\nb\nc\n",
        backup_dir=tmp_path / "b",
        backup=BackupPolicy(enabled=False),
    )
    assert history.read_bytes() == b"a\nb\nc\n"
    assert history.stat().st_ino == inode and history.stat().st_mode & 0o777 == 0o600
    assert result.rewritten and not journal.exists()


def test_history_symlink_refused(tmp_path: Path) -> None:
    target = tmp_path / "other"
    target.write_bytes(b"x\n")
    (tmp_path / "history.jsonl").symlink_to(target)
    with pytest.raises(UnsafeTarget):
        write_history(
            tmp_path / "history.jsonl",
            tmp_path / "j",
            lambda cur: cur + b"y\n",
            backup_dir=tmp_path / "b",
            backup=BackupPolicy(),
        )
    assert target.read_bytes() == b"x\n"


def test_history_lock_busy_after_about_a_second(tmp_path: Path) -> None:
    history = tmp_path / "history.jsonl"
    history.write_bytes(b"a\n")
    fd = os.open(history, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(LockBusy) as info:
            write_history(
                history,
                tmp_path / "j",
                lambda cur: cur + b"b\n",
                backup_dir=tmp_path / "b",
                backup=BackupPolicy(),
            )
        assert 0.8 <= info.value.waited_s <= 2.0
    finally:
        os.close(fd)
    assert history.read_bytes() == b"a\n"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (b"a\nb\n", b"a\nb\nc\n", 4),
        (b"a\nb\n", b"a\nx\nb\n", 2),
        (b"", b"x\n", 0),
        (b"ab", b"abc\n", 0),
    ],
)
def test_common_line_prefix(old: bytes, new: bytes, expected: int) -> None:
    assert common_line_prefix(old, new) == expected
