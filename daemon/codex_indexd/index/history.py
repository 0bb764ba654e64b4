"""History planning: the turns `history.jsonl` should hold, what is missing, and the merge.

Existing lines are matched to derived ones as multisets on `(session_id, text)`, with a
tolerance on `ts`, so a line Codex wrote is never duplicated. A merge only appends: running
TUIs address lines by offset, and an insert would shift every later line and rewrite the
file's tail under the lock. Under `[history] max_bytes` a merge adds only what fits and never
trims; only a rebuild trims, the way Codex does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import chain
from typing import Any

from codex_indexd.index.lines import CompactLines
from codex_indexd.index.model import HistoryLine, Policy, RolloutFacts
from codex_indexd.records import record

_KEY_SPAN = 1 << 64  # a signed 64-bit key plus this is the unsigned key (`unsigned_key`)

# Only the interactive TUI writes history.jsonl itself, and its rollouts say `"vscode"` (it
# runs through the app-server; originator `codex-tui`) or, in older releases, `"cli"`. The
# grace period applies to every thread but `codex exec`'s, which never writes a history line:
# for a Desktop or IDE thread it only delays the line by a few seconds.
NO_OWN_HISTORY_SOURCES = frozenset({"exec"})

SOFT_CAP_RATIO = 0.8
# Characters of a text encoded at a time: a longer text is never held encoded twice (nor as
# an encoded str beside its bytes) to size or write its line.
ENCODE_PIECE = 1 << 16

TUI_LINE_DELAY_S = 0.5
"""The TUI writes a turn's history line up to this long after the rollout's user turn."""
TUI_LOCK_RETRY_S = 1.0
"""Then it tries the history lock 10 times, 100 ms apart, before it drops the line."""
TUI_LINE_GRACE_S = TUI_LINE_DELAY_S + TUI_LOCK_RETRY_S + 0.2
"""How long after the daemon saw a turn arrive the TUI's own line may still come."""
TUI_TURN_WINDOW_S = 3.0
"""A turn younger than this by its rollout timestamp (whole seconds, so a second of slack on
top of the grace period) may still get the TUI's own line: `repair` leaves it to the TUI and
a starting daemon holds it."""


def encode_history_line(line: HistoryLine) -> bytes:
    """Return the compact JSON Codex writes (without the newline). Raises ValueError for a
    line whose text was not kept (UnicodeEncodeError for a lone surrogate)."""
    if line.text is None:
        raise ValueError("a history line without its text cannot be written")
    payload = {"session_id": line.session_id, "ts": line.ts, "text": line.text}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _line_pieces(line: HistoryLine) -> Iterator[bytes]:
    """Yield `encode_history_line(line)` in pieces of at most 4 × ENCODE_PIECE bytes: JSON
    escapes each character on its own, so the text is escaped slice by slice."""
    text = line.text
    if text is None:
        raise ValueError("a history line without its text cannot be written")
    if len(text) <= ENCODE_PIECE:
        yield encode_history_line(line)
        return
    head = {"session_id": line.session_id, "ts": line.ts}
    opening = json.dumps(head, ensure_ascii=False, separators=(",", ":"))[:-1]  # without `}`
    yield opening.encode("utf-8") + b',"text":"'
    for start in range(0, len(text), ENCODE_PIECE):
        piece = json.dumps(text[start : start + ENCODE_PIECE], ensure_ascii=False)
        yield piece[1:-1].encode("utf-8")
    yield b'"}'


WRITE_PIECE = 1 << 20  # bytes an `EncodedLines` yields at a time (a short append: one piece)


@record(frozen=True, slots=True)
class EncodedLines:
    """History lines as the bytes written for them: `lead`, then each line as
    `encode_history_line` makes it, with its newline; `size` bytes in all. Iterating yields
    them in pieces of about WRITE_PIECE bytes, encoded anew each time, so a very long line
    is never held encoded whole; all of it in one piece when it is shorter."""

    lead: bytes
    lines: tuple[HistoryLine, ...]
    size: int

    @classmethod
    def of(cls, lines: Sequence[HistoryLine], *, lead: bytes = b"") -> EncodedLines:
        """Return the encoding of `lines` after `lead`. Raises ValueError for a line whose
        text was not kept (UnicodeEncodeError for a lone surrogate)."""
        return cls(lead, tuple(lines), len(lead) + sum(line_size(line) for line in lines))

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        pending = bytearray(self.lead)
        for piece in chain.from_iterable(chain(_line_pieces(ln), (b"\n",)) for ln in self.lines):
            pending += piece
            if len(pending) >= WRITE_PIECE:
                yield bytes(pending)
                pending.clear()
        if pending:
            yield bytes(pending)

    def __bytes__(self) -> bytes:
        """Return all of it at once (for short appends and tests)."""
        return b"".join(self)


