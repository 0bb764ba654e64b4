"""From facts to changes: desired entries, drift with reasons, and the bytes to write."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from codex_indexd.codex.indexfiles import HistoryFile, IndexFile, parse_history_bytes
from codex_indexd.index.history import (
    desired_history,
    encode_history_line,
    merge_lines,
    missing_lines,
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
    """Return the entries to append (oldest first, so the newest ends last) and why."""
    appends: list[IndexEntry] = []
    reasons: dict[str, DriftReason] = {}
    for entry in selection.entries:
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
) -> Plan:
    """Return the plan for one home (pure)."""
    selection = select_threads(threads, rollouts, index.latest, policy, index.names)
    drift = Drift()
    plan = Plan(selection, [], drift, policy)
    if plan.writes_index:
        drift.index_append, drift.index_reasons = index_drift(selection, index)
    if plan.writes_history:
        ordered_ids = [entry.thread_id for entry in selection.entries]
        plan.desired_history = desired_history(ordered_ids, rollouts, policy)
        drift.history_add = missing_lines(
            history.parsed, plan.desired_history, policy.history_ts_tolerance_s
        )
        if drift.history_add:
            _, drift.history_needs_insert = merge_lines(
                history.raw, history.parsed, drift.history_add
            )
    return plan


def rebuilt_index_bytes(selection: Selection, index: IndexFile) -> bytes:
    """Return a replacement index: its unparseable lines kept first, then one line per thread."""
    kept = [raw for raw in index.malformed if raw.strip()]
    lines = kept + [encode_index_entry(entry) for entry in selection.entries]
    return b"".join(line + b"\n" for line in lines)


def _join(lines: Sequence[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def merged_history_bytes(current: bytes, desired: Sequence[HistoryLine], policy: Policy) -> bytes:
    """Return `history.jsonl` with the missing turns inserted (re-matched against `current`,
    the content read under the lock), trimmed as Codex trims."""
    parsed = parse_history_bytes(current)
    additions = missing_lines(parsed.parsed, desired, policy.history_ts_tolerance_s)
    if not additions:
        return current
    lines, _ = merge_lines(parsed.raw, parsed.parsed, additions)
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
