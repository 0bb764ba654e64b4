"""Parsed `session_index.jsonl` and `history.jsonl` (pure): every line's fields, the exact
bytes of the lines that do not parse, and what tells an append from a rewrite.

The readers (`codex.indexfiles`) fill these from files; the planner and the writers use them.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence

from codex_indexd.index.line_fields import (
    canonical_uuid,
    history_fields,
    history_lines,
    index_line_of,
    json_lines,
    parse_history_line,
    parse_index_line,
)
from codex_indexd.index.model import (
    BuiltOnRead,
    HistoryLine,
    IndexLine,
    signed_key,
    text_key,
    unsigned_key,
)
from codex_indexd.records import field, record

__all__ = [  # the line readers are `index.line_fields`'s, also offered here
    "CompactLines",
    "HistoryFile",
    "IndexFile",
    "canonical_uuid",
    "parse_history_bytes",
    "parse_history_line",
    "parse_index_bytes",
    "parse_index_line",
    "split_lines",
    "still_prefix",
]

# Lines appended after `HistoryFile.lines_for` indexed the file that it looks through one by
# one; beyond that many it indexes the file again.
_UNINDEXED_LINES = 1024
# `HistoryFile.by_session` searches the index for each session when the index holds more
# than this many lines per session asked for (a search costs about 2 log2(lines) looks),
# else walks through it once.
_WALK_RATIO = 32
# `HistoryFile.by_session` of a compact file not indexed yet looks for at most this many
# sessions through the session column, one C-speed search each, without building the index
# (a list of every line number while it sorts: 4.6 MiB at 100,000 lines, for a daemon whose
# events ask for one session or a few).
_LINEAR_SESSIONS = 16


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
        self._add(raw, parse_index_line(raw))

    def _add(self, raw: bytes, parsed: IndexLine | None) -> None:
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

    def extend_data(self, data: bytes) -> None:
        """Append the lines of `data` (lines joined by newlines, without the last newline):
        `extend(data.split(b"\\n"))`, parsed a chunk at a time."""
        raws, objects = json_lines(data)
        for raw, obj in zip(raws, objects, strict=True):
            self._add(raw, index_line_of(obj))

    def earlier_names(self, thread_id: str) -> list[str]:
        """Return the names this id had before its latest line."""
        return self.renamed_from.get(thread_id, [])


_INT64 = range(-(1 << 63), 1 << 63)


class CompactLines(BuiltOnRead["HistoryLine | None"]):
    """The parsed lines of a compact `HistoryFile`, each built when it is looked at."""

    __slots__ = ("_file",)

    def __init__(self, history: HistoryFile) -> None:
        self._file = history

    def __len__(self) -> int:
        return len(self._file._sids)

    def _item(self, i: int) -> HistoryLine | None:
        return self._file._line(i)

    def keyed(self, sessions: set[str]) -> Iterator[tuple[str, int, int]]:
        """Yield `(session_id, key, ts)` of the lines of `sessions`, in file order, without
        building their HistoryLine (a full plan looks at every line of the file)."""
        history = self._file
        sids, ts_column, keys, big = history._sids, history._ts, history._keys, history._big_ts
        for i in [i for i, sid in enumerate(sids) if sid in sessions]:
            sid = sids[i]
            assert sid is not None
            yield sid, unsigned_key(keys[i]), big.get(i, ts_column[i]) if big else ts_column[i]


@record(slots=True, eq=False)
class HistoryFile:
    """A parsed `history.jsonl`: the fields of each line that parses and every line's exact
    bytes; or, when `compact` (the daemon's long-lived copy), only each line's session, time
    and text key, kept in columns (`parsed` builds each line's `HistoryLine` when it is
    looked at)."""

    ends_with_newline: bool = True
    size: int = 0
    max_ts: int | None = None
    compact: bool = False
    last_raw: bytes | None = None
    refused: str | None = None  # why the file was not read (not a regular file, ...)
    first_raw: bytes | None = None  # the first line's bytes: Codex's trim drops it
    first_ts: int | None = None  # `ts` of the first line that parses (the oldest kept)
    raw: list[bytes] = field(default_factory=list)  # empty when `compact`
    # Not compact: one HistoryLine (None: it does not parse) per line.
    _parsed: list[HistoryLine | None] = field(default_factory=list)
    # Compact: a line's session (None: it does not parse), `ts` and key (signed, see
    # `signed_key`); a `ts` outside 64 bits is kept in `_big_ts` by line number (its column
    # holds 0).
    _sids: list[str | None] = field(default_factory=list)
    _ts: array[int] = field(default_factory=lambda: array("q"))
    _keys: array[int] = field(default_factory=lambda: array("q"))
    _big_ts: dict[int, int] = field(default_factory=dict)
    # Line numbers of the lines that parse, sorted by session (file order within one),
    # covering the first `_indexed` lines; built by `lines_for` on first use.
    _order: array[int] | None = None
    _indexed: int = 0

    @property
    def parsed(self) -> Sequence[HistoryLine | None]:
        """Every line's fields in file order (None for a line that does not parse)."""
        return CompactLines(self) if self.compact else self._parsed

    def _line(self, i: int) -> HistoryLine | None:
        """Return line `i`'s fields (compact: built from the columns)."""
        if not self.compact:
            return self._parsed[i]
        sid = self._sids[i]
        if sid is None:
            return None
        ts = self._big_ts.get(i, self._ts[i]) if self._big_ts else self._ts[i]
        return HistoryLine(sid, ts, None, unsigned_key(self._keys[i]))

    def _session_of(self, i: int) -> str | None:
        if self.compact:
            return self._sids[i]
        line = self._parsed[i]
        return None if line is None else line.session_id

    def __len__(self) -> int:
        return len(self._sids) if self.compact else len(self._parsed)

    def extend(self, lines: list[bytes]) -> None:
        """Append raw lines (without newlines), parsing them and keeping the indexes current."""
        self._extend(lines, [history_fields(raw) for raw in lines])

    def extend_data(self, data: bytes) -> None:
        """Append the lines of `data` (lines joined by newlines, without the last newline):
        `extend(data.split(b"\\n"))`, parsed a chunk at a time."""
        self._extend(*history_lines(data))

    def _extend(self, lines: list[bytes], parsed: list[tuple[str, int, str] | None]) -> None:
        if lines:
            self.last_raw = lines[-1]
            if self.first_raw is None:
                self.first_raw = lines[0]
        compact = self.compact
        max_ts = self.max_ts
        for raw, fields in zip(lines, parsed, strict=True):
            if fields is None:
                if compact:
                    self._sids.append(None)
                    self._ts.append(0)
                    self._keys.append(0)
                else:
                    self.raw.append(raw)
                    self._parsed.append(None)
                continue
            session_id, ts, text = fields
            if self.first_ts is None:
                self.first_ts = ts
            max_ts = ts if max_ts is None or ts > max_ts else max_ts
            if compact:
                if ts not in _INT64:
                    self._big_ts[len(self._sids)] = ts
                    ts = 0
                self._sids.append(session_id)
                self._ts.append(ts)
                self._keys.append(signed_key(text_key(text)))
            else:
                self.raw.append(raw)
                self._parsed.append(HistoryLine(session_id, ts, text))
        self.max_ts = max_ts

    def lines_for(self, session_ids: Iterable[str]) -> list[HistoryLine]:
        """Return the parsed lines of the given sessions, session by session, each session's
        in file order (an index of line numbers by session is built on first use; lines
        appended since are looked through one by one until there are many)."""
        order = self._index()
        session_of = self._session_of
        tail = range(self._indexed, len(self))
        out: list[HistoryLine] = []
        for sid in session_ids:
            start = bisect_left(order, sid, key=session_of)  # type: ignore[arg-type]
            end = bisect_right(order, sid, lo=start, key=session_of)  # type: ignore[arg-type]
            found = [order[j] for j in range(start, end)]
            found += [i for i in tail if session_of(i) == sid]
            for i in found:
                line = self._line(i)
                assert line is not None
                out.append(line)
        return out

    def _index(self) -> array[int]:
        """Return the line numbers of the lines that parse, sorted by session (file order
        within one), indexing the file again when many lines were appended since."""
        count = len(self)
        if self._order is None or count - self._indexed > _UNINDEXED_LINES:
            session_of = self._session_of
            rows = [i for i in range(count) if session_of(i) is not None]
            rows.sort(key=session_of)  # type: ignore[arg-type]  # rows that parse only
            self._order, self._indexed = array("q", rows), count
        return self._order

    def by_session(self, session_ids: Iterable[str]) -> Iterator[tuple[str, list[tuple[int, int]]]]:
        """Yield each of the given (distinct) sessions, sorted, with the signed key and `ts`
        of each of its parsed lines in file order (what `lines_for` of that one session
        holds, without building the lines): a search per session when they are few, else
        one walk through the index of line numbers by session."""
        if self.compact and self._order is None:
            asked = sorted(session_ids)
            if len(asked) <= _LINEAR_SESSIONS:
                for one in asked:
                    yield one, self._keyed(self._rows_of(one))
                return
            session_ids = asked
        order = self._index()
        session_of = self._session_of
        late: dict[str, list[int]] = {}  # lines appended since the index was built
        for i in range(self._indexed, len(self)):
            sid = session_of(i)
            if sid is not None:
                late.setdefault(sid, []).append(i)
        wanted = sorted(session_ids)
        search = len(wanted) * _WALK_RATIO < len(order)  # a walk costs more than searches
        j, end = 0, len(order)
        for sid in wanted:
            if search:
                j = bisect_left(order, sid, lo=j, key=session_of)  # type: ignore[arg-type]
            else:
                while j < end and session_of(order[j]) < sid:  # type: ignore[operator]
                    j += 1
            start = j
            while j < end and session_of(order[j]) == sid:
                j += 1
            yield sid, self._keyed([*order[start:j], *late.get(sid, ())])

    def _rows_of(self, sid: str) -> list[int]:
        """Return the line numbers of a session's lines in file order (compact files), found
        by searching the session column from each one found to the next."""
        sids, rows, at = self._sids, [], 0
        try:
            while True:
                at = sids.index(sid, at)
                rows.append(at)
                at += 1
        except ValueError:
            return rows

    def _keyed(self, rows: list[int]) -> list[tuple[int, int]]:
        """Return the signed key and `ts` of each of these lines (all of them parse)."""
        if not self.compact:
            parsed = self._parsed
            return [(signed_key(ln.key), ln.ts) for ln in (parsed[i] for i in rows) if ln]
        keys, ts_column, big = self._keys, self._ts, self._big_ts
        if big:
            return [(keys[i], big.get(i, ts_column[i])) for i in rows]
        return [(keys[i], ts_column[i]) for i in rows]


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
    ends = not data or data.endswith(b"\n")
    result = IndexFile(ends_with_newline=ends, size=len(data))
    if data:  # the lines `split_lines` gives
        result.extend_data(data[:-1] if ends else data)
    return result


def parse_history_bytes(data: bytes) -> HistoryFile:
    """Parse the bytes of a `history.jsonl`."""
    ends = not data or data.endswith(b"\n")
    result = HistoryFile(ends_with_newline=ends, size=len(data))
    if data:  # the lines `split_lines` gives
        result.extend_data(data[:-1] if ends else data)
    return result
