"""What `history.jsonl` misses of a plan's threads, worked out thread by thread: each
thread's turns against its own lines (`HistoryFile.by_session`), with `missing_lines` asked
only for a thread whose turns do not all pair at a glance, so that a plan of a whole home
never holds a map of every turn."""

from __future__ import annotations

from collections.abc import Sequence

from codex_indexd.index.history import desired_history, missing_lines, sort_key
from codex_indexd.index.lines import HistoryFile
from codex_indexd.index.model import HistoryLine, Policy, RolloutFacts, unsigned_key


def missing_history(
    thread_ids: Sequence[str],
    rollouts: dict[str, RolloutFacts],
    history: HistoryFile,
    policy: Policy,
) -> list[HistoryLine]:
    """Return `missing_lines` of the history's lines against `desired_history` of the given
    (distinct) threads, in that order, worked out thread by thread: only one thread's turns
    and lines are grouped at a time, never a map of every turn (with no line in the file,
    every desired line at once)."""
    if not len(history):
        return desired_history(thread_ids, rollouts, policy)
    tolerance, sources = policy.history_ts_tolerance_s, policy.history_sources
    out: list[HistoryLine] = []
    for thread_id, found in history.by_session(thread_ids):
        facts = rollouts.get(thread_id)
        if facts is None or (sources is not None and (facts.source or "") not in sources):
            continue
        if found and _all_paired(facts.user_turns.data, found, tolerance):
            continue
        mine = desired_history((thread_id,), rollouts, policy)
        if found and mine:
            lines = [HistoryLine(thread_id, ts, None, unsigned_key(key)) for key, ts in found]
            mine = missing_lines(lines, mine, tolerance)
        out += mine
    out.sort(key=sort_key)  # (ts, session, text, key): each desired line's own
    return out


def _all_paired(data: Sequence[int], found: list[tuple[int, int]], tolerance: int) -> bool:
    """True when a thread's turns (`ts, signed key, offset` each) want one line each of a
    text, and each has a line of it (signed key, `ts`) within `tolerance`: what
    `missing_lines` finds nothing missing of then. False when it must be asked."""
    times: dict[int, int] = {}
    for i in range(0, len(data), 3):
        ts, key = data[i], data[i + 1]
        if times.setdefault(key, ts) != ts:
            return False  # a text typed twice: a group that wants several turns
    close: set[int] = set()
    for key, ts in found:
        wanted = times.get(key)
        if wanted is not None and abs(ts - wanted) <= tolerance:
            close.add(key)
    return len(close) == len(times)
