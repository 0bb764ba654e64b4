"""From facts to changes: desired entries, drift with reasons, and the bytes to write."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from codex_indexd.codex.indexfiles import (
    HistoryFile,
    IndexFile,
    parse_history_bytes,
    split_lines,
    still_prefix,
)
from codex_indexd.index.history import (
    desired_history,
    encode_history_line,
    merge_lines,
    missing_lines,
    sort_key,
    trim_to_max_bytes,
)
from codex_indexd.index.model import (
    Drift,
    DriftReason,
    HistoryLine,
    IndexEntry,
    OnlyFile,
    Policy,
    RolloutFacts,
    ThreadRow,
)
from codex_indexd.index.select import Selection, select_threads


def encode_index_entry(entry: IndexEntry) -> bytes:
    """Return the compact `{"id","thread_name","updated_at"}` line Codex writes (no newline)."""
    payload = {
        "id": entry.thread_id,
        "thread_name": entry.thread_name,
        "updated_at": entry.updated_at,
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(slots=True)
class Plan:
    """Everything one reconcile decided: the selection, desired history, and the drift."""

    selection: Selection
    desired_history: list[HistoryLine]
    drift: Drift
    policy: Policy

    @property
    def writes_index(self) -> bool:
        return self.policy.only in (OnlyFile.SESSION_INDEX, OnlyFile.BOTH)

    @property
    def writes_history(self) -> bool:
        return self.policy.history_enabled and self.policy.only in (OnlyFile.HISTORY, OnlyFile.BOTH)


def index_drift(
    selection: Selection, index: IndexFile
) -> tuple[list[IndexEntry], dict[str, DriftReason]]:
    """Return the entries to append (oldest first, so the newest ends last) and why.

    A thread with nothing to name it by yet (no title, no message: its name would be its id)
    gets no line: a merge waits for its first turn rather than write a placeholder.
    """
    appends: list[IndexEntry] = []
    reasons: dict[str, DriftReason] = {}
    for entry in selection.entries:
        if entry.thread_name == entry.thread_id:
            continue
        current = index.latest.get(entry.thread_id)
        if current is None:
            reasons[entry.thread_id] = DriftReason.INDEX_MISSING
        elif current.thread_name != entry.thread_name:
            reasons[entry.thread_id] = DriftReason.INDEX_STALE_NAME
        else:
            continue
        appends.append(entry)
    appends.reverse()
    return appends, reasons


def make_plan(
    threads: dict[str, ThreadRow] | None,
    rollouts: dict[str, RolloutFacts],
    index: IndexFile,
    history: HistoryFile,
    policy: Policy,
    *,
    only: set[str] | None = None,
) -> Plan:
    """Return the plan for one home (pure).

    `only` limits the plan to some threads (the daemon passes those that changed since a plan
    that left no drift); it requires `policy.max_threads == 0`.
    """
    if only is not None and policy.max_threads != 0:
        raise ValueError("a partial plan needs max_threads == 0")
    selection = select_threads(
        threads, rollouts, index.latest, policy, index.renamed_from, only=only
    )
    drift = Drift()
    plan = Plan(selection, [], drift, policy)
    if plan.writes_index:
        drift.index_append, drift.index_reasons = index_drift(selection, index)
    if plan.writes_history:
        ordered_ids = [entry.thread_id for entry in selection.entries]
        plan.desired_history = desired_history(ordered_ids, rollouts, policy)
        existing = history.parsed if only is None else history.lines_for(ordered_ids)
        drift.history_add = missing_lines(
            existing, plan.desired_history, policy.history_ts_tolerance_s
        )
        if drift.history_add and history.max_ts is not None:
            drift.history_needs_insert = min(line.ts for line in drift.history_add) < history.max_ts
    return plan


def rebuilt_index_bytes(selection: Selection, index: IndexFile) -> bytes:
    """Return a replacement index: its unparseable lines kept first, then one line per thread."""
    kept = [raw for raw in index.malformed if raw.strip()]
    lines = kept + [encode_index_entry(entry) for entry in selection.entries]
    return b"".join(line + b"\n" for line in lines)


def _join(lines: Sequence[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def _lines_after(
    known: HistoryFile, tail: HistoryFile, desired: Sequence[HistoryLine]
) -> tuple[list[HistoryLine], int | None]:
    """Return the lines of `desired`'s sessions in a file parsed as `known` then `tail`, and
    the file's newest `ts`."""
    sessions = {line.session_id for line in desired}
    existing = known.lines_for(sessions) + [
        line for line in tail.parsed if line is not None and line.session_id in sessions
    ]
    newest = max((t for t in (known.max_ts, tail.max_ts) if t is not None), default=None)
    return existing, newest


