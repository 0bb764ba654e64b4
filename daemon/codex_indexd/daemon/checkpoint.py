"""Persisted tracker state, so that a restart does not reread every rollout.

The checkpoint holds offsets and extracted facts (prompt text included), so it is written
0600 in our cache directory. It is JSON lines: a header, then one line per chunk of rollouts
holding each field as a column (so `json` decodes a chunk without a Python step per value),
so that neither writing nor reading it holds a second copy of everything in memory. The header may
carry a `Verified` record: what the last reconcile that left no drift saw, which lets a
restart skip planning for whatever has not changed since.

A different format version, another home or a file that does not parse is discarded, and
the daemon falls back to a full scan.
"""

from __future__ import annotations

import json
import marshal
import struct
import sys

# hashlib.blake2b is this type; importing hashlib would also load OpenSSL (3.4 MiB of RSS).
from _blake2 import blake2b
from collections.abc import Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import Any

from codex_indexd.collector import paused_gc
from codex_indexd.daemon.checkpoint_chunks import SAME, check_ints, checked_chunk, encode_chunk
from codex_indexd.engine.file_state import FileState, pack_columns
from codex_indexd.engine.live import RolloutTracker
from codex_indexd.index.model import NO_RENAMES, Policy, RolloutFacts, ThreadRow, Turns
from codex_indexd.log import get_logger
from codex_indexd.records import field, record
from codex_indexd.watch.threads import ThreadTable
from codex_indexd.write.atomic import write_atomic

log = get_logger("codex_indexd.checkpoint")
FORMAT_VERSION = 8
_CHUNK = 256  # rows per line: a line's columns are decoded by `json` alone; its JSON while
# it is encoded (fragments, text, bytes) is a save's peak memory: about 1 MiB

Fingerprint = tuple[int, int, int, int]


