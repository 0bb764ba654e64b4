"""From facts to changes: desired entries, drift with reasons, and the bytes to write."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from codex_indexd.index.history import (
    EncodedLines,
    desired_history,
    encode_history_line,
    fit_history_cap,
    missing_lines,
    split_pending,
    trim_to_max_bytes,
)
from codex_indexd.index.lines import HistoryFile, IndexFile, parse_history_bytes, still_prefix
from codex_indexd.index.missing import missing_history
from codex_indexd.index.model import (
    Drift,
    DriftReason,
    HistoryLine,
    IndexEntry,
    Policy,
    RolloutFacts,
    ThreadRow,
)
from codex_indexd.index.select import Selection, select_threads
from codex_indexd.records import record


def encode_index_entry(entry: IndexEntry) -> bytes:
    """Return the compact `{"id","thread_name","updated_at"}` line Codex writes (no newline)."""
    payload = {
        "id": entry.thread_id,
        "thread_name": entry.thread_name,
        "updated_at": entry.updated_at,
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@record(frozen=True, slots=True)
class Plan:
    """Everything one reconcile decided: the selection, desired history (every turn, for a
    rebuild; empty in a plan made without it), and the drift. Immutable: a caller that
    writes less than planned derives a new plan (`replace`)."""

    selection: Selection
    desired_history: tuple[HistoryLine, ...]
    drift: Drift
    policy: Policy

    @property
    def writes_index(self) -> bool:
        return self.policy.writes_index

    @property
    def writes_history(self) -> bool:
        return self.policy.writes_history


def index_drift(
    selection: Selection, index: IndexFile
) -> tuple[tuple[IndexEntry, ...], dict[str, DriftReason]]:
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
    return tuple(appends), reasons


def plan_selection(
    threads: dict[str, ThreadRow] | None,
    rollouts: dict[str, RolloutFacts],
    index: IndexFile,
    policy: Policy,
    *,
    only: set[str] | None = None,
) -> Selection:
    """Return the threads `make_plan` would restore with the same arguments (pure): its
    selection alone, without the history it would desire."""
    return select_threads(threads, rollouts, index.latest, policy, index.renamed_from, only=only)


def make_plan(
    threads: dict[str, ThreadRow] | None,
    rollouts: dict[str, RolloutFacts],
    index: IndexFile,
    history: HistoryFile,
    policy: Policy,
    *,
    only: set[str] | None = None,
    fresh: frozenset[str] = frozenset(),
    with_desired: bool = True,
) -> Plan:
    """Return the plan for one home (pure).

    Its `desired_history` (every turn `history.jsonl` should hold: what a rebuild writes) is
    left empty unless `with_desired`; a merge needs only the drift.

    `only` limits the plan to some threads (the daemon passes those that changed since a plan
    that left no drift); it requires `policy.max_threads == 0`. The missing turns of `fresh`
    threads (the daemon passes those whose rollout it saw change less than a moment ago) are
    held back in `drift.history_pending`: the TUI's own history line may still come.
    """
    if only is not None and policy.max_threads != 0:
        raise ValueError("a partial plan needs max_threads == 0")
    selection = plan_selection(threads, rollouts, index, policy, only=only)
    index_append: tuple[IndexEntry, ...] = ()
    index_reasons: dict[str, DriftReason] = {}
    if policy.writes_index:
        index_append, index_reasons = index_drift(selection, index)
    if not policy.writes_history:
        return Plan(selection, (), Drift(index_append, index_reasons), policy)
    ordered_ids = [entry.thread_id for entry in selection.entries]
    desired = desired_history(ordered_ids, rollouts, policy) if with_desired else []
    if with_desired and not len(history):
        missing = list(desired)  # what `missing_history` gives then
    else:
        missing = missing_history(ordered_ids, rollouts, history, policy)
    ready, pending = split_pending(missing, rollouts, fresh)
    del missing
    over_cap = 0
    # Without a cap, `fit_history_cap` keeps every line in its order: missing lines are in
    # write order already.
    if policy.history_max_bytes is not None and all(line.text is not None for line in ready):
        # (The daemon's plan holds keys only; it fits the lines once their texts are read.)
        ready, over_cap = fit_history_cap(
            ready,
            history.size,
            history.first_ts,
            policy.history_max_bytes,
            policy.history_ts_tolerance_s,
        )
    drift = Drift(index_append, index_reasons, tuple(ready), over_cap, tuple(pending))
    return Plan(selection, tuple(desired), drift, policy)


def rebuilt_index_bytes(selection: Selection, index: IndexFile) -> bytes:
    """Return a replacement index: its unparseable lines kept first, then one line per thread."""
    kept = [raw for raw in index.malformed if raw.strip()]
    lines = kept + [encode_index_entry(entry) for entry in selection.entries]
    return b"".join(line + b"\n" for line in lines)


def _writable(additions: list[HistoryLine]) -> list[HistoryLine]:
    """Drop the additions whose text was not read back (the daemon fetches the texts of what
    its plan found missing; a line that went missing only after the plan waits for the next)."""
    return [line for line in additions if line.text is not None]


@record(frozen=True, slots=True)
class HistoryAppend:
    """The bytes to append to `history.jsonl`, the lines they hold, and the planned lines
    left out because they do not fit under `max_bytes` any more."""

    data: bytes | EncodedLines
    lines: int
    over_cap: int


def history_append(
    size: int,
    read_at: Callable[[int, int], bytes],
    planned: Sequence[HistoryLine],
    policy: Policy,
    known: HistoryFile,
) -> HistoryAppend | None:
    """Return what to append to a `history.jsonl` of `size` bytes (read through
    `read_at(offset, length)`, under its lock) so that it holds the `planned` lines, reading
    only what was appended since `known` was parsed.

    The planned lines are matched against those appended lines (the TUI's own line may have
    come in since the plan), and fitted again under `max_bytes`. Returns None when
    the file no longer starts with the bytes `known` was parsed from (Codex trimmed it, or
    someone edited it): the caller plans again from the file as it is.
    """
    if not still_prefix(known, size, read_at):
        return None
    tail = parse_history_bytes(read_at(known.size, size - known.size))
    if size == known.size:
        tail.ends_with_newline = known.ends_with_newline
    # The plan matched `known`'s lines already: only lines appended since can account for a
    # planned one now.
    sessions = {line.session_id for line in planned}
    appended = [line for line in tail.parsed if line is not None and line.session_id in sessions]
    additions = _writable(missing_lines(appended, planned, policy.history_ts_tolerance_s))
    fitted, over_cap = fit_history_cap(
        additions,
        size,
        known.first_ts,
        policy.history_max_bytes,
        policy.history_ts_tolerance_s,
    )
    if not fitted:
        return HistoryAppend(b"", 0, over_cap)
    # A torn last line stays a line of its own, never glued to ours.
    data = EncodedLines.of(fitted, lead=b"" if tail.ends_with_newline else b"\n")
    return HistoryAppend(data, len(fitted), over_cap)


def _join(lines: Sequence[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


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
