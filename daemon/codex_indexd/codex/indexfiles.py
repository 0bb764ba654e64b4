"""Readers of `session_index.jsonl` and `history.jsonl`: regular files only, read a chunk at a
time into the parsed forms of `index.files` (which keep every line's exact bytes, so a rewrite
can keep the lines it does not understand)."""

from __future__ import annotations

import _thread
import errno
import os
import stat
from pathlib import Path
from typing import Protocol, TypeVar

from codex_indexd.collector import paused_gc
from codex_indexd.index.lines import HistoryFile, IndexFile
from codex_indexd.log import get_logger

log = get_logger("codex_indexd.indexfiles")


# The index files are parsed this many bytes at a time. A chunk's lines, decoded texts and
# parsed objects take about 7 times its size while it is parsed; 256 KiB parses a 29 MB
# history as fast as 1 MiB does, with 2 MiB less at the peak.
READ_CHUNK = 1 << 18


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def extend_from(target: IndexFile | HistoryFile, handle: Readable) -> int:
    """Parse what `handle` holds from its position on into `target`, as `split_lines` would,
    a chunk at a time (the file's bytes are never all in memory); return the bytes read. The
    garbage collector is paused meanwhile (`paused_gc`)."""
    with paused_gc():
        return _extend_from(target, handle)


def _extend_from(target: IndexFile | HistoryFile, handle: Readable) -> int:
    total = 0
    parts: list[bytes] = []  # a line longer than a chunk, so far
    while data := handle.read(READ_CHUNK):
        total += len(data)
        cut = data.rfind(b"\n")
        if cut == -1:
            parts.append(data)
            continue
        head = b"".join([*parts, data[:cut]]) if parts else data[:cut]
        target.extend_data(head)
        parts = [data[cut + 1 :]] if cut + 1 < len(data) else []
    if parts:
        target.extend_data(b"".join(parts))  # a last line without its newline
    target.ends_with_newline = not parts
    target.size += total
    return total


class NotRegularFile(OSError):
    """An index file we refuse to read: a symlink, a FIFO, a device, a directory, ...;
    `reason` says which, in words."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(errno.EINVAL, f"{path} {reason}; not reading it")
        self.path = path
        self.reason = reason


_KINDS = (
    (stat.S_ISDIR, "is a directory"),
    (stat.S_ISFIFO, "is a FIFO"),
    (stat.S_ISCHR, "is a character device"),
    (stat.S_ISBLK, "is a block device"),
    (stat.S_ISSOCK, "is a socket"),
)


def kind_of(mode: int) -> str:
    """Return what a non-regular `st_mode` is, in words ("is a FIFO")."""
    for test, words in _KINDS:
        if test(mode):
            return words
    return "is not a regular file"


class RegularFileReader:
    """A regular file opened without following a link or blocking, read with `pread` and
    never past the size it had when it was opened (a file that grows meanwhile is read up to
    that size; the rest is for the next look)."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size  # st_size at open: the most this reader returns
        self.position = 0

    def read(self, size: int = -1, /) -> bytes:
        """Return up to `size` bytes (all up to the size at open when negative)."""
        left = self.size - self.position
        want = left if size < 0 else min(size, left)
        chunks: list[bytes] = []
        while want > 0:
            chunk = os.pread(self.fd, min(want, READ_CHUNK), self.position)
            if not chunk:
                break  # truncated meanwhile
            chunks.append(chunk)
            self.position += len(chunk)
            want -= len(chunk)
        return b"".join(chunks)

    def seek(self, offset: int) -> int:
        self.position = max(0, offset)
        return self.position

    def tell(self) -> int:
        return self.position

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> RegularFileReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_regular(path: Path) -> RegularFileReader:
    """Open `path` for reading with `O_NONBLOCK|O_NOFOLLOW` and check the fd is a regular
    file. Raises FileNotFoundError when absent, NotRegularFile for a symlink or anything but a
    regular file (a FIFO never blocks the open), other OSErrors as they come."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegularFile(path, "is a symbolic link") from None
        if exc.errno == errno.ENXIO:  # a socket, or a device without its driver
            raise NotRegularFile(path, "is not a regular file") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(path, kind_of(st.st_mode))
    except BaseException:
        os.close(fd)
        raise
    return RegularFileReader(fd, st.st_size)


class _RefusalLog:
    """Logs one line per refused file and reason, until the file reads normally again."""

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()  # `threading.Lock`, without importing threading
        self._logged: dict[str, str] = {}

    def refused(self, path: Path, reason: str) -> None:
        with self._lock:
            if self._logged.get(str(path)) == reason:
                return
            self._logged[str(path)] = reason
        log.warning("index_file.refused", path=str(path), reason=reason)

    def readable(self, path: Path) -> None:
        if str(path) in self._logged:
            with self._lock:
                self._logged.pop(str(path), None)


refusals = _RefusalLog()


def open_index_file(path: Path) -> RegularFileReader:
    """`open_regular`, with a refusal logged once (a warning naming the file and why) until
    the file reads normally again. Raises FileNotFoundError, NotRegularFile, OSError."""
    try:
        reader = open_regular(path)
    except NotRegularFile as exc:
        refusals.refused(path, exc.reason)
        raise
    refusals.readable(path)
    return reader


def read_bytes(path: Path) -> bytes:
    """Return the bytes of a regular file up to its size at open, or b"" when it does not
    exist. Raises NotRegularFile, other OSErrors."""
    try:
        with open_regular(path) as reader:
            return reader.read()
    except FileNotFoundError:
        return b""


_Parsed = TypeVar("_Parsed", IndexFile, HistoryFile)


def _read_into(result: _Parsed, path: Path) -> _Parsed:
    """Parse `path` into `result` a chunk at a time. A missing file is an empty one; a file we
    refuse to read comes back empty with `refused` saying why (logged once). Raises other
    OSErrors."""
    try:
        with open_index_file(path) as reader:
            extend_from(result, reader)
    except FileNotFoundError:
        pass
    except NotRegularFile as exc:
        result.refused = exc.reason
    return result


def read_index(path: Path) -> IndexFile:
    """Parse `session_index.jsonl` (see `_read_into`)."""
    return _read_into(IndexFile(), path)


def read_history(path: Path) -> HistoryFile:
    """Parse `history.jsonl` into keys (`compact`): memory holds neither the file's bytes nor
    its texts (see `_read_into`)."""
    return _read_into(HistoryFile(compact=True), path)


def file_fingerprint(path: Path) -> tuple[int, int, int, int] | None:
    """Return `(dev, inode, size, mtime_ns)`, or None when the file does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