def _writable(additions: list[HistoryLine]) -> list[HistoryLine]:
    """Drop the additions whose text was not read back (the daemon fetches the texts of what
    its plan found missing; a line that went missing only after the plan waits for the next)."""
    return [line for line in additions if line.text is not None]


def _appended(additions: Sequence[HistoryLine]) -> bytes:
    return _join([encode_history_line(line) for line in sorted(additions, key=sort_key)])


def history_append(
    size: int,
    read_at: Callable[[int, int], bytes],
    desired: Sequence[HistoryLine],
    policy: Policy,
    known: HistoryFile | None,
) -> bytes | None:
    """Return the bytes to append to a `history.jsonl` of `size` bytes when the merge is a plain
    append (b"" when nothing is missing), reading only what `known` has not parsed.

    Returns None when the whole file is needed: it changed other than by appends since
    `known`, an addition is older than its last line, or the append would need trimming.
    """
    if known is None or not still_prefix(known, size, read_at):
        return None
    tail = parse_history_bytes(read_at(known.size, size - known.size))
    existing, newest = _lines_after(known, tail, desired)
    additions = _writable(missing_lines(existing, desired, policy.history_ts_tolerance_s))
    if not additions:
        return b""
    if not tail.ends_with_newline or (
        newest is not None and min(line.ts for line in additions) < newest
    ):
        return None
    extra = _appended(additions)
    limit = policy.history_max_bytes
    return None if limit is not None and size + len(extra) > limit else extra


def merged_history_bytes(
    current: bytes,
    desired: Sequence[HistoryLine],
    policy: Policy,
    known: HistoryFile | None = None,
) -> bytes:
    """Return `history.jsonl` with the missing turns inserted (re-matched against `current`,
    the content read under the lock), trimmed as Codex trims.

    `known` is an earlier parse of the file; when `current` still starts with those bytes only
    the rest is parsed, and additions newer than every line are a plain append.
    """
    full: HistoryFile | None = None
    existing: Sequence[HistoryLine | None]
    if known is not None and still_prefix(known, len(current), lambda o, n: current[o : o + n]):
        tail = parse_history_bytes(current[known.size :])
        existing, newest = _lines_after(known, tail, desired)
        ends = tail.ends_with_newline
    else:
        full = parse_history_bytes(current)
        existing, newest, ends = full.parsed, full.max_ts, full.ends_with_newline
    additions = _writable(missing_lines(existing, desired, policy.history_ts_tolerance_s))
    if not additions:
        return current
    appendable = newest is None or min(line.ts for line in additions) >= newest
    if policy.history_max_bytes is None and ends and appendable:
        return current + _appended(additions)
    if full is not None:
        raw, parsed = full.raw, full.parsed
    else:  # the daemon's long-lived copy keeps no raw lines: split them off `current`
        assert known is not None
        known_raw = split_lines(current[: known.size])[0] if known.compact else known.raw
        raw, parsed = known_raw + tail.raw, known.parsed + tail.parsed
    lines, _ = merge_lines(raw, parsed, additions)
    return _join(trim_to_max_bytes(lines, policy.history_max_bytes))


def rebuilt_history_bytes(current: bytes, desired: Sequence[HistoryLine], policy: Policy) -> bytes:
    """Return the seed's replacement history (unparseable non-blank lines kept first)."""
    parsed = parse_history_bytes(current)
    kept = [
        raw
        for raw, line in zip(parsed.raw, parsed.parsed, strict=True)
        if line is None and raw.strip()
    ]
    lines = kept + [encode_history_line(line) for line in desired]
    return _join(trim_to_max_bytes(lines, policy.history_max_bytes))
