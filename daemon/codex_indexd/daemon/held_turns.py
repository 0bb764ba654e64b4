"""TUI turns held back for the TUI's own history line, and when to look at them again.

The TUI writes its history line up to 0.5 s after the rollout's user turn, then retries the
lock for up to 1 s: a turn the daemon saw arrive less than TUI_LINE_GRACE_S ago is left for the
TUI, and its thread is planned again once the grace period ends. A daemon that starts holds
the turns written seconds before it as if it had just seen them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from codex_indexd.index.history import (
    TUI_LINE_GRACE_S,
    TUI_TURN_WINDOW_S,
    threads_with_recent_turns,
)
from codex_indexd.index.model import RolloutFacts
from codex_indexd.index.plan import Plan

__all__ = ["RECHECK_MARGIN_S", "TUI_LINE_GRACE_S", "HeldTurns"]

RECHECK_MARGIN_S = 0.02


class HeldTurns:
    """When each thread's rollout last changed by an event, and when held turns are due."""

    def __init__(self) -> None:
        self.seen_at: dict[str, float] = {}  # thread -> when its rollout last changed
        self.recheck_at: float | None = None  # held-back TUI turns are due again then

    def saw(self, thread_ids: Iterable[str], now: float) -> None:
        """Record that the rollouts of `thread_ids` changed at monotonic time `now`."""
        for tid in thread_ids:
            self.seen_at[tid] = now

    def saw_recent_turns(
        self, rollouts: Mapping[str, RolloutFacts], wall_now: float, now: float
    ) -> None:
        """At start: hold the threads whose newest turn is seconds old by its rollout
        timestamp (a restart moments after a prompt; the TUI's own line may still come) as if
        their rollout changed at monotonic time `now`."""
        self.saw(threads_with_recent_turns(rollouts, wall_now, TUI_TURN_WINDOW_S), now)

    def fresh(self, now: float) -> frozenset[str]:
        """Return the threads whose rollout changed less than TUI_LINE_GRACE_S before `now`."""
        for tid in [t for t, at in self.seen_at.items() if now - at >= TUI_LINE_GRACE_S]:
            del self.seen_at[tid]
        return frozenset(self.seen_at)

    def hold(self, plan: Plan, now: float, *, replan: bool) -> set[str]:
        """Schedule the next look at the plan's held turns (or right away when `replan`: a
        write found a file changed since its plan); return the threads that stay dirty."""
        pending = plan.drift.history_pending
        if not pending:
            self.recheck_at = now if replan else None
            return set()
        sessions = {line.session_id for line in pending}
        seen = [self.seen_at[tid] for tid in sessions if tid in self.seen_at]
        self.recheck_at = (max(seen) if seen else now) + TUI_LINE_GRACE_S + RECHECK_MARGIN_S
        return sessions
