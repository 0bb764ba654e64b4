"""The `history.jsonl` writer: `flock` on the file itself, same inode, 0600, journaled.

Codex appends under `flock(LOCK_EX|LOCK_NB)` retried for about 1 s, and running TUIs address
lines by offset in a file they know by inode. So we never replace the file, and a merge only
appends: under the lock we check that the file still starts with what the plan parsed, read
only what was appended since, and write the new lines at the end. The lock is held for a few
small reads and writes whatever the file's size: an append's journal is written before the
lock is taken (for the file as it was then; under the lock it is used only when the file is
still exactly that), and the appended bytes are synced after the lock is released (a disk's
flush latency never holds Codex up), then the journal is removed. Only a rebuild
rewrites the file's tail. All of this happens under our own `journal_lock`, so the daemon
and a `repair` never share a journal.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from codex_indexd.index.plan import HistoryAppend
from codex_indexd.log import get_logger
from codex_indexd.records import record
from codex_indexd.write import crashpoints
from codex_indexd.write.backup import BackupPolicy, write_backup
from codex_indexd.write.index_writer import WriteResult
from codex_indexd.write.journal import (
    JournalRecord,
    Tail,
    journal_left,
    prefix_digest,
    recover_fd,
    remove_journal,
    tail_pieces,
    write_journal,
)
from codex_indexd.write.locks import journal_lock, lock_history_fd
from codex_indexd.write.safety import check_fd, open_target, write_all

if TYPE_CHECKING:
    import ctypes

log = get_logger("codex_indexd.history_writer")
HISTORY_MODE = 0o600


def _open_locked(path: Path) -> int:
    """Open (creating 0600, never through a link, never blocking) and lock the history file;
    return the fd. Raises LockBusy, UnsafeTarget."""
    fd = open_target(path, os.O_RDWR | os.O_CREAT, HISTORY_MODE)
    try:
        _lock(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _lock(fd: int, path: Path) -> None:
    """Lock the open history file; only once the lock is held is it checked (regular, ours,
    one link, still at `path`) and its mode fixed. Raises LockBusy, UnsafeTarget."""
    lock_history_fd(fd, path)
    if check_fd(fd, path).st_mode & 0o777 != HISTORY_MODE:
        os.fchmod(fd, HISTORY_MODE)


_FALLOC_FL_KEEP_SIZE = 0x01


def reserve_space(fd: int, offset: int, length: int) -> None:
    """Allocate blocks for `length` bytes at `offset` without changing the file's size (so a
    reader never sees a tail of zeros). Raises OSError (ENOSPC). A no-op where Linux's
    `fallocate(2)` is not available or the filesystem does not support it."""
    libc = _libc()
    if libc is None:
        return
    import ctypes

    if libc.fallocate(fd, _FALLOC_FL_KEEP_SIZE, ctypes.c_long(offset), ctypes.c_long(length)) != 0:
        err = ctypes.get_errno()
        if err in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return
        raise OSError(err, os.strerror(err))


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if sys.platform != "linux":
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
        return libc
    except (OSError, AttributeError):
        return None


def common_line_prefix(old: bytes, new: bytes) -> int:
    """Return the length of the longest common prefix of whole lines."""
    if new.startswith(old) and (not old or old.endswith(b"\n")):
        return len(old)  # a pure append
    limit = min(len(old), len(new))
    # Compare in blocks first: most rewrites keep a long prefix.
    lo = 0
    step = 1 << 16
    while lo + step <= limit and old[lo : lo + step] == new[lo : lo + step]:
        lo += step
    while lo < limit and old[lo] == new[lo]:
        lo += 1
    if lo == len(old) and (not old or old.endswith(b"\n")):
        return lo
    return old.rfind(b"\n", 0, lo) + 1


def recover_history(path: Path, journal: Path) -> str | None:
    """Resolve a journal left by a crash (taking our journal lock, then the history lock);
    see `recover_fd`."""
    if not journal_left(journal):
        return None
    with journal_lock(journal):
        if not path.exists():
            remove_journal(journal)
            return "stale"
        fd = _open_locked(path)
        try:
            return recover_fd(fd, journal, path)
        finally:
            os.close(fd)


def _read_at(fd: int, offset: int, length: int) -> bytes:
    """Return `length` bytes at `offset` (fewer at the end of the file)."""
    chunks: list[bytes] = []
    while length > 0:
        chunk = os.pread(fd, min(1 << 22, length), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
        length -= len(chunk)
    return b"".join(chunks)


ReadAt = Callable[[int, int], bytes]


def append_history(
    path: Path, journal: Path, decide: Callable[[int, ReadAt], HistoryAppend | None]
) -> WriteResult:
    """Append to `history.jsonl` what `decide(size, read_at)` returns, under the file's lock.

    `decide` sees the file's size under the lock and reads what it needs; None from it means
    the file changed other than by appends since the plan: nothing is written and the result
    is `stale`. `decide` is also asked once before the lock, to write the journal then.
    Raises LockBusy, UnsafeTarget, OSError.
    """
    with journal_lock(journal):
        fd = open_target(path, os.O_RDWR | os.O_CREAT, HISTORY_MODE)
        early: _Journaled | None = None
        tail_journaled = False
        try:
            early = _journal_before_lock(fd, path, journal, decide)
            _lock(fd, path)
            crashpoints.step("history.locked")
            if early is None:
                recover_fd(fd, journal, path)
            size = os.fstat(fd).st_size
            decision = decide(size, functools.partial(_read_at, fd))
            if decision is None:
                return WriteResult(0, None, stale=True, before_size=size)
            if not decision.data:
                return WriteResult(0, None, before_size=size, left_out=decision.over_cap)
            journaled = early is not None and _still_describes(fd, early, size, decision.data)
            tail_journaled = True
            _replace_tail(
                fd,
                path,
                journal,
                common=size,
                old_tail=b"",
                new_tail=decision.data,
                journaled=journaled,
                sync=False,
            )
            result = WriteResult(
                decision.lines, _fingerprint(fd), before_size=size, left_out=decision.over_cap
            )
            # Written (a process crash keeps it): Codex may append again while it reaches the
            # disk. The journal, removed only after the sync, still covers a power loss.
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.fsync(fd)
            crashpoints.step("history.synced")
            return result
        finally:
            os.close(fd)  # releases Codex's lock; the journal goes after it
            if early is not None or tail_journaled:
                remove_journal(journal)


@record(frozen=True, slots=True)
class _Journaled:
    """What a journal written before the lock holds: for which file (device, inode, size and
    `prefix_digest`), and the append (as `decide` gave it: encoded lines are not bytes, so a
    very long line is not held twice)."""

    dev: int
    ino: int
    offset: int
    prefix: str
    data: Tail


def _journal_before_lock(
    fd: int, path: Path, journal: Path, decide: Callable[[int, ReadAt], HistoryAppend | None]
) -> _Journaled | None:
    """Write the journal of the append `decide` asks for on the file as it is now (unlocked);
    return what it holds, or None when there is nothing to append or a crash's journal is
    still there.

    Should the file change before the lock is ours, the record is not used; left by a crash,
    it describes bytes that were never written, which recovery leaves as they are."""
    if journal_left(journal):
        return None
    st = os.fstat(fd)
    decision = decide(st.st_size, functools.partial(_read_at, fd))
    if decision is None or not decision.data:
        return None
    prefix = prefix_digest(fd, st.st_size)
    data = decision.data
    write_journal(
        journal, JournalRecord(str(path), st.st_dev, st.st_ino, st.st_size, b"", data, prefix)
    )
    return _Journaled(st.st_dev, st.st_ino, st.st_size, prefix, data)


def _still_describes(fd: int, early: _Journaled, size: int, data: Tail) -> bool:
    """True when the locked file is the one `early` was written for, unchanged, and the
    append is the one it holds (the same lines: compared without encoding them)."""
    st = os.fstat(fd)
    return (
        (st.st_dev, st.st_ino, size) == (early.dev, early.ino, early.offset)
        and data == early.data
        and prefix_digest(fd, size) == early.prefix
    )


def write_history(
    path: Path,
    journal: Path,
    build: Callable[[bytes], bytes],
    *,
    backup_dir: Path,
    backup: BackupPolicy,
) -> WriteResult:
    """Rewrite `history.jsonl` to `build(current bytes)` in place, under its lock (a rebuild).
    Only the bytes after the first changed line are rewritten. Raises LockBusy, UnsafeTarget,
    OSError."""
    with journal_lock(journal):
        return _write_history_locked(path, journal, build, backup_dir=backup_dir, backup=backup)


def _write_history_locked(
    path: Path,
    journal: Path,
    build: Callable[[bytes], bytes],
    *,
    backup_dir: Path,
    backup: BackupPolicy,
) -> WriteResult:
    fd = _open_locked(path)
    tail_journaled = False
    try:
        crashpoints.step("history.locked")
        recover_fd(fd, journal, path)
        current = _read_at(fd, 0, os.fstat(fd).st_size)
        new = build(current)
        if new == current:
            return WriteResult(0, None)
        common = common_line_prefix(current, new)
        saved = None
        if common < len(current):
            saved = write_backup(backup_dir, path.name, current, backup)
        tail_journaled = True
        _replace_tail(
            fd, path, journal, common=common, old_tail=current[common:], new_tail=new[common:]
        )
        added = max(0, new.count(b"\n") - current.count(b"\n"))
        return WriteResult(
            added,
            _fingerprint(fd),
            saved,
            rewritten=common < len(current),
            before_size=len(current),
        )
    finally:
        os.close(fd)  # releases Codex's lock; the journal goes after it
        if tail_journaled:
            remove_journal(journal)


def _fingerprint(fd: int) -> tuple[int, int, int, int]:
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _replace_tail(
    fd: int,
    path: Path,
    journal: Path,
    *,
    common: int,
    old_tail: bytes,
    new_tail: Tail,
    journaled: bool = False,
    sync: bool = True,
) -> None:
    """Replace the bytes after `common` (`old_tail`) by `new_tail`, journaled (unless the
    journal already says so: `journaled`), and synced (unless the caller syncs after it let
    go of the lock: `sync` False). The caller removes the journal. On an error the old tail
    is put back before the error is raised."""
    st = os.fstat(fd)
    if not journaled:
        record = JournalRecord(
            str(path), st.st_dev, st.st_ino, common, old_tail, new_tail, prefix_digest(fd, common)
        )
        write_journal(journal, record)
    try:
        end = common + len(new_tail)
        if len(new_tail) > len(old_tail) and end > st.st_blocks * 512:
            # Reserve the space first: a full disk then fails here, before any byte changed.
            # (Skipped when the file's blocks already cover it, as for most small appends.)
            reserve_space(fd, common + len(old_tail), len(new_tail) - len(old_tail))
        if old_tail:
            os.ftruncate(fd, common)
            crashpoints.step("history.truncated")
        at = common
        for piece in tail_pieces(new_tail):  # one piece unless the tail is long
            write_all(fd, piece, at)
            at += len(piece)
        crashpoints.step("history.tail_written")
        if sync:
            os.fsync(fd)
            crashpoints.step("history.synced")
    except OSError:
        recover_fd(fd, journal, path, after_error=True)  # now, not at the next start
        raise
