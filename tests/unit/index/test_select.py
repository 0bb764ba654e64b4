"""Which threads are restored, newest first, and when each was last active."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from codex_indexd.index.model import Policy, RolloutFacts, ThreadRow
from codex_indexd.index.select import select_threads, updated_at, updated_at_us
from codex_indexd.index.timefmt import EPOCH, ONE_US, epoch_us_from_ms, iso_from_ms
from tests.support.facts import BASE_MS, by_id, rollout, row, tid

ALL = Policy(max_threads=0)


def ids(n: int, *more: int) -> list[str]:
    return [tid(i) for i in (n, *more)]


def test_without_a_db_every_live_rollout_is_restored_newest_first() -> None:
    rollouts = by_id([rollout(1, "a"), rollout(3, "c"), rollout(2, "b", archived=True)])
    no_db: tuple[dict[str, ThreadRow] | None, ...] = (None, {})
    for threads in no_db:
        selection = select_threads(threads, rollouts, {}, ALL)
        assert [e.thread_id for e in selection.entries] == ids(3, 1)
        assert not selection.used_db and selection.skipped_orphans == 0


def test_with_a_db_its_threads_are_restored_and_orphans_counted() -> None:
    rollouts = by_id([rollout(1, "a"), rollout(2, "b"), rollout(3, "orphan")])
    threads = {tid(1): row(1, updated_ms=BASE_MS), tid(2): row(2, updated_ms=BASE_MS)}
    selection = select_threads(threads, rollouts, {}, ALL)
    assert selection.used_db
    assert selection.thread_ids == {tid(1), tid(2)}
    assert selection.skipped_orphans == 1
    with_orphans = select_threads(
        threads, rollouts, {}, Policy(max_threads=0, include_orphans=True)
    )
    assert with_orphans.thread_ids == {tid(1), tid(2), tid(3)}
    assert with_orphans.skipped_orphans == 0


def test_archived_threads_are_never_restored() -> None:
    rollouts = by_id([rollout(1, "a"), rollout(2, "b", archived=True)])
    threads = {tid(1): row(1, archived=True, updated_ms=BASE_MS)}
    policy = Policy(max_threads=0, include_orphans=True)
    assert select_threads(threads, rollouts, {}, policy).entries == ()


def test_a_db_thread_without_its_rollout_is_restored_from_the_row() -> None:
    threads = {tid(9): row(9, title="From the DB", updated_ms=BASE_MS)}
    (entry,) = select_threads(threads, {}, {}, ALL).entries
    assert (entry.thread_id, entry.thread_name) == (tid(9), "From the DB")
    assert entry.updated_at == iso_from_ms(BASE_MS)


def test_a_thread_with_no_time_at_all_is_left_out() -> None:
    threads = {tid(1): row(1, title="t")}  # no updated_at_ms, no created_at_ms, no rollout
    assert select_threads(threads, {}, {}, ALL).entries == ()


def test_max_threads_keeps_the_newest() -> None:
    rollouts = by_id(rollout(n, f"turn {n}") for n in range(10))
    selection = select_threads(None, rollouts, {}, Policy(max_threads=3))
    assert [e.thread_id for e in selection.entries] == ids(9, 8, 7)


def test_only_limits_the_selection_to_those_threads() -> None:
    rollouts = by_id(rollout(n, f"turn {n}") for n in range(5))
    selection = select_threads(None, rollouts, {}, ALL, only={tid(1), tid(3), tid(99)})
    assert [e.thread_id for e in selection.entries] == ids(3, 1)


def test_the_rollout_time_is_used_unless_the_db_row_is_newer() -> None:
    facts = rollout(1, "a", at_ms=BASE_MS)
    older_row = row(1, updated_ms=BASE_MS - 5000)
    newer_row = row(1, updated_ms=BASE_MS + 5000)
    from_rollout = updated_at(None, facts)
    assert from_rollout is not None and from_rollout[1] == facts.last_timestamp
    assert updated_at(older_row, facts) == from_rollout, "an older row does not move it back"
    when = updated_at(newer_row, facts)
    assert when is not None and when[1] == iso_from_ms(BASE_MS + 5000)


def test_without_an_update_time_the_creation_time_counts() -> None:
    created = row(1, created_ms=BASE_MS)
    when = updated_at(created, None)
    assert when is not None and when[1] == iso_from_ms(BASE_MS)
    facts = RolloutFacts(tid(1), "/x", created_at="2026-05-01T10:00:00Z")
    when = updated_at(None, facts)
    assert when is not None and when[1] == "2026-05-01T10:00:00Z"
    unparsable = RolloutFacts(tid(1), "/x", created_at="yesterday", last_timestamp="soon")
    assert updated_at(None, unparsable) is None
    assert updated_at(None, None) is None


def test_the_names_follow_the_precedence() -> None:
    rollouts = by_id([rollout(1, "first message", title="rollout title")])
    threads = {tid(1): row(1, name="DB name", title="t", first="t", updated_ms=BASE_MS)}
    (entry,) = select_threads(threads, rollouts, {}, ALL).entries
    assert entry.thread_name == "DB name"


threads_st = st.lists(
    st.tuples(st.integers(0, 30), st.integers(-50, 50), st.booleans(), st.booleans()),
    max_size=25,
    unique_by=lambda t: t[0],
)


def home_of(
    spec: list[tuple[int, int, bool, bool]],
) -> tuple[dict[str, ThreadRow], dict[str, RolloutFacts]]:
    """(n, minutes offset, in the DB, archived) per thread: DB rows and rollouts."""
    rollouts = by_id(
        rollout(n, f"turn {n}", at_ms=BASE_MS + minutes * 60_000, archived=archived)
        for n, minutes, _, archived in spec
    )
    threads = {tid(n): row(n, archived=archived) for n, _, in_db, archived in spec if in_db}
    return threads, rollouts


@given(spec=threads_st, limit=st.integers(0, 30), orphans=st.booleans())
def test_a_limited_selection_is_the_newest_prefix_of_the_full_one(
    spec: list[tuple[int, int, bool, bool]], limit: int, orphans: bool
) -> None:
    threads, rollouts = home_of(spec)
    full = select_threads(threads, rollouts, {}, Policy(max_threads=0, include_orphans=orphans))
    limited = select_threads(
        threads, rollouts, {}, Policy(max_threads=limit, include_orphans=orphans)
    )
    keys = [(e.sort_us, e.thread_id) for e in full.entries]
    assert keys == sorted(keys, reverse=True), "newest first, ties by id"
    assert limited.entries == (full.entries[:limit] if limit else full.entries)
    assert not any(rollouts[e.thread_id].archived for e in full.entries)
    assert len({e.thread_id for e in full.entries}) == len(full.entries)


@given(spec=threads_st, picked=st.sets(st.integers(0, 30)))
def test_a_partial_selection_is_the_full_one_restricted(
    spec: list[tuple[int, int, bool, bool]], picked: set[int]
) -> None:
    threads, rollouts = home_of(spec)
    only = {tid(n) for n in picked}
    full = select_threads(threads, rollouts, {}, ALL)
    partial = select_threads(threads, rollouts, {}, ALL, only=only)
    assert partial.entries == tuple(e for e in full.entries if e.thread_id in only)


# The DB's times and the rollouts' raw times, around where the fast paths stop being exact.
ms_st = st.one_of(
    st.integers(1_600_000_000_000, 1_900_000_000_000),
    st.integers(0, 1 << 41),
    st.integers((1 << 41) - 1000, (1 << 43)),
    st.integers(-62_000_000_000_000, 253_000_000_000_000),
)
stamp_st = st.one_of(
    st.none(),
    st.sampled_from(["", "soon", "2026-05-01T10:00:00Z", "2026-05-01T10:00:00.123456789Z"]),
    ms_st.map(iso_from_ms),
    ms_st.map(lambda ms: iso_from_ms(ms).replace(".", ".5", 1)),
)


def reference_updated_at_us(thread: ThreadRow | None, facts: RolloutFacts | None) -> object:
    """`updated_at` with its datetime as exact microseconds, and the timestamp the selection
    kept before it worked in microseconds."""
    when = updated_at(thread, facts)
    if when is None:
        return None
    return (when[0] - EPOCH) // ONE_US, when[1], int(when[0].timestamp() * 1_000_000)


@given(
    updated=st.one_of(st.none(), ms_st),
    created=st.one_of(st.none(), ms_st),
    last=stamp_st,
    first=stamp_st,
)
def test_updated_at_in_microseconds_is_updated_at(
    updated: int | None, created: int | None, last: str | None, first: str | None
) -> None:
    thread = row(1, updated_ms=updated, created_ms=created)
    facts = RolloutFacts(tid(1), "/x", created_at=first, last_timestamp=last)
    for pair in ((thread, facts), (None, facts), (thread, None)):
        expected = reference_updated_at_us(*pair)
        got = updated_at_us(*pair)
        if expected is None:
            assert got is None
            continue
        assert got is not None
        assert (got[0], got[1], int(got[0] / 1_000_000 * 1_000_000)) == expected


@given(ms=ms_st)
def test_iso_from_ms_is_what_isoformat_writes(ms: int) -> None:
    when = datetime.fromtimestamp(ms / 1000, tz=UTC)
    assert iso_from_ms(ms) == when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert epoch_us_from_ms(ms) == (when - EPOCH) // ONE_US
