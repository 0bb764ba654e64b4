"""Checks around our writes to Codex's files: no symlinks, no files of other users, no
second name (hard link), checked on the opened fd once the lock is held."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from codex_indexd.write import crashpoints


class UnsafeTarget(Exception):
    """We refuse to write this path; the message says why."""


def check_target(path: Path) -> os.stat_result | None:
    """Return the file's lstat (None when absent). Raises UnsafeTarget for a symlink, a
    non-regular file, or a file owned by another user."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeTarget(f"{path} is a symlink; refusing to write through it")
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeTarget(f"{path} is not a regular file")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise UnsafeTarget(f"{path} belongs to uid {st.st_uid}, not to us; not rewriting it")
    return st


def check_fd(fd: int, path: Path) -> os.stat_result:
    """Return `fstat(fd)` when the open file is safe to write: a regular file, owned by us,
    with one name (`st_nlink == 1`), and still the file `path` names (no rename or link swap
    since it was opened). Call it on an fd opened with `O_NOFOLLOW`, after the lock is held
    and before any write, chmod or truncate. Raises UnsafeTarget naming `path` and why."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeTarget(f"{path} is not a regular file; refusing to write it")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise UnsafeTarget(f"{path} belongs to uid {st.st_uid}, not to us; not rewriting it")
    if st.st_nlink == 0:
        raise UnsafeTarget(f"{path} was removed or replaced while we opened it; not writing it")
    if st.st_nlink != 1:
        raise UnsafeTarget(
            f"{path} has {st.st_nlink} hard links (another name shares its content); "
            "refusing to write it"
        )
    try:
        now = os.lstat(path)
    except FileNotFoundError:
        raise UnsafeTarget(f"{path} was removed while we opened it; not writing it") from None
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        raise UnsafeTarget(f"{path} was replaced while we opened it; not writing it")
    return st


def open_target(path: Path, flags: int, mode: int = 0o600) -> int:
    """Open a file of Codex's for writing with `O_NOFOLLOW|O_NONBLOCK` (a FIFO never blocks)
    and return the fd after `check_fd`. Raises UnsafeTarget for a symlink or a file
    `check_fd` refuses, FileNotFoundError (without `O_CREAT`), other OSErrors."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeTarget(f"{path} is a symlink; refusing to write through it") from None
        if exc.errno in (errno.ENXIO, errno.EISDIR):
            raise UnsafeTarget(f"{path} is not a regular file; refusing to write it") from None
        raise
    try:
        check_fd(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_all(
    fd: int, data: bytes, offset: int | None = None, *, crash_points: bool = True
) -> None:
    """Write all of `data` (at `offset` with pwrite, else at the fd's position).

    Under crash testing the data goes out in small chunks with a crash point between them,
    so that a kill can land in the middle of a write.
    """
    view = memoryview(data)
    chunk = (crashpoints.chunk_size() if crash_points else None) or len(view)
    while view:
        piece = view[:chunk]
        if offset is None:
            written = os.write(fd, piece)
        else:
            written = os.pwrite(fd, piece, offset)
            offset += written
        view = view[written:]
        if view:
            crashpoints.step("write.chunk")


def fsync_dir(directory: Path) -> None:
    """fsync a directory so that a rename or unlink in it is durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
