"""Writers for `session_index.jsonl` under Codex's `session_index.jsonl.lock` (§3.3, §9.1)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from codex_indexd.codex.indexfiles import IndexFile, parse_index_bytes, parse_index_line, read_bytes
from codex_indexd.write import crashpoints
from codex_indexd.write.backup import BackupPolicy, write_backup
from codex_indexd.write.journal import (
    JournalRecord,
    prefix_digest,
    recover_fd,
    remove_journal,
    write_journal,
)
from codex_indexd.write.locks import INDEX_LOCK_TIMEOUT_S, session_index_lock
from codex_indexd.write.safety import check_target, fsync_dir, write_all

Fingerprint = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
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


def append_index(
    index_path: Path,
    lock_path: Path,
    lines_for: Callable[[IndexFile], list[bytes]],
    *,
    journal: Path | None = None,
    lock_timeout_s: float = INDEX_LOCK_TIMEOUT_S,
) -> WriteResult:
    """Append the lines `lines_for(current index)` returns, in one `write(2)` under the lock.

    The callback sees the file as it is under the lock, so a rename Codex wrote after we
    planned is never overridden. A lone newline is added first when the file lacks one.
    Raises LockBusy, UnsafeTarget, OSError.
    """
    check_target(index_path)
    with session_index_lock(lock_path, lock_timeout_s):
        crashpoints.step("index.append.locked")
        current = parse_index_bytes(read_bytes(index_path))
        lines = lines_for(current)
        if not lines:
            return WriteResult(0, None)
        payload = b"".join(line + b"\n" for line in lines)
        if not current.ends_with_newline:
            payload = b"\n" + payload
        # Read-write: the journal digests the bytes before the append point.
        fd = os.open(index_path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o666)
        try:
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
                        prefix_digest(fd, st.st_size),
                    ),
                )
            crashpoints.step("index.append.before_write")
            try:
                write_all(fd, payload)
            except OSError:
                if journal is not None:  # a full disk can leave half a line: take it back
                    with open(index_path, "r+b") as rollback:
                        recover_fd(
                            rollback.fileno(),
                            journal,
                            index_path,
                            parse_index_line,
                            after_error=True,
                        )
                raise
            crashpoints.step("index.append.after_write")
            if journal is not None:
                os.fsync(fd)
                remove_journal(journal)
            return WriteResult(len(lines), _fingerprint(fd), before_size=current.size)
        finally:
            os.close(fd)


def recover_index(index_path: Path, lock_path: Path, journal: Path) -> str | None:
    """Resolve a journal left by a crash during an append (taking the index lock)."""
    if not journal.exists() and not journal.with_name(journal.name + ".tmp").exists():
        return None
    if not index_path.exists():
        remove_journal(journal)
        return "stale"
    check_target(index_path)
    with session_index_lock(lock_path):
        fd = os.open(index_path, os.O_RDWR | os.O_CLOEXEC)
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

    The file is re-checked before the rename, because binaries that predate the lock may
    append meanwhile; then the content is rebuilt from the new bytes.
    Raises LockBusy, UnsafeTarget, OSError.
    """
    st = check_target(index_path)
    mode = (st.st_mode & 0o777) if st is not None else 0o644
    directory = index_path.parent
    with session_index_lock(lock_path, lock_timeout_s):
        for _attempt in range(3):
            before = _stat_key(index_path)
            current = read_bytes(index_path)
            new = build(current)
            if new == current:
                return WriteResult(0, None)
            saved = write_backup(backup_dir, index_path.name, current, backup)
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
                if _stat_key(index_path) != before:
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


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)
