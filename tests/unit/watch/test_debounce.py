"""The debouncer: events mark paths dirty; a batch is due after a quiet period or, in a steady
stream of events, at the latest `max_delay_s` after the first one."""

from __future__ import annotations

from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from codex_indexd.watch import debounce
from codex_indexd.watch.debounce import Batch, Debouncer

QUIET_S = 0.5
MAX_DELAY_S = 2.0


class FakeClock:
    """A `time` stand-in for the debounce module: `monotonic()` returns `now`."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


def marked_at(offsets: list[float], start: float = 100.0) -> Debouncer:
    """A debouncer that saw one event at each of `start + offset`."""
    clock = FakeClock(start)
    d = Debouncer(QUIET_S, MAX_DELAY_S)
    with mock.patch.object(debounce, "time", clock):
        for n, offset in enumerate(offsets):
            clock.now = start + offset
            d.mark("/home", f"/home/sessions/{n}.jsonl")
    return d


def test_nothing_pending_is_never_due() -> None:
    d = Debouncer(QUIET_S, MAX_DELAY_S)
    assert d.due_in(0.0) is None
    assert not d.drain()


def test_a_single_event_is_due_after_the_quiet_period() -> None:
    d = marked_at([0.0])
    assert d.due_in(100.0) == QUIET_S
    assert d.due_in(100.0 + QUIET_S / 2) == QUIET_S / 2
    assert d.due_in(100.0 + QUIET_S) == 0.0
    assert d.due_in(1000.0) == 0.0


def test_each_event_restarts_the_quiet_period() -> None:
    d = marked_at([0.0, 0.3])
    assert d.due_in(100.3) == QUIET_S


def test_a_steady_stream_is_due_max_delay_after_its_first_event() -> None:
    d = marked_at([i * QUIET_S / 2 for i in range(20)])  # never quiet for QUIET_S
    assert d.due_in(100.0) == MAX_DELAY_S
    assert d.due_in(100.0 + MAX_DELAY_S) == 0.0


@given(
    gaps=st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=30),
    later=st.floats(0.0, 5.0, allow_nan=False),
)
def test_a_batch_is_due_at_the_earlier_of_quiet_and_max_delay(
    gaps: list[float], later: float
) -> None:
    offsets = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    d = marked_at(offsets)
    first, last = 100.0 + offsets[0], 100.0 + offsets[-1]
    now = last + later
    due = d.due_in(now)
    assert due is not None and due >= 0.0
    due_at = now + due
    # never later than either bound, and never before both have a reason to fire
    assert due_at <= max(now, last + QUIET_S) + 1e-9
    assert due_at <= max(now, first + MAX_DELAY_S) + 1e-9
    assert due_at >= min(last + QUIET_S, first + MAX_DELAY_S) - 1e-9
    # time passing brings it closer by as much, down to "due now"
    later_due = d.due_in(now + 0.1)
    assert later_due is not None and abs(later_due - max(0.0, due - 0.1)) < 1e-9


def test_wait_returns_every_mark_coalesced_in_one_batch() -> None:
    d = Debouncer(0.01, 1.0)
    d.mark("/a", "/a/sessions/x.jsonl")
    d.mark("/a", "/a/sessions/x.jsonl")
    d.mark("/a", "/a/sessions/y.jsonl")
    d.request_full("/b")
    batch = d.wait(10.0)
    assert batch.paths == {"/a": {"/a/sessions/x.jsonl", "/a/sessions/y.jsonl"}}
    assert batch.full == {"/b"}
    assert not batch.rewatch
    assert batch.events == 4
    assert d.due_in(0.0) is None, "taking the batch leaves nothing pending"


def test_rewatch_asks_for_a_full_reconcile_of_its_home() -> None:
    d = Debouncer(QUIET_S, MAX_DELAY_S)
    d.request_rewatch("/a")
    batch = d.drain()
    assert batch.rewatch and batch.full == {"/a"} and bool(batch)


def test_wait_times_out_with_an_empty_batch() -> None:
    d = Debouncer(60.0, 60.0)
    d.mark("/a", "/a/x")  # pending but not due for a minute
    batch = d.wait(0.01)
    assert not batch
    assert d.drain().paths == {"/a": {"/a/x"}}, "a timed-out wait keeps what is pending"


def test_wake_makes_wait_return_at_once() -> None:
    d = Debouncer(60.0, 60.0)
    d.wake()
    assert d.wait(600.0) == Batch()
    # the wake-up is consumed: the next wait waits again
    assert d.wait(0.01) == Batch()


def test_discard_if_forgets_our_own_write_only_when_it_is_still_ours() -> None:
    d = Debouncer(QUIET_S, MAX_DELAY_S)
    d.mark("/a", "/a/history.jsonl")
    d.discard_if("/a", "/a/history.jsonl", lambda: False)
    assert d.due_in(0.0) is not None, "someone else wrote after us: the mark stays"
    d.discard_if("/a", "/a/history.jsonl", lambda: True)
    assert d.due_in(0.0) is None, "nothing else pending: no batch at all"
    assert not d.drain()


def test_discard_if_keeps_the_other_marks() -> None:
    d = Debouncer(QUIET_S, MAX_DELAY_S)
    d.mark("/a", "/a/history.jsonl")
    d.mark("/a", "/a/sessions/x.jsonl")
    asked: list[bool] = []

    def still_ours() -> bool:
        asked.append(True)
        return True

    d.discard_if("/a", "/a/not-marked", still_ours)
    assert not asked, "a path that is not marked is not looked at"
    d.discard_if("/a", "/a/history.jsonl", still_ours)
    assert d.drain().paths == {"/a": {"/a/sessions/x.jsonl"}}


def test_batch_truthiness() -> None:
    assert not Batch()
    assert not Batch(events=3)  # events alone carry no work
    assert Batch(paths={"/a": {"/a/x"}})
    assert Batch(full={"/a"})
    assert Batch(rewatch=True)