def desired_history(
    thread_ids: Iterable[str], rollouts: dict[str, RolloutFacts], policy: Policy
) -> list[HistoryLine]:
    """Return every user turn of the given threads, exact duplicates dropped, sorted by
    `(ts, session_id, text)`. Turns whose text was not kept carry their key only."""
    # One sortable tuple per turn, `(ts, session_id, text, key, text or None)`, turned into
    # its line in place: the tuples and the lines are never all held at once.
    rows: list[Any] = []
    add = rows.append
    sources = policy.history_sources
    for thread_id in thread_ids:
        facts = rollouts.get(thread_id)
        if facts is None:
            continue
        if sources is not None and (facts.source or "") not in sources:
            continue
        turns = facts.user_turns
        data, texts = turns.data, turns.texts  # `ts, signed key, offset` per turn
        for i in range(0, len(data), 3):
            key = data[i + 1]
            text = texts[i // 3] if texts is not None else None
            add((data[i], thread_id, text or "", key + _KEY_SPAN if key < 0 else key, text))
    rows.sort()
    # `(ts, session_id, key)` identifies a turn (the key is the text's), so an exact duplicate
    # sorts next to its twin.
    kept = 0
    previous: tuple[int, str, int] | None = None
    for ts, sid, _, key, text in rows:
        if (ts, sid, key) == previous:
            continue
        previous = (ts, sid, key)
        rows[kept] = HistoryLine(sid, ts, text, key)
        kept += 1
    del rows[kept:]
    return rows


def sort_key(line: HistoryLine) -> tuple[int, str, str, int]:
    """The order lines are written in: time, session, text."""
    return (line.ts, line.session_id, line.text or "", line.key)


# Marks a group that wants one turn once a line close enough to it was seen.
_PAIRED: list[int] = []


def _group(found: Iterable[tuple[str, int, int]]) -> dict[tuple[str, int], int | list[int]]:
    """Return the times of each `(session_id, key)` of `(session_id, key, ts)` triples: an int
    for a key seen once (the usual case: no list per line), a list in order for several."""
    groups: dict[tuple[str, int], int | list[int]] = {}
    get = groups.get
    for session_id, digest, ts in found:
        key = (session_id, digest)
        seen = get(key)
        if seen is None:
            groups[key] = ts
        elif isinstance(seen, int):
            groups[key] = [seen, ts]
        else:
            seen.append(ts)
    return groups


def missing_lines(
    existing: Sequence[HistoryLine | None], desired: Sequence[HistoryLine], tolerance_s: int
) -> list[HistoryLine]:
    """Return the desired lines that no existing line accounts for, in `desired` order.

    Within each `(session_id, text)` group (compared by key) both sides are sorted by `ts` and
    paired greedily, newest first, when their times differ by at most `tolerance_s`: as many
    pairs as any pairing makes, and the turns left over are the oldest ones. A merge under
    `max_bytes` writes the newest missing turns first, so the turns it left out stay the
    missing ones on the next plan (never a turn it wrote).
    """
    if not existing:
        return list(desired)
    want = _group((line.session_id, line.key, line.ts) for line in desired)
    sessions = {session_id for session_id, _ in want}  # lines of other sessions pair nothing
    found = (
        existing.keyed(sessions)
        if isinstance(existing, CompactLines)
        else (
            (line.session_id, line.key, line.ts)
            for line in existing
            if line is not None and line.session_id in sessions
        )
    )
    # A group that wants one turn pairs when any of its lines is close enough (what the
    # greedy pairing below finds for one turn): it is marked in `want` as the lines stream by,
    # and only the lines of groups that want several turns are kept.
    have: dict[tuple[str, int], list[int]] = {}
    touched = False
    get = want.get
    for session_id, key, ts in found:
        group = (session_id, key)
        wanted = get(group)
        if wanted is None or wanted is _PAIRED:
            continue
        touched = True
        if isinstance(wanted, int):
            if abs(ts - wanted) <= tolerance_s:
                want[group] = _PAIRED
        else:
            have.setdefault(group, []).append(ts)
    if not touched:
        return list(desired)  # nothing pairs: every desired line is missing
    counts: dict[tuple[str, int, int], int] = {}
    for group, wanted in want.items():
        if wanted is _PAIRED:
            continue
        if isinstance(wanted, int):
            counts[(group[0], group[1], wanted)] = 1
            continue
        existing_ts = sorted(have.get(group, ()), reverse=True)
        i = 0
        for ts in sorted(wanted, reverse=True):
            while i < len(existing_ts) and existing_ts[i] > ts + tolerance_s:
                i += 1
            if i < len(existing_ts) and abs(existing_ts[i] - ts) <= tolerance_s:
                i += 1
                continue
            key3 = (group[0], group[1], ts)
            counts[key3] = counts.get(key3, 0) + 1
    if not counts:
        return []
    out: list[HistoryLine] = []
    for line in desired:
        key3 = (line.session_id, line.key, line.ts)
        if counts.get(key3, 0) > 0:
            counts[key3] -= 1
            out.append(line)
    return out


def trim_to_max_bytes(lines: list[bytes], max_bytes: int | None) -> list[bytes]:
    """Drop the oldest lines the way Codex does once the file exceeds `max_bytes`.

    When the size (lines plus newlines) is over `max_bytes`, lines are dropped from the start
    until it is at most max(floor(0.8 × max_bytes), size of the newest line); the newest line
    is always kept.
    """
    if not lines or max_bytes is None or max_bytes <= 0:
        return lines
    sizes = [len(line) + 1 for line in lines]
    total = sum(sizes)
    if total <= max_bytes:
        return lines
    soft_cap = max(1, min(max_bytes, int(max_bytes * SOFT_CAP_RATIO)))
    target = max(soft_cap, sizes[-1])
    drop = 0
    while total > target and drop < len(lines) - 1:
        total -= sizes[drop]
        drop += 1
    return lines[drop:]


def split_pending(
    additions: Sequence[HistoryLine],
    rollouts: dict[str, RolloutFacts],
    fresh: frozenset[str],
) -> tuple[list[HistoryLine], list[HistoryLine]]:
    """Return `(ready, pending)`: pending are the turns of the `fresh` threads (whose rollout
    the caller saw change a moment ago) that the TUI may have written (any source but
    exec's): their own history line may still come."""
    if not fresh:
        return list(additions), []
    ready: list[HistoryLine] = []
    pending: list[HistoryLine] = []
    for line in additions:
        facts = rollouts.get(line.session_id)
        young = (
            line.session_id in fresh
            and facts is not None
            and facts.source not in NO_OWN_HISTORY_SOURCES
        )
        (pending if young else ready).append(line)
    return ready, pending


def threads_with_recent_turns(
    rollouts: Mapping[str, RolloutFacts], now_s: float, window_s: float
) -> frozenset[str]:
    """Return the threads (of a source that writes its own history line) whose newest user
    turn is at most `window_s` seconds older than `now_s` by its rollout timestamp: the TUI
    may not have written that turn's line yet."""
    cutoff = now_s - window_s
    return frozenset(
        tid
        for tid, facts in rollouts.items()
        if facts.source not in NO_OWN_HISTORY_SOURCES
        and (last := facts.user_turns.last_ts) is not None
        and last >= cutoff
    )


def line_size(line: HistoryLine) -> int:
    """Return the bytes the line takes in the file, newline included (a long text is sized
    piece by piece, never encoded whole). Raises like `encode_history_line`."""
    return sum(len(piece) for piece in _line_pieces(line)) + 1


def fit_history_cap(
    additions: Sequence[HistoryLine],
    file_size: int,
    first_ts: int | None,
    max_bytes: int | None,
    tolerance_s: int = 0,
) -> tuple[list[HistoryLine], int]:
    """Return the additions (in write order) that may be appended to a file of `file_size`
    bytes without taking it over `max_bytes`, and how many were left out.

    When everything fits, everything is added. Otherwise only turns at least as new as the
    file's oldest kept line (`first_ts`, less the matching tolerance `tolerance_s`: a turn
    that close may be the one that line was matched to) count: older ones are what Codex's
    own trim already dropped. Of those, the newest are taken while they fit. Nothing is ever
    trimmed, so a merge never removes a line Codex wrote.
    """
    ordered = sorted(additions, key=sort_key)
    if max_bytes is None or max_bytes <= 0 or not ordered:
        return ordered, 0
    sizes = [line_size(line) for line in ordered]
    budget = max_bytes - file_size
    if sum(sizes) <= budget:
        return ordered, 0
    chosen: list[int] = []
    used = 0
    for i in range(len(ordered) - 1, -1, -1):
        if first_ts is not None and ordered[i].ts < first_ts - tolerance_s:
            break  # sorted by time: every earlier one is older too
        if used + sizes[i] > budget:
            continue
        used += sizes[i]
        chosen.append(i)
    kept = [ordered[i] for i in sorted(chosen)]
    return kept, len(ordered) - len(kept)
