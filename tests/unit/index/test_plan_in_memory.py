"""`make_plan` on facts held in memory: drift with reasons, held TUI turns, partial plans,
and a plan nobody can change."""

from __future__ import annotations

import pytest

from codex_indexd import records
from codex_indexd.index.lines import HistoryFile, IndexFile, parse_history_bytes
from codex_indexd.index.lines import parse_index_bytes as index_of
from codex_indexd.index.model import DriftReason, OnlyFile, Policy, RolloutFacts, Turns, UserTurn
from codex_indexd.index.plan import encode_index_entry, make_plan

A = "01934a5b-c000-7000-8000-00000000000a"
B = "01934a5b-c000-7000-8000-00000000000b"
POLICY = Policy(max_threads=0, include_orphans=True)


def rollout(tid: str, source: str = "vscode", *texts: str) -> RolloutFacts:
    turns = [UserTurn(1_763_632_800 + i, text) for i, text in enumerate(texts)]
    return RolloutFacts(
        thread_id=tid,
        path=f"/h/sessions/rollout-{tid}.jsonl",
        created_at="2025-11-20T10:00:00.000Z",
        last_timestamp="2025-11-20T10:05:00.000Z",
        source=source,
        first_user_message=texts[0] if texts else None,
        user_turns=Turns(turns),
        has_meta=True,
    )


FACTS = {A: rollout(A, "vscode", "first of a", "second of a"), B: rollout(B, "exec", "only b")}


def test_missing_and_stale_index_lines_are_drift_with_their_reason() -> None:
    # A line naming a thread by its id is a placeholder, not a user's rename: it is stale.
    index = index_of(
        b'{"id":"%s","thread_name":"%s","updated_at":"x"}\n' % (B.encode(), B.encode())
    )
    plan = make_plan(None, FACTS, index, HistoryFile(), POLICY)
    assert plan.drift.index_reasons == {
        A: DriftReason.INDEX_MISSING,
        B: DriftReason.INDEX_STALE_NAME,
    }
    assert {e.thread_id: e.thread_name for e in plan.drift.index_append} == {
        A: "first of a",
        B: "only b",
    }
    assert len(plan.drift.history_add) == 3
    assert plan.drift.counts() == {"index_missing": 1, "index_stale_name": 1, "history_missing": 3}


def test_an_index_that_holds_every_line_is_no_drift() -> None:
    first = make_plan(None, FACTS, IndexFile(), HistoryFile(), POLICY)
    index = index_of(b"".join(encode_index_entry(e) + b"\n" for e in first.drift.index_append))
    history = parse_history_bytes(
        b"".join(
            b'{"session_id":"%s","ts":%d,"text":"%s"}\n'
            % (ln.session_id.encode(), ln.ts, ln.text.encode())
            for ln in first.desired_history
            if ln.text is not None
        )
    )
    again = make_plan(None, FACTS, index, history, POLICY)
    assert again.drift.empty and again.drift.counts() == {}


def test_fresh_tui_turns_are_held_and_exec_turns_are_not() -> None:
    plan = make_plan(None, FACTS, IndexFile(), HistoryFile(), POLICY, fresh=frozenset({A, B}))
    assert {ln.session_id for ln in plan.drift.history_pending} == {A}
    assert {ln.session_id for ln in plan.drift.history_add} == {B}


def test_a_partial_plan_looks_at_its_threads_alone() -> None:
    plan = make_plan(None, FACTS, IndexFile(), HistoryFile(), POLICY, only={B})
    assert plan.selection.thread_ids == {B}
    assert {e.thread_id for e in plan.drift.index_append} == {B}
    with pytest.raises(ValueError):
        make_plan(None, FACTS, IndexFile(), HistoryFile(), Policy(max_threads=5), only={B})


def test_only_one_file_plans_only_that_file() -> None:
    history_only = records.replace(POLICY, only=OnlyFile.HISTORY)
    plan = make_plan(None, FACTS, IndexFile(), HistoryFile(), history_only)
    assert not plan.drift.index_append and plan.drift.history_add
    no_history = records.replace(POLICY, history_enabled=False)
    plan = make_plan(None, FACTS, IndexFile(), HistoryFile(), no_history)
    assert plan.drift.index_append and not plan.drift.history_add and not plan.desired_history


def test_a_plan_cannot_be_changed_only_derived() -> None:
    plan = make_plan(None, FACTS, IndexFile(), HistoryFile(), POLICY)
    with pytest.raises(AttributeError):
        plan.drift = records.replace(plan.drift, history_add=())  # type: ignore[misc]
    with pytest.raises(AttributeError):
        plan.drift.history_add = ()  # type: ignore[misc]
    derived = records.replace(plan, drift=records.replace(plan.drift, history_add=()))
    assert derived.drift.history_add == () and len(plan.drift.history_add) == 3
    assert isinstance(plan.selection.entries, tuple) and isinstance(plan.desired_history, tuple)


@pytest.mark.parametrize("cap", [None, 1, 200, 10_000])
@pytest.mark.parametrize(
    "held", [b"", b'{"session_id":"%s","ts":1763632801,"text":"second of a"}\n']
)
def test_a_plan_without_its_desired_history_has_the_same_drift(
    cap: int | None, held: bytes
) -> None:
    """A merge's plan (`with_desired=False`) holds no list of every turn and finds the same
    drift, also under `max_bytes`, where it fits the missing lines as a rebuild's does."""
    policy = records.replace(POLICY, history_max_bytes=cap)
    history = parse_history_bytes(held % A.encode() if held else b"")
    full = make_plan(None, FACTS, IndexFile(), history, policy)
    merge = make_plan(None, FACTS, IndexFile(), history, policy, with_desired=False)
    assert merge.desired_history == () and len(full.desired_history) == 3
    assert merge.drift == full.drift and merge.selection == full.selection
    assert len(full.drift.history_add) + full.drift.history_over_cap == (2 if held else 3)
