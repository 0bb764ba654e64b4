"""One chunk of checkpoint rows as JSON columns: written from the tracker's file states, and
checked column by column (types and lengths) before the checkpoint loads it."""

from __future__ import annotations

from array import array
from typing import Any

from codex_indexd.engine.file_state import FileState
from codex_indexd.index.model import Rename
from codex_indexd.index.timefmt import STAMP_LIMIT, Stamp, pack_stamp

# In a title's or a turn text's place: the first message; in the expected id's: the thread id
# (each stored once).
SAME = 1


def encode_chunk(items: list[tuple[str, FileState]]) -> dict[str, Any]:
    """Return one chunk of rows as columns (see `checkpoint._load_chunk` for what each holds).

    The facts' timestamps are packed in place (`pack_stamp`) as they are written: the
    tracker's long-lived copies take the form a warm start loads."""
    keys: list[str] = []
    nums: list[int] = []
    flags: list[int] = []
    expected: list[str | int | None] = []
    tids: list[str] = []
    created: list[Stamp | None] = []
    last: list[Stamp | None] = []
    source: list[str | None] = []
    mode: list[str] = []
    first: list[str | None] = []
    title: list[str | int | None] = []
    counts: list[int] = []
    tdata: list[int] = []
    texts: list[str | int | None] = []
    any_text = False
    renames: list[list[Any]] = []
    for row, (key, st) in enumerate(items):
        f = st.facts
        keys.append(key)
        *numbers, reader_flags = st.numbers()
        nums += numbers
        flags.append(reader_flags | f.archived << 2 | f.has_meta << 3)
        tid = f.thread_id
        expected.append(SAME if st.expected_id == tid else st.expected_id)
        tids.append(tid)
        if type(f.created_at) is str:
            f.created_at = pack_stamp(f.created_at)
        if type(f.last_timestamp) is str:
            f.last_timestamp = pack_stamp(f.last_timestamp)
        created.append(f.created_at)
        last.append(f.last_timestamp)
        source.append(f.source)
        mode.append(f.history_mode)
        fm = f.first_user_message
        first.append(fm)
        title.append(SAME if f.title is not None and f.title == fm else f.title)
        turns = f.user_turns
        counts.append(len(turns))
        tdata += turns.data
        if turns.texts is None:
            texts += [None] * len(turns)
        else:
            any_text = True
            texts += [SAME if t is not None and t == fm else t for t in turns.texts]
        renames += ([row, r.name, r.updated_at, r.epoch_ms] for r in f.renames)
    return {
        "keys": keys,
        "nums": nums,
        "flags": flags,
        "expected": expected,
        "tids": tids,
        "created": created,
        "last": last,
        "source": source,
        "mode": mode,
        "first": first,
        "title": title,
        "turns": counts,
        "tdata": tdata,
        "texts": texts if any_text else None,
        "renames": renames,
    }


_STR: frozenset[type] = frozenset({str})
_INT: frozenset[type] = frozenset({int})
_STR_NONE: frozenset[type] = frozenset({str, type(None)})
_STR_NONESAME: frozenset[type] = frozenset({str, type(None), int})  # the only int allowed is SAME
_STAMP_NONE: frozenset[type] = frozenset({str, type(None), int})  # an int: a packed stamp


def _column(chunk: dict[str, Any], name: str, length: int, types: frozenset[type]) -> list[Any]:
    """Return the chunk's column `name`. Raises KeyError, TypeError or ValueError unless it is
    a list of `length` values of the given types (JSON numbers are `int` itself, a bool's
    type is not; `map(type, ...)` checks a column faster than a loop)."""
    values = chunk[name]
    if not isinstance(values, list) or len(values) != length:
        raise ValueError(f"checkpoint column {name} has the wrong length")
    found = set(map(type, values))
    if not found <= types:
        raise TypeError(f"checkpoint column {name} holds a value of the wrong type")
    if int in found and types is _STR_NONESAME and {v for v in values if type(v) is int} != {SAME}:
        raise ValueError(f"checkpoint column {name} holds a number")
    if int in found and types is _STAMP_NONE:
        stamps = [v for v in values if type(v) is int]
        if min(stamps) < 0 or max(stamps) >= STAMP_LIMIT:
            raise ValueError(f"checkpoint column {name} holds a number that is no timestamp")
    return values


def checked_chunk(chunk: Any) -> tuple[dict[str, list[Any]], array[int], dict[int, list[Rename]]]:
    """Return a chunk's columns by name, its packed turns and its renames by row. Raises
    KeyError, TypeError or ValueError when it is not what `encode_chunk` writes."""
    if not isinstance(chunk, dict):
        raise TypeError("a chunk is not a JSON object")
    n = len(chunk["keys"])
    shapes = {
        "keys": _STR,
        "flags": _INT,
        "expected": _STR_NONESAME,
        "tids": _STR,
        "created": _STAMP_NONE,
        "last": _STAMP_NONE,
        "source": _STR_NONE,
        "mode": _STR,
        "first": _STR_NONE,
        "title": _STR_NONESAME,
        "turns": _INT,
    }
    columns = {name: _column(chunk, name, n, types) for name, types in shapes.items()}
    columns["nums"] = _column(chunk, "nums", 8 * n, _INT)
    turns = sum(columns["turns"])
    if min(columns["turns"], default=0) < 0:
        raise ValueError("a negative turn count")
    tdata = array("q", _column(chunk, "tdata", 3 * turns, _INT))
    columns["texts"] = (
        [] if chunk["texts"] is None else _column(chunk, "texts", turns, _STR_NONESAME)
    )
    renames: dict[int, list[Rename]] = {}
    raw_renames = chunk["renames"]
    if not isinstance(raw_renames, list):
        raise TypeError("renames are not a list")
    for row, name, updated, epoch in raw_renames:
        if not (isinstance(name, str) and isinstance(updated, str)):
            raise TypeError("a rename's name or time is not a string")
        if not (epoch is None or type(epoch) is int) or type(row) is not int:
            raise TypeError("a rename's number is not an integer")
        renames.setdefault(row, []).append(Rename(name, updated, epoch))
    return columns, tdata, renames


def check_ints(*values: Any) -> None:
    """Offsets and sizes are compared with stat results later: they must be integers. JSON
    numbers are `int` itself (`type` is, a bool's is not), and a loop is faster than `all`."""
    for value in values:
        if type(value) is not int:
            raise TypeError("a number field is not an integer")
