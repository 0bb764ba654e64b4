"""Writers for `session_index.jsonl` under Codex's `session_index.jsonl.lock`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from codex_indexd.codex.indexfiles import RegularFileReader, extend_from
from codex_indexd.index.lines import IndexFile, parse_index_line
from codex_indexd.records import record
from codex_indexd.write import crashpoints
from codex_indexd.write.backup import BackupPolicy, write_backup
from codex_indexd.write.journal import (
    JournalRecord,
    journal_left,
    prefix_digest,
    recover_fd,
    remove_journal,
    write_journal,
)
from codex_indexd.write.locks import INDEX_LOCK_TIMEOUT_S, session_index_lock
from codex_indexd.write.safety import fsync_dir, open_target, write_all

Fingerprint = tuple[int, int, int, int]


@record(frozen=True, slots=True)
class WriteResult:
    """What a writer did: lines added, the file's fingerprint after our write, a backup, and
    the file's size just before it (under the lock)."""

    lines_added: int
    fingerprint: Fingerprint | None
    backup: Path | None = None
    rewritten: bool = False
    before_size: int | None = None
    stale: bool = False  # the file no longer held what the plan saw: nothing written, plan again
    left_out: int = 0  # planned lines that no longer fit under `[history] max_bytes`


def _fingerprint(fd: int) -> Fingerprint:
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _read_fd(fd: int) -> IndexFile:
    """Parse the open index from its start, up to its current size."""
    current = IndexFile()
    extend_from(current, RegularFileReader(fd, os.fstat(fd).st_size))
    return current


def _open_existing(path: Path, flags: int) -> int | None:
    """`open_target` without creating; None when the file does not exist."""
    try:
        return open_target(path, flags)
    except FileNotFoundError:
        return None


def append_index(
    index_path: Path,
    lock_path: Path,
    lines_for: Callable[[IndexFile], list[bytes]],
    *,
    journal: Path | None = None,
    lock_timeout_s: float = INDEX_LOCK_TIMEOUT_S,
) -> WriteResult:
    """Append the lines `lines_for(current index)` returns, in one `write(2)` under the lock.

    The file is opened `O_NOFOLLOW` and checked (`check_fd`) once the lock is held, and read
    from that fd, so a rename Codex wrote after we planned is never overridden and a link
    swapped in meanwhile is never written through. A lone newline is added first when the
    file lacks one. Raises LockBusy, UnsafeTarget, OSError.
    """
    with session_index_lock(lock_path, lock_timeout_s):
        crashpoints.step("index.append.locked")
        fd = _open_existing(index_path, os.O_RDWR | os.O_APPEND)
        try:
            current = _read_fd(fd) if fd is not None else IndexFile()
            lines = lines_for(current)
            if not lines:
                return WriteResult(0, None)
            if fd is None:
                fd = open_target(index_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
                if os.fstat(fd).st_size:  # created meanwhile by a writer that skips the lock
                    current = _read_fd(fd)
                    lines = lines_for(current)
                    if not lines:
                        return WriteResult(0, None)
            return _append_locked(fd, index_path, current, lines, journal)
        finally:
            if fd is not None:
                os.close(fd)


def _append_locked(
    fd: int, index_path: Path, current: IndexFile, lines: list[bytes], journal: Path | None
) -> WriteResult:
    payload = b"".join(line + b"\n" for line in lines)
    if not current.ends_with_newline:
        payload = b"\n" + payload
    if journal is not None:
        st = os.fstat(fd)
        write_journal(
            journal,
            JournalRecord(
                str(index_path),
                st.st_dev,
                st.st_ino,
                st.st_size,
                b"",
                payload,
                prefix_digest(fd, st.st_size),  # the fd is O_RDWR for this read
            ),
        )
    crashpoints.step("index.append.before_write")
    try:
        write_all(fd, payload)
    except OSError:
        if journal is not None:  # a full disk can leave half a line: take it back
            # On this O_APPEND fd the rollback's pwrite lands at the end, which its ftruncate
            # has just made the journal's offset: the same bytes at the same place.
            recover_fd(fd, journal, index_path, parse_index_line, after_error=True)
        raise
    crashpoints.step("index.append.after_write")
    if journal is not None:
        os.fsync(fd)
        remove_journal(journal)
    return WriteResult(len(lines), _fingerprint(fd), before_size=current.size)


def recover_index(index_path: Path, lock_path: Path, journal: Path) -> str | None:
    """Resolve a journal left by a crash during an append (taking the index lock).
    Raises UnsafeTarget when the index is no longer a file we may write (the journal stays)."""
    if not journal_left(journal):
        return None
    with session_index_lock(lock_path):
        fd = _open_existing(index_path, os.O_RDWR)
        if fd is None:
            remove_journal(journal)
            return "stale"
        try:
            return recover_fd(fd, journal, index_path, parse_index_line)
        finally:
            os.close(fd)


def replace_index(
    index_path: Path,
    lock_path: Path,
    build: Callable[[bytes], bytes],
    *,
    backup_dir: Path,
    backup: BackupPolicy,
    lock_timeout_s: float = INDEX_LOCK_TIMEOUT_S,
) -> WriteResult:
    """Replace the index with `build(current bytes)` (temp file in the same directory, old mode,
    fsync, rename, fsync of the directory), all under the lock.

    The current file is opened `O_NOFOLLOW` and checked under the lock; before the rename it
    must still be that file, unchanged, because binaries that predate the lock may append
    meanwhile (then the content is rebuilt from the new bytes).
    Raises LockBusy, UnsafeTarget, OSError.
    """
    directory = index_path.parent
    with session_index_lock(lock_path, lock_timeout_s):
        for _attempt in range(3):
            st, current = None, b""
            old = _open_existing(index_path, os.O_RDONLY)
            if old is not None:
                try:
                    st = os.fstat(old)
                    current = RegularFileReader(old, st.st_size).read()
                finally:
                    os.close(old)
            before = _stat_key(st)
            mode = (st.st_mode & 0o777) if st is not None else 0o644
            new = build(current)
            if new == current:
                return WriteResult(0, None)
            saved = write_backup(backup_dir, index_path.name, current, backup)
            import tempfile

            # mkstemp: O_CREAT|O_EXCL|O_NOFOLLOW, an unpredictable name, 0600 until fchmod.
            fd, temp_name = tempfile.mkstemp(
                prefix=".session_index.", suffix=".codex-indexd.tmp", dir=directory
            )
            temp = Path(temp_name)
            try:
                crashpoints.step("index.replace.temp_created")
                os.fchmod(fd, mode)
                write_all(fd, new)
                crashpoints.step("index.replace.temp_written")
                os.fsync(fd)
                if _path_key(index_path) != before:
                    continue  # someone appended without the lock: rebuild from the new bytes
                crashpoints.step("index.replace.before_rename")
                os.replace(temp, index_path)
                crashpoints.step("index.replace.after_rename")
                fsync_dir(directory)
                added = max(0, new.count(b"\n") - current.count(b"\n"))
                return WriteResult(added, _fingerprint(fd), saved, rewritten=True)
            finally:
                os.close(fd)
                temp.unlink(missing_ok=True)
        raise OSError(f"{index_path} kept changing while we rewrote it; try again")


def _stat_key(st: os.stat_result | None) -> tuple[int, int, int, int] | None:
    return None if st is None else (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _path_key(path: Path) -> tuple[int, int, int, int] | None:
    """What `path` itself names now (a symlink swapped in counts as a change)."""
    try:
        return _stat_key(os.lstat(path))
    except FileNotFoundError:
        return None