def row_digest(row: ThreadRow) -> int:
    """Return a digest of every field of a DB row that is stable across processes: of its
    `marshal` form, version 2 (no back-references, which would depend on reference counts)."""
    digest = blake2b(marshal.dumps(tuple(row), 2), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def changed_since(
    verified: Verified,
    policy: str,
    table: ThreadTable,
    index_fp: Fingerprint | None,
    history_fp: Fingerprint | None,
) -> set[str] | None:
    """Return the threads whose DB row changed (or went) since `verified` was recorded, or
    None when the record cannot vouch for the home now: another policy (`policy_key`), an
    unreadable or different DB file, or either index file not the one it saw."""
    if verified.policy != policy or table.error is not None:
        return None
    if verified.db_path != (str(table.db_path) if table.db_path else None):
        return None
    if index_fp != verified.index_fp or history_fp != verified.history_fp:
        return None
    rows = table.rows or {}
    digests = verified.row_digests
    changed = {tid for tid, row in rows.items() if digests.get(tid) != row_digest(row)}
    changed.update(tid for tid in digests if tid not in rows)
    return changed


def policy_key(policy: Policy) -> str:
    """Return a stable text for everything in `policy` that changes a plan."""
    sources = None if policy.history_sources is None else sorted(policy.history_sources)
    return json.dumps(
        [
            policy.max_threads,
            policy.include_orphans,
            policy.only.value,
            policy.history_max_bytes,
            policy.history_enabled,
            sources,
            policy.history_ts_tolerance_s,
        ]
    )


@record(slots=True)
class Verified:
    """What a reconcile that left no drift saw: the policy, the two index files' fingerprints
    (after our own writes), a digest of every DB row, and the threads it restored."""

    policy: str
    index_fp: Fingerprint | None
    history_fp: Fingerprint | None
    db_path: str | None
    row_digests: Mapping[str, int] = field(default_factory=dict)
    restored: list[str] = field(default_factory=list)

    def to_json(self, *, rows: bool = True) -> dict[str, Any]:
        """Return the record as JSON values; without `rows`, neither the row digests nor the
        restored ids (`checkpoint._header` writes those in pieces after the rest)."""
        head: dict[str, Any] = {
            "policy": self.policy,
            "index_fp": self.index_fp,
            "history_fp": self.history_fp,
            "db_path": self.db_path,
        }
        if not rows:
            return head
        return {**head, "rows": dict(self.row_digests), "restored": self.restored}

    @classmethod
    def from_json(cls, data: Any) -> Verified:
        """Raises TypeError/KeyError/ValueError when `data` is not a valid record."""
        if not isinstance(data, dict):
            raise TypeError("verified record is not an object")
        rows, restored = data["rows"], data["restored"]
        if not isinstance(rows, dict) or not isinstance(restored, list):
            raise TypeError("verified rows or restored ids have the wrong type")
        check_ints(*rows.values())
        if not all(isinstance(tid, str) for tid in restored):
            raise TypeError("a restored id is not a string")
        policy, db_path = data["policy"], data["db_path"]
        if not isinstance(policy, str) or not (db_path is None or isinstance(db_path, str)):
            raise TypeError("verified policy or db path has the wrong type")
        return cls(
            policy,
            _fingerprint(data["index_fp"]),
            _fingerprint(data["history_fp"]),
            db_path,
            {sys.intern(tid): digest for tid, digest in rows.items()},
            [sys.intern(tid) for tid in restored],
        )


def record_digest(verified: Verified | None) -> bytes | None:
    """Return a digest of `verified` (None for no record): equal records have equal digests,
    so a worker keeps this rather than the record (a digest per DB row) to tell whether a
    save would change it."""
    if verified is None:
        return None
    h = blake2b(digest_size=16)
    head = (verified.policy, verified.index_fp, verified.history_fp, verified.db_path)
    h.update(marshal.dumps(head, 2))
    # In pieces: the whole record would be megabytes at 50,000 threads. Another order of the
    # same rows gives another digest: only a save that was not needed.
    for part in (iter(verified.row_digests.items()), iter(verified.restored)):
        while piece := list(islice(part, _CHUNK)):
            h.update(marshal.dumps(piece, 2))
        h.update(b"|")
    return h.digest()


class RowDigests(Mapping[str, int]):
    """The `row_digest` of each of `rows` (by thread id), each computed when looked at: a
    worker's verified record is usually only digested (`record_digest`), and a dict of them
    would be 4 MiB at 50,000 threads."""

    __slots__ = ("_rows",)

    def __init__(self, rows: Mapping[str, ThreadRow]) -> None:
        self._rows = rows

    def __getitem__(self, tid: str) -> int:
        return row_digest(self._rows[tid])

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


def _fingerprint(value: Any) -> Fingerprint | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 4:
        raise TypeError("a fingerprint is not a list of four integers")
    check_ints(*value)
    return (value[0], value[1], value[2], value[3])


def _interned(values: list[Any]) -> list[Any]:
    """Return a column with its strings interned (None and the SAME marker kept)."""
    intern = sys.intern
    return [intern(v) if type(v) is str else v for v in values]


def _load_chunk(tracker: RolloutTracker, chunk: Any) -> None:
    """Add one chunk of rows to the tracker. Raises KeyError, TypeError or ValueError when it
    is not what `encode_chunk` writes.

    Column by column: each record is built by `map` over its columns, so that no Python step
    runs per row and field (a sixth of a warm start at 50,000 rollouts, row by row)."""
    columns, tdata, renames = checked_chunk(chunk)
    intern = sys.intern
    keys = list(map(intern, columns["keys"]))  # shared with the facts' path and the DB row's
    tids = list(map(intern, columns["tids"]))
    firsts = _interned(columns["first"])  # shared with the DB row's copy
    raw_titles = _interned(columns["title"])
    if any(fm is None for fm, t in zip(firsts, raw_titles, strict=True) if t == SAME):
        raise ValueError("a title refers to a missing first message")
    titles = [fm if t == SAME else t for fm, t in zip(firsts, raw_titles, strict=True)]
    turns = Turns.split(tdata, columns["turns"], _turn_texts(columns, firsts))
    flags = columns["flags"]
    rows = range(len(keys))
    facts = map(
        RolloutFacts,
        tids,
        keys,
        [bool(f & 4) for f in flags],
        columns["created"],
        columns["last"],
        _interned(columns["source"]),
        list(map(intern, columns["mode"])),
        firsts,
        titles,
        turns,
        [renames.get(row, NO_RENAMES) for row in rows],
        [bool(f & 8) for f in flags],
    )
    nums = columns["nums"]
    expected = [
        tid if exp == SAME else exp
        for tid, exp in zip(tids, _interned(columns["expected"]), strict=True)
    ]
    try:
        packed = pack_columns(
            *(nums[i::8] for i in range(8)), [f & 3 for f in flags]
        )  # the reader's flags: bare, session_meta locked
    except struct.error as exc:  # a number out of the range of a stat field or a count
        raise ValueError(f"a number does not fit: {exc}") from None
    tracker.files.update(zip(keys, map(FileState, facts, packed, expected), strict=True))


def _turn_texts(columns: dict[str, list[Any]], firsts: list[str | None]) -> list[str | None] | None:
    """Return the turn texts of a chunk (the SAME marker replaced by the row's first message),
    or None when no turn keeps its text. Raises ValueError for a marker without a message."""
    texts = columns["texts"]
    if not texts:
        return None
    out: list[str | None] = []
    at = 0
    for fm, count in zip(firsts, columns["turns"], strict=True):
        row = texts[at : at + count]
        at += count
        if SAME in row:
            if fm is None:
                raise ValueError("a turn refers to a missing first message")
            row = [fm if t == SAME else t for t in row]
        out += row
    return out


def _dumps(value: Any) -> bytes:
    # ASCII escapes: a rollout name that is not UTF-8 (a lone surrogate once decoded) round-trips.
    return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"


def _header(tracker: RolloutTracker, verified: Verified | None) -> Iterator[bytes]:
    """Yield the header line (`_dumps` of it, byte for byte) in pieces: the verified record's
    row digests and restored ids, one of each per thread, are encoded `_CHUNK` at a time, so
    that a save never holds the whole line nor a decoded copy of the record (at 50,000 threads
    both were a peak of about 15 MiB over the daemon's steady state)."""
    head = {"v": FORMAT_VERSION, "home": str(tracker.home.root), "files": len(tracker.files)}
    if verified is None:
        yield _dumps({**head, "verified": None})
        return
    record = verified.to_json(rows=False)
    yield _dumps(head)[:-2] + b',"verified":' + _dumps(record)[:-2] + b',"rows":{'
    yield from _pieces(iter(verified.row_digests.items()), dict)
    yield b'},"restored":['
    yield from _pieces(iter(verified.restored), list)
    yield b"]}}\n"


def _pieces(
    items: Iterator[Any], container: type[dict[Any, Any]] | type[list[Any]]
) -> Iterator[bytes]:
    """Yield the JSON of `container(items)` without its brackets, `_CHUNK` items a piece."""
    comma = b""
    while piece := list(islice(items, _CHUNK)):
        yield comma + _dumps(container(piece))[1:-2]
        comma = b","


def _lines(tracker: RolloutTracker, verified: Verified | None) -> Iterator[bytes]:
    yield from _header(tracker, verified)
    items = iter(tracker.files.items())
    while chunk := list(islice(items, _CHUNK)):
        yield _dumps(encode_chunk(chunk))


def save(tracker: RolloutTracker, path: Path, verified: Verified | None = None) -> None:
    """Write the tracker's state (and `verified`) atomically, 0600, in bounded chunks."""
    write_atomic(path, _lines(tracker, verified))


def load(tracker: RolloutTracker, path: Path) -> tuple[bool, Verified | None]:
    """Fill an empty tracker from the checkpoint; return whether it was usable, and the
    verified record it carried. An unusable checkpoint is logged and leaves the tracker empty.
    The cyclic garbage collector is paused meanwhile (`paused_gc`)."""
    with paused_gc():
        return _load(tracker, path)


def _load(tracker: RolloutTracker, path: Path) -> tuple[bool, Verified | None]:
    try:
        with open(path, "rb") as handle:
            header = json.loads(handle.readline())
            if not isinstance(header, dict):
                raise TypeError("header is not a JSON object")
            if header.get("v") != FORMAT_VERSION or header.get("home") != str(tracker.home.root):
                log.info("checkpoint.discarded", path=str(path), reason="format or home changed")
                return False, None
            raw_verified = header.get("verified")
            verified = Verified.from_json(raw_verified) if raw_verified is not None else None
            for line in handle:
                _load_chunk(tracker, json.loads(line))
        if len(tracker.files) != header["files"]:
            raise ValueError("fewer rows than the header announces")
    except FileNotFoundError:
        return False, None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning(
            "checkpoint.discarded", path=str(path), reason=f"unreadable: {type(exc).__name__}"
        )
        tracker.files.clear()
        return False, None
    return True, verified
