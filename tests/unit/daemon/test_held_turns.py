"""Held TUI turns: fresh for TUI_LINE_GRACE_S after their rollout changed, looked at again
when the grace period ends."""

from __future__ import annotations

from codex_indexd.daemon.held_turns import RECHECK_MARGIN_S, TUI_LINE_GRACE_S, HeldTurns
from codex_indexd.index.model import Drift, HistoryLine, Policy
from codex_indexd.index.plan import Plan
from codex_indexd.index.select import Selection


def plan_holding(*sessions: str) -> Plan:
    pending = tuple(HistoryLine(sid, 1000, None, 7) for sid in sessions)
    return Plan(Selection((), 0, True), (), Drift(history_pending=pending), Policy())


def test_a_thread_is_fresh_for_the_grace_period() -> None:
    held = HeldTurns()
    held.saw(["a"], 0.0)
    assert held.fresh(TUI_LINE_GRACE_S - 0.01) == {"a"}
    assert held.fresh(TUI_LINE_GRACE_S) == frozenset()


def test_held_turns_stay_dirty_and_are_due_when_the_grace_ends() -> None:
    held = HeldTurns()
    held.saw(["a"], 10.0)
    held.saw(["b"], 10.3)
    assert held.hold(plan_holding("a", "b"), 10.4, replan=False) == {"a", "b"}
    assert held.recheck_at == 10.3 + TUI_LINE_GRACE_S + RECHECK_MARGIN_S


def test_nothing_held_clears_the_recheck_unless_a_replan_is_due() -> None:
    held = HeldTurns()
    held.saw(["a"], 10.0)
    held.hold(plan_holding("a"), 10.1, replan=False)
    assert held.hold(plan_holding(), 11.0, replan=False) == set()
    assert held.recheck_at is None
    held.hold(plan_holding(), 12.0, replan=True)
    assert held.recheck_at == 12.0


def test_a_held_turn_not_seen_by_an_event_is_due_after_a_grace_from_now() -> None:
    held = HeldTurns()
    assert held.hold(plan_holding("c"), 5.0, replan=False) == {"c"}
    assert held.recheck_at == 5.0 + TUI_LINE_GRACE_S + RECHECK_MARGIN_S
