"""Parsed `session_index.jsonl` and `history.jsonl` (pure): every line's fields, the exact
bytes of the lines that do not parse, and what tells an append from a rewrite.

The readers (`codex.indexfiles`) fill these from files; the planner and the writers use them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable

from codex_indexd.index.model import HistoryLine, IndexLine, text_key
from codex_indexd.records import field, record


@record(slots=True)
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


@record(slots=True)
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


def canonical_uuid(text: str) -> str:
    """Return `str(uuid.UUID(text))`: the lower-case 8-4-4-4-12 form of a UUID string (braces,
    `urn:`/`uuid:` and hyphens anywhere accepted, as `uuid.UUID` accepts them). Raises
    ValueError for anything `uuid.UUID` refuses. The same steps as `uuid.UUID`; importing
    `uuid` would cost about 1.7 ms (it imports `platform`)."""
    digits = text.replace("urn:", "").replace("uuid:", "").strip("{}").replace("-", "")
    if len(digits) != 32:
        raise ValueError("badly formed hexadecimal UUID string")
    value = int(digits, 16)
    if not 0 <= value < 1 << 128:
        raise ValueError("int is out of range (need a 128-bit value)")
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def parse_index_line(raw: bytes) -> IndexLine | None:
    """Return the line's fields when Codex would accept it (all three present, id a UUID)."""
    obj = _json_object(raw)
    if obj is None:
        return None
    thread_id, name, updated = obj.get("id"), obj.get("thread_name"), obj.get("updated_at")
    if not (isinstance(thread_id, str) and isinstance(name, str) and isinstance(updated, str)):
        return None
    try:
        canonical = canonical_uuid(thread_id)
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
