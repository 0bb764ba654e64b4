"""Atomic replacement of our own files (status, heal attempts, checkpoint, journals): an
exclusive, unpredictably named 0600 temp file in the target's own 0700 directory, synced,
renamed over the target, and the directory synced."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from codex_indexd.store.dirs import UnsafeOwnDir, private_dir
from codex_indexd.write.safety import fsync_dir, write_all

# Small chunks are gathered up to this many bytes per write; a chunk this large is written
# as it is (a copy joined from large chunks was most of a checkpoint save's peak memory).
WRITE_CHUNK = 1 << 17


def check_private_dir(directory: Path) -> None:
    """Raise UnsafeOwnDir unless `directory` is a directory of ours that only we can enter."""
    st = os.stat(directory)
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeOwnDir(f"{directory} is not a directory")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise UnsafeOwnDir(f"{directory} belongs to uid {st.st_uid}, not to us; not writing in it")
    if st.st_mode & 0o077:
        raise UnsafeOwnDir(
            f"{directory} has mode {stat.S_IMODE(st.st_mode):o} (others may enter it); "
            "not writing in it"
        )


def temp_files(path: Path) -> list[Path]:
    """Return the temp files `write_atomic` left for `path` (a crash between create and
    rename leaves one)."""
    return sorted(path.parent.glob(f".{glob_escape(path.name)}.*.tmp"))


def glob_escape(name: str) -> str:
    """Return `name` with glob's special characters bracketed."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def write_atomic(
    path: Path,
    data: bytes | Iterable[bytes],
    *,
    mode: int = 0o600,
    crash_points: bool = False,
    before_sync: Callable[[], None] | None = None,
) -> None:
    """Replace `path` with `data` (bytes, or chunks written as they come) atomically.

    The parent is created 0700 when absent and must be ours with no access for others. The
    temp file is created `O_CREAT|O_EXCL|O_NOFOLLOW` under a random name, so nothing placed
    there beforehand (a symlink, a file) is opened or written through; the rename replaces a
    link at `path` itself rather than following it. `crash_points` lets crash tests kill the
    process between chunks; `before_sync` runs once everything is written, before the fsync.
    Raises UnsafeOwnDir, OSError (the temp file is removed)."""
    directory = path.parent
    if not directory.is_dir():
        private_dir(directory)
    check_private_dir(directory)
    # `secrets.token_hex(8)` is this; importing secrets would load OpenSSL (via hmac).
    temp = directory / f".{path.name}.{os.urandom(8).hex()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temp, flags, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask does not narrow what we asked for
            chunks = [data] if isinstance(data, bytes) else data
            pending: list[bytes] = []
            size = 0
            for chunk in chunks:
                if len(chunk) >= WRITE_CHUNK:
                    if pending:
                        write_all(fd, b"".join(pending), crash_points=crash_points)
                        pending, size = [], 0
                    write_all(fd, chunk, crash_points=crash_points)
                    continue
                pending.append(chunk)
                size += len(chunk)
                if size >= WRITE_CHUNK:
                    write_all(fd, b"".join(pending), crash_points=crash_points)
                    pending, size = [], 0
            if pending:
                write_all(fd, b"".join(pending), crash_points=crash_points)
            if before_sync is not None:
                before_sync()
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(directory)
