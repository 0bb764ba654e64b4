"""Persisted tracker state, so that a restart does not reread every rollout.

The checkpoint holds offsets and extracted facts (prompt text included), so it is written
0600 in our cache directory. It is JSON lines: a header, then one line per rollout, so that
neither writing nor reading it holds a second copy of everything in memory. The header may
carry a `Verified` record: what the last reconcile that left no drift saw, which lets a
restart skip planning for whatever has not changed since.

A different format version, another home or a file that does not parse is discarded, and
the daemon falls back to a full scan.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from operator import attrgetter
from pathlib import Path
from typing import Any

from codex_indexd.codex.rollout import RolloutScan
from codex_indexd.engine.live import FileState, RolloutTracker, device
from codex_indexd.index.model import Policy, Rename, RolloutFacts, ThreadRow, UserTurn
from codex_indexd.log import get_logger
from codex_indexd.records import field, record
from codex_indexd.watch.threads import ThreadTable
from codex_indexd.write.atomic import write_atomic

log = get_logger("codex_indexd.checkpoint")
FORMAT_VERSION = 6
_SAME_AS_FIRST = 1  # in a title's place: the title is the first message (stored once)

Fingerprint = tuple[int, int, int, int]
_ROW_FIELDS = attrgetter(*ThreadRow.__slots__)


def row_digest(row: ThreadRow) -> int:
    """Return a digest of every field of a DB row that is stable across processes."""
    encoded = repr(_ROW_FIELDS(row)).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(encoded, digest_size=8).digest(), "big")


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
    row_digests: dict[str, int] = field(default_factory=dict)
    restored: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "index_fp": self.index_fp,
            "history_fp": self.history_fp,
            "db_path": self.db_path,
            "rows": self.row_digests,
            "restored": self.restored,
        }

    @classmethod
    def from_json(cls, data: Any) -> Verified:
        """Raises TypeError/KeyError/ValueError when `data` is not a valid record."""
        if not isinstance(data, dict):
            raise TypeError("verified record is not an object")
        rows, restored = data["rows"], data["restored"]
        if not isinstance(rows, dict) or not isinstance(restored, list):
            raise TypeError("verified rows or restored ids have the wrong type")
        _check_ints(*rows.values())
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


def _fingerprint(value: Any) -> Fingerprint | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 4:
        raise TypeError("a fingerprint is not a list of four integers")
    _check_ints(*value)
    return (value[0], value[1], value[2], value[3])


def _facts_to_json(f: RolloutFacts) -> list[Any]:
    return [
        f.thread_id,
        f.archived,
        f.created_at,
        f.last_timestamp,
        f.source,
        f.history_mode,
        f.first_user_message,
        _SAME_AS_FIRST if f.title is not None and f.title == f.first_user_message else f.title,
        [[t.ts, t.text, t.key, t.offset] for t in f.user_turns],
        [[r.name, r.updated_at, r.epoch_ms] for r in f.renames],
        f.has_meta,
    ]


def _intern(value: Any) -> Any:
    return sys.intern(value) if isinstance(value, str) else value


def _facts_from_json(row: list[Any], path: str) -> RolloutFacts:
    (tid, archived, created, last, source, mode, first, title, turns, renames, has_meta) = row
    if not isinstance(tid, str):
        raise TypeError("thread id is not a string")
    if first is not None:
        first = sys.intern(first)  # shared with the DB row's copy
    if title == _SAME_AS_FIRST and first is None:
        raise ValueError("a title refers to a missing first message")
    for text in (first, created, last, source, mode):  # a loop: faster than all() per row
        if not (text is None or isinstance(text, str)):
            raise TypeError("a text field is not a string")
    if not (title is None or title == _SAME_AS_FIRST or isinstance(title, str)):
        raise TypeError("the title is not a string")
    user_turns = [
        UserTurn(ts, first if text is not None and text == first else text, key, offset)
        for ts, text, key, offset in turns
    ]
    for turn in user_turns:
        if not (type(turn.ts) is type(turn.key) is type(turn.offset) is int):  # see _check_ints
            raise TypeError("a number field is not an integer")
        if not (turn.text is None or isinstance(turn.text, str)):
            raise TypeError("a turn's text is not a string")
    return RolloutFacts(
        sys.intern(tid),
        path,
        bool(archived),
        created,
        last,
        _intern(source),
        _intern(mode),
        first,
        first if title == _SAME_AS_FIRST else _intern(title),
        user_turns,
        [Rename(str(n), str(u), e) for n, u, e in renames],
        bool(has_meta),
    )


def _check_ints(*values: Any) -> None:
    """Offsets and sizes are compared with stat results later: they must be integers. JSON
    numbers are `int` itself (`type` is, a bool's is not), and a loop is faster than `all`."""
    for value in values:
        if type(value) is not int:
            raise TypeError("a number field is not an integer")


def _dumps(value: Any) -> bytes:
    # ASCII escapes: a rollout name that is not UTF-8 (a lone surrogate once decoded) round-trips.
    return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"


def _lines(tracker: RolloutTracker, verified: Verified | None) -> Iterator[bytes]:
    yield _dumps(
        {
            "v": FORMAT_VERSION,
            "home": str(tracker.home.root),
            "files": len(tracker.files),
            "verified": verified.to_json() if verified is not None else None,
        }
    )
    for key, st in tracker.files.items():
        scan = st.scan
        yield _dumps(
            [
                key,
                st.dev,
                st.ino,
                st.size,
                st.mtime_ns,
                scan.offset,
                scan.lines,
                scan.malformed,
                scan.too_long,
                scan.bare,
                scan.expected_id,
                scan._meta_locked,
                _facts_to_json(scan.facts),
            ]
        )


def save(tracker: RolloutTracker, path: Path, verified: Verified | None = None) -> None:
    """Write the tracker's state (and `verified`) atomically, 0600, in bounded chunks."""
    write_atomic(path, _lines(tracker, verified))


def _load_row(tracker: RolloutTracker, row: Any) -> None:
    if not isinstance(row, list) or len(row) != 13:
        raise ValueError("a row is not a list of 13 fields")
    key, dev, ino, size, mtime, offset, lines, malformed, too_long = row[:9]
    bare, expected, locked, facts = row[9:]
    _check_ints(dev, ino, size, mtime, offset, lines, malformed, too_long)
    if not isinstance(key, str) or not (expected is None or isinstance(expected, str)):
        raise TypeError("path or expected id is not a string")
    key = sys.intern(key)
    dev = device(dev)
    size = offset if offset == size else size  # usually equal: one int object for both
    scan = RolloutScan(
        _facts_from_json(facts, key),
        offset,
        lines,
        malformed,
        too_long,
        bool(bare),
        _intern(expected),
        bool(locked),
    )
    scan.keep_text = key.endswith(".zst")  # as the tracker scans them
    tracker.files[key] = FileState(dev, ino, size, mtime, scan)
    tracker._by_inode[(dev, ino)] = key


def load(tracker: RolloutTracker, path: Path) -> tuple[bool, Verified | None]:
    """Fill an empty tracker from the checkpoint; return whether it was usable, and the
    verified record it carried. An unusable checkpoint is logged and leaves the tracker empty."""
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
                _load_row(tracker, json.loads(line))
        if len(tracker.files) != header["files"]:
            raise ValueError("fewer rows than the header announces")
    except FileNotFoundError:
        return False, None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning(
            "checkpoint.discarded", path=str(path), reason=f"unreadable: {type(exc).__name__}"
        )
        tracker.files.clear()
        tracker._by_inode.clear()
        return False, None
    return True, verified
