"""When and how the daemon asks Codex to heal its DB: when the DB file was replaced or lost
rows, and otherwise at most every HEAL_INTERVAL_S (detection walks every thread)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from codex_indexd.daemon.home_writes import now_iso
from codex_indexd.engine import HomeFacts
from codex_indexd.heal.detect import Detection
from codex_indexd.watch.threads import ThreadTable

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

    def again(self) -> None:
        """Make the next `due` true (the last heal raised before it was done)."""
        self.last = -HEAL_INTERVAL_S


def record_db_drift(
    table: ThreadTable, facts: HomeFacts, stats: dict[str, Any]
) -> Detection | None:
    """Detect what the DB lost and keep the counts in `stats`; None without a DB."""
    if table.rows is None:
        stats["db_drift"] = {}
        return None
    from codex_indexd.heal import detect

    found = detect(facts)
    stats["db_drift"] = {k: v for k, v in found.counts().items() if v}
    return found


def heal_if_due(
    schedule: HealSchedule,
    table: ThreadTable,
    facts: Callable[[], HomeFacts],
    stats: dict[str, Any],
    *,
    mode: str,
    binary: str | None,
    force: bool = False,
) -> None:
    """Ask Codex to heal its DB when `schedule` says so and the DB drifted (detection runs
    even with `mode` off, for `status`); the outcome goes into `stats["last_heal"]`."""
    rows = len(table.rows) if table.rows is not None else 0
    if not schedule.due(replaced=table.replaced, rows=rows, now=time.monotonic(), force=force):
        return  # detection walks every thread: not on every reconcile
    current = facts()
    found = record_db_drift(table, current, stats)
    if mode == "off" and not force:
        return
    if found is None or found.empty:
        return
    from codex_indexd.heal import heal_once

    report = heal_once(current, mode=mode, binary=binary)
    stats["last_heal"] = {
        "at": now_iso(),
        "summary": report.summary(),
        "healed": report.healed,
        "not_healed": report.not_healed,
        "given_up": report.given_up,
        "how_to_enable": report.how_to_enable,
    }
    if report.ran:
        table.refresh(force=True)
        schedule.seen_replaced = table.replaced
