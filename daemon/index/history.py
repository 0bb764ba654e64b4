"""History planning: the turns `history.jsonl` should hold, what is missing, and the merge.

Existing lines are matched to derived ones as multisets on `(session_id, text)`, with a
tolerance on `ts`, so a line Codex wrote is never duplicated. Merging only inserts; the
only removal is `max_bytes` trimming done the way Codex does it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence

from codex_indexd.index.model import HistoryLine, Policy, RolloutFacts

SOFT_CAP_RATIO = 0.8


def encode_history_line(line: HistoryLine) -> bytes:
    """Return the compact JSON Codex writes (without the newline). Raises ValueError for a
    line whose text was not kept."""
    if line.text is None:
        raise ValueError("a history line without its text cannot be written")
    payload = {"session_id": line.session_id, "ts": line.ts, "text": line.text}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def desired_history(
    thread_ids: Iterable[str], rollouts: dict[str, RolloutFacts], policy: Policy
) -> list[HistoryLine]:
    """Return every user turn of the given threads, exact duplicates dropped, sorted by
    `(ts, session_id, text)`. Turns whose text was not kept carry their key only."""
    seen: dict[tuple[int, str, int], str | None] = {}
    for thread_id in thread_ids:
        facts = rollouts.get(thread_id)
        if facts is None:
            continue
        if (
            policy.history_sources is not None
            and (facts.source or "") not in policy.history_sources
        ):
            continue
        for turn in facts.user_turns:
            seen[(turn.ts, thread_id, turn.key)] = turn.text
    ordered = sorted(seen.items(), key=lambda item: (item[0][:2], item[1] or "", item[0][2]))
    return [HistoryLine(sid, ts, text, key) for (ts, sid, key), text in ordered]


def sort_key(line: HistoryLine) -> tuple[int, str, str, int]:
    """The order lines are written in: time, session, text."""
    return (line.ts, line.session_id, line.text or "", line.key)


def missing_lines(
    existing: Sequence[HistoryLine | None], desired: Sequence[HistoryLine], tolerance_s: int
) -> list[HistoryLine]:
    """Return the desired lines that no existing line accounts for, in `desired` order.

    Within each `(session_id, text)` group (compared by key) both sides are sorted by `ts` and
    paired greedily when their times differ by at most `tolerance_s`.
    """
    have: dict[tuple[str, int], list[int]] = defaultdict(list)
    for line in existing:
        if line is not None:
            have[(line.session_id, line.key)].append(line.ts)
    want: dict[tuple[str, int], list[int]] = defaultdict(list)
    for line in desired:
        want[(line.session_id, line.key)].append(line.ts)

    counts: dict[tuple[str, int, int], int] = defaultdict(int)
    for key, wanted in want.items():
        existing_ts = sorted(have.get(key, ()))
        i = 0
        for ts in sorted(wanted):
            while i < len(existing_ts) and existing_ts[i] < ts - tolerance_s:
                i += 1
            if i < len(existing_ts) and abs(existing_ts[i] - ts) <= tolerance_s:
                i += 1
                continue
            counts[(key[0], key[1], ts)] += 1
    out: list[HistoryLine] = []
    for line in desired:
        key3 = (line.session_id, line.key, line.ts)
        if counts.get(key3, 0) > 0:
            counts[key3] -= 1
            out.append(line)
    return out


def merge_lines(
    raw: Sequence[bytes], parsed: Sequence[HistoryLine | None], additions: Sequence[HistoryLine]
) -> tuple[list[bytes], bool]:
    """Return the file's lines with `additions` inserted in chronological place, and whether
    any addition went before an existing line (False means a pure append).

    An addition goes after every existing line whose running time is ≤ its `ts`; lines that do
    not parse keep the time of the line before them, so they stay where they are.
    """
    pending = sorted(additions, key=sort_key)
    out: list[bytes] = []
    inserted_before = False
    j = 0
    running = None
    for line_raw, line in zip(raw, parsed, strict=True):
        if line is not None:
            running = line.ts if running is None else max(running, line.ts)
        while j < len(pending) and running is not None and pending[j].ts < running:
            out.append(encode_history_line(pending[j]))
            inserted_before = True
            j += 1
        out.append(line_raw)
    out.extend(encode_history_line(line) for line in pending[j:])
    return out, inserted_before


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
