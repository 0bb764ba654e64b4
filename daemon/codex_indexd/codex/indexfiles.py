"""Parsers for `session_index.jsonl` and `history.jsonl` (codex-formats.md §3, §4).

Both keep every line's exact bytes, so a rewrite can keep the lines it does not understand.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from codex_indexd.index.model import HistoryLine, IndexLine, text_key
from codex_indexd.log import get_logger

log = get_logger("codex_indexd.indexfiles")


@dataclass(slots=True)
class IndexFile:
    """A parsed `session_index.jsonl`: the parsed lines, the latest line per id, the names
    each id had before it, and the exact bytes of the lines that do not parse."""

    parsed: list[IndexLine | None] = field(default_factory=list)
    latest: dict[str, IndexLine] = field(default_factory=dict)
    # Names an id had before its latest line, in file order (ids named once are absent).
    renamed_from: dict[str, list[str]] = field(default_factory=dict)
    malformed: list[bytes] = field(default_factory=list)
    last_raw: bytes | None = None  # the last line's bytes: tells an append from a rewrite
    ends_with_newline: bool = True
    size: int = 0
    refused: str | None = None  # why the file was not read (not a regular file, ...)

    def add(self, raw: bytes) -> None:
        """Append one raw line (without its newline) and index it."""
        parsed = parse_index_line(raw)
        self.parsed.append(parsed)
        self.last_raw = raw
        if parsed is None:
            self.malformed.append(raw)
            return
        previous = self.latest.get(parsed.thread_id)
        if previous is not None:
            self.renamed_from.setdefault(parsed.thread_id, []).append(previous.thread_name)
        self.latest[parsed.thread_id] = parsed

    def extend(self, lines: list[bytes]) -> None:
        for raw in lines:
            self.add(raw)

    def earlier_names(self, thread_id: str) -> list[str]:
        """Return the names this id had before its latest line."""
        return self.renamed_from.get(thread_id, [])


@dataclass(slots=True)
class HistoryFile:
    """A parsed `history.jsonl`: the fields of each line that parses and every line's exact
    bytes; or, when `compact` (the daemon's long-lived copy), only each line's session, time
    and text key."""

    raw: list[bytes] = field(default_factory=list)
    parsed: list[HistoryLine | None] = field(default_factory=list)
    ends_with_newline: bool = True
    size: int = 0
    max_ts: int | None = None
    compact: bool = False
    last_raw: bytes | None = None
    refused: str | None = None  # why the file was not read (not a regular file, ...)
    first_raw: bytes | None = None  # the first line's bytes: Codex's trim drops it
    first_ts: int | None = None  # `ts` of the first line that parses (the oldest kept)
    _by_session: dict[str, list[HistoryLine]] | None = None

    def extend(self, lines: list[bytes]) -> None:
        """Append raw lines (without newlines), parsing them and keeping the indexes current."""
        if lines:
            self.last_raw = lines[-1]
            if self.first_raw is None:
                self.first_raw = lines[0]
        for raw in lines:
            line = parse_history_line(raw, keep_text=not self.compact)
            if line is not None and self.first_ts is None:
                self.first_ts = line.ts
            if not self.compact:
                self.raw.append(raw)
            self.parsed.append(line)
            if line is not None:
                self.max_ts = line.ts if self.max_ts is None else max(self.max_ts, line.ts)
                if self._by_session is not None:
                    self._by_session.setdefault(line.session_id, []).append(line)

    def lines_for(self, session_ids: Iterable[str]) -> list[HistoryLine]:
        """Return the parsed lines of the given sessions (index built on first use)."""
        if self._by_session is None:
            self._by_session = {}
            for line in self.parsed:
                if line is not None:
                    self._by_session.setdefault(line.session_id, []).append(line)
        out: list[HistoryLine] = []
        for sid in session_ids:
            out.extend(self._by_session.get(sid, ()))
        return out


def _json_object(raw: bytes) -> dict[str, object] | None:
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def parse_index_line(raw: bytes) -> IndexLine | None:
    """Return the line's fields when Codex would accept it (all three present, id a UUID)."""
    obj = _json_object(raw)
    if obj is None:
        return None
    thread_id, name, updated = obj.get("id"), obj.get("thread_name"), obj.get("updated_at")
    if not (isinstance(thread_id, str) and isinstance(name, str) and isinstance(updated, str)):
        return None
    try:
        canonical = str(uuid.UUID(thread_id))
    except ValueError:
        return None
    # Interned: a name is usually the thread's title, which the DB and rollout facts hold.
    return IndexLine(sys.intern(canonical), sys.intern(name), updated)


def parse_history_line(raw: bytes, *, keep_text: bool = True) -> HistoryLine | None:
    """Return the fields of a history line (the text only as its key unless `keep_text`);
    `conversation_id` is accepted for `session_id`."""
    obj = _json_object(raw)
    if obj is None:
        return None
    session_id = obj.get("session_id", obj.get("conversation_id"))
    ts, text = obj.get("ts"), obj.get("text")
    if not isinstance(session_id, str) or not isinstance(text, str):
        return None
    if not isinstance(ts, int) or isinstance(ts, bool):
        return None
    if keep_text:
        return HistoryLine(sys.intern(session_id), ts, text)
    return HistoryLine(sys.intern(session_id), ts, None, text_key(text))


def split_lines(data: bytes) -> tuple[list[bytes], bool]:
    """Return the exact lines of `data` without their newlines, and whether it ends in one.

    Blank lines are kept (history readers count newlines), and so is a torn last line.
    """
    if not data:
        return [], True
    lines = data.split(b"\n")
    ends = data.endswith(b"\n")
    if ends:
        lines.pop()
    return lines, ends


READ_CHUNK = 1 << 20


def still_prefix(
    parsed: IndexFile | HistoryFile, size: int, read_at: Callable[[int, int], bytes]
) -> bool:
    """True when a file of `size` bytes (read through `read_at(offset, length)`) still starts
    with the bytes `parsed` was parsed from, so that only what follows is new: its last line
    is still where it was (Codex only appends; a writer that inserted lines in place shifts
    it), and a torn last line (no newline) is still the file's end, not yet completed."""
    if parsed.size > size or (not parsed.ends_with_newline and size != parsed.size):
        return False
    newline = b"\n" if parsed.ends_with_newline else b""
    last = parsed.last_raw + newline if parsed.last_raw is not None else b""
    if read_at(parsed.size - len(last), len(last)) != last:
        return False
    # Codex's `max_bytes` trim rewrites the file from its first byte: its first line goes.
    if not isinstance(parsed, HistoryFile) or parsed.first_raw is None:
        return True
    first = parsed.first_raw + b"\n"
    return len(first) >= parsed.size or read_at(0, len(first)) == first


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def extend_from(target: IndexFile | HistoryFile, handle: Readable) -> int:
    """Parse what `handle` holds from its position on into `target`, as `split_lines` would,
    a chunk at a time (the file's bytes are never all in memory); return the bytes read."""
    total = 0
    parts: list[bytes] = []  # a line longer than a chunk, so far
    while data := handle.read(READ_CHUNK):
        total += len(data)
        cut = data.rfind(b"\n")
        if cut == -1:
            parts.append(data)
            continue
        head = b"".join([*parts, data[:cut]]) if parts else data[:cut]
        target.extend(head.split(b"\n"))
        parts = [data[cut + 1 :]] if cut + 1 < len(data) else []
    if parts:
        target.extend([b"".join(parts)])  # a last line without its newline
    target.ends_with_newline = not parts
    target.size += total
    return total


def parse_index_bytes(data: bytes) -> IndexFile:
    """Parse the bytes of a `session_index.jsonl`; the last line per id wins."""
    raw, ends = split_lines(data)
    result = IndexFile(ends_with_newline=ends, size=len(data))
    for line in raw:
        result.add(line)
    return result


def parse_history_bytes(data: bytes) -> HistoryFile:
    """Parse the bytes of a `history.jsonl`."""
    raw, ends = split_lines(data)
    result = HistoryFile(ends_with_newline=ends, size=len(data))
    result.extend(raw)
    return result


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
        self._lock = threading.Lock()
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
