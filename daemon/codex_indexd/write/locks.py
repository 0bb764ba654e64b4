"""Codex's lock protocols for its index files, and our own single-instance lock."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from codex_indexd.write.safety import UnsafeTarget, check_fd

INDEX_LOCK_POLL_S = 0.05  # Codex polls the index lock every 50 ms
INDEX_LOCK_TIMEOUT_S = 10.0  # Codex itself waits ≈30 s; we give up well before and retry later
HISTORY_LOCK_ATTEMPTS = 10  # Codex: 10 × 100 ms
HISTORY_LOCK_POLL_S = 0.1


class LockBusy(Exception):
    """Another process held the lock for longer than we wait."""

    def __init__(self, path: Path, waited_s: float) -> None:
        super().__init__(f"{path} is locked by another process (waited {waited_s:.1f} s)")
        self.path = path
        self.waited_s = waited_s


def _try_flock(fd: int, operation: int) -> bool:
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def flock_with_retry(fd: int, path: Path, *, operation: int, attempts: int, poll_s: float) -> None:
    """Take `flock(operation)` on `fd`, trying `attempts` times `poll_s` apart. Raises LockBusy."""
    start = time.monotonic()
    for attempt in range(attempts):
        if _try_flock(fd, operation):
            return
        if attempt + 1 < attempts:
            time.sleep(poll_s)
    raise LockBusy(path, time.monotonic() - start)


@contextmanager
def session_index_lock(lock_path: Path, timeout_s: float = INDEX_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold `session_index.jsonl.lock` exclusively (created 0666 when absent, never deleted).
    Raises LockBusy, UnsafeTarget (the lock path is a symlink or not a regular file)."""
    with _held_lock_file(lock_path, 0o666, timeout_s, INDEX_LOCK_POLL_S):
        yield


@contextmanager
def _held_lock_file(path: Path, mode: int, timeout_s: float, poll_s: float) -> Iterator[None]:
    """Hold `flock(LOCK_EX)` on the lock file `path` (created with `mode`), polling every
    `poll_s` for `timeout_s` at most. Raises LockBusy, UnsafeTarget."""
    fd = _open_lock_file(path, mode)
    try:
        attempts = max(1, int(timeout_s / poll_s))
        flock_with_retry(fd, path, operation=fcntl.LOCK_EX, attempts=attempts, poll_s=poll_s)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _open_lock_file(path: Path, mode: int) -> int:
    """Open (creating) a lock file without following a link or blocking on a FIFO; return
    the fd of a regular file. Raises UnsafeTarget, OSError."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
            reason = "is a symlink or not a regular file"
            raise UnsafeTarget(f"{path} {reason}; not locking it") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeTarget(f"{path} is not a regular file; not locking it")
    return fd


OWN_LOCK_POLL_S = 0.01
OWN_LOCK_TIMEOUT_S = 60.0  # a rebuild of a very large history holds it this long at most


@contextmanager
def journal_lock(journal: Path, timeout_s: float = OWN_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold our sidecar lock for `journal` exclusively: `<journal stem>.writes.lock` (0600, never
    deleted) in the `locks` folder beside the journal's folder, with our instance locks.

    Our processes (the daemon, a `repair`) take it before Codex's history lock and keep it
    until their journal is gone, so one process's journal is never written over or removed
    by another, and a journal found while holding it is a crash's leftover. Codex never
    takes it. Raises LockBusy after `timeout_s`, UnsafeTarget.
    """
    lock_path = journal.parent.parent / "locks" / f"{journal.stem}.writes.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _held_lock_file(lock_path, 0o600, timeout_s, OWN_LOCK_POLL_S):
        yield


def lock_history_fd(fd: int, path: Path) -> None:
    """Take `flock(LOCK_EX)` on an open `history.jsonl`, about 1 s at most. Raises LockBusy."""
    flock_with_retry(
        fd,
        path,
        operation=fcntl.LOCK_EX,
        attempts=HISTORY_LOCK_ATTEMPTS,
        poll_s=HISTORY_LOCK_POLL_S,
    )


class AlreadyRunning(Exception):
    """Another codex-indexd holds the instance lock; `pid` is its pid when known."""

    def __init__(self, path: Path, pid: str) -> None:
        super().__init__(f"another codex-indexd (pid {pid or '?'}) holds {path}")
        self.path = path
        self.pid = pid


class InstanceLock:
    """A sidecar lock file held with `flock` for the life of the process (pre-commit style).
    Its path comes from `OurFiles.instance_lock`, keyed by the home's real path, so one home
    reached by two paths (a symlink) has one lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and write our pid into the file. Raises AlreadyRunning, UnsafeTarget."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = _open_lock_file(self.path, 0o600)
        if not _try_flock(fd, fcntl.LOCK_EX):
            pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise AlreadyRunning(self.path, pid)
        try:
            check_fd(fd, self.path)  # ours, one name: the pid goes nowhere else
        except UnsafeTarget:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder_pid(path: Path) -> int | None:
    """Return the pid written in a held instance lock file, or None when it is not held."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if _try_flock(fd, fcntl.LOCK_SH):
            return None
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    finally:
        os.close(fd)


def lock_holders(lock_file: Path) -> list[int]:
    """Return pids holding a flock on `lock_file`, from /proc/locks (no probing; Linux only)."""
    try:
        st = os.stat(lock_file)
        text = Path("/proc/locks").read_text(encoding="ascii", errors="replace")
    except OSError:
        return []
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    wanted = f"{major:02x}:{minor:02x}:{st.st_ino}"
    pids = []
    for raw in text.splitlines():
        parts = raw.split()
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == wanted:
            pids.append(int(parts[4]))
    return pids
