"""Checks before we write a file of Codex's: no symlinks, no files of other users."""

from __future__ import annotations

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
