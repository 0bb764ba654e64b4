"""Opening a rollout for reading (a regular file only: a link is followed only to one) and
reading it through its descriptor, never past the size seen at open."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

from codex_indexd.codex.longline import Pread

ReadInto = Callable[[memoryview], int]


class NotRegularFile(OSError):
    """Raised for a rollout path that is a FIFO, a device, a directory or a link to one."""


def open_rollout(path: Path | str) -> tuple[int, int]:
    """Open a rollout for reading without blocking or following a link blindly.

    Returns `(fd, size)`, the size seen at open (nothing past it is read). A symlink is
    resolved first and its target must be a regular file. Raises NotRegularFile for anything
    but a regular file, OSError when it cannot be opened.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.EMLINK):
            raise
        target = Path(os.path.realpath(path))
        kind = _kind(os.stat(target).st_mode)
        if kind != "regular file":
            raise NotRegularFile(f"{path}: a symlink to a {kind} ({target})") from None
        fd = os.open(target, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(f"{path}: not a regular file ({_kind(st.st_mode)})")
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "regular file"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def fd_reader(fd: int, offset: int, limit: int) -> ReadInto:
    """Return a `readinto` over `fd` from `offset` that stops at byte `limit`."""
    position = offset

    def readinto(view: memoryview) -> int:
        nonlocal position
        room = min(len(view), limit - position)
        if room <= 0:
            return 0
        got = os.preadv(fd, [view[:room]], position)
        position += got
        return got

    return readinto


def fd_pread(fd: int, limit: int) -> Pread:
    """Return a `pread` over `fd` that never reads at or past byte `limit`."""

    def pread(offset: int, length: int) -> bytes:
        out = bytearray()
        end = min(offset + length, limit)
        while offset + len(out) < end:
            got = os.pread(fd, end - offset - len(out), offset + len(out))
            if not got:
                break
            out += got
        return bytes(out)

    return pread
