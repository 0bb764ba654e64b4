"""The heal schedule: due when the DB was replaced or lost rows, else at most every
HEAL_INTERVAL_S."""

from __future__ import annotations

from codex_indexd.daemon.healing import HEAL_INTERVAL_S, HealSchedule


def test_the_first_look_is_due_and_then_waits_for_the_interval() -> None:
    schedule = HealSchedule()
    assert schedule.due(replaced=0, rows=10, now=0.0)
    assert not schedule.due(replaced=0, rows=10, now=HEAL_INTERVAL_S - 1)
    assert schedule.due(replaced=0, rows=10, now=HEAL_INTERVAL_S)


def test_a_replaced_db_or_lost_rows_make_it_due_at_once() -> None:
    schedule = HealSchedule()
    schedule.due(replaced=0, rows=10, now=0.0)
    assert schedule.due(replaced=1, rows=10, now=1.0)
    assert not schedule.due(replaced=1, rows=10, now=2.0), "the replacement was seen"
    assert schedule.due(replaced=1, rows=9, now=3.0)
    assert not schedule.due(replaced=1, rows=12, now=4.0), "new rows are no reason"


def test_force_is_always_due() -> None:
    schedule = HealSchedule()
    schedule.due(replaced=0, rows=1, now=0.0)
    assert schedule.due(replaced=0, rows=1, now=1.0, force=True)
