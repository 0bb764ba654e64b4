"""When the daemon asks Codex to heal its DB: when the DB file was replaced or lost rows, and
otherwise at most every HEAL_INTERVAL_S (detection walks every thread)."""

from __future__ import annotations

HEAL_INTERVAL_S = 300.0


class HealSchedule:
    """Decides whether a heal is due, from what the DB view saw since the last one."""

    def __init__(self) -> None:
        self.seen_replaced = 0
        self.seen_rows = 0
        self.last = -HEAL_INTERVAL_S

    def due(self, *, replaced: int, rows: int, now: float, force: bool = False) -> bool:
        """Return True when a heal is due at monotonic `now`, given how many times the DB was
        replaced so far and how many rows it has; a due heal counts as the last one."""
        dropped = rows < self.seen_rows
        self.seen_rows = rows
        changed = replaced != self.seen_replaced or dropped
        if not (force or changed or now - self.last >= HEAL_INTERVAL_S):
            return False
        self.seen_replaced = replaced
        self.last = now
        return True
