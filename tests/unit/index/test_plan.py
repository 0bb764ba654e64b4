"""make_plan: from facts and the two index files to the drift, with its reasons."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codex_indexd.index.history import encode_history_line
from codex_indexd.index.lines import parse_history_bytes, parse_index_bytes
from codex_indexd.index.model import DriftReason, HistoryLine, OnlyFile, Policy, RolloutFacts
from codex_indexd.index.plan import (
    encode_index_entry,
    make_plan,
    rebuilt_history_bytes,
    rebuilt_index_bytes,
)
from tests.support.facts import (
    BASE_MS,
    by_id,
    history_file,
    history_line,
    index_file,
    index_line,
    rollout,
    row,
    tid,
)

ALL = Policy(max_threads=0)
EMPTY_INDEX = index_file()
EMPTY_HISTORY = history_file()


def turns_of(facts: RolloutFacts) -> list[HistoryLine]:
    return [HistoryLine(facts.thread_id, t.ts, t.text) for t in facts.user_turns]


def test_nothing_to_do_in_an_empty_home() -> None:
    plan = make_plan(None, {}, EMPTY_INDEX, EMPTY_HISTORY, ALL)
    assert plan.drift.empty and plan.drift.counts() == {}
    assert plan.selection.entries == () and plan.desired_history == ()


def test_a_new_thread_is_missing_from_both_files() -> None:
    facts = rollout(1, "Explain apples\nin detail", "and pears")
    plan = make_plan(None, by_id([facts]), EMPTY_INDEX, EMPTY_HISTORY, ALL)
    (entry,) = plan.drift.index_append
    assert (entry.thread_id, entry.thread_name) == (tid(1), "Explain apples\nin detail")
    assert plan.drift.index_reasons == {tid(1): DriftReason.INDEX_MISSING}
    assert list(plan.drift.history_add) == turns_of(facts)
    assert plan.drift.counts() == {"index_missing": 1, "history_missing": 2}


def test_a_home_in_step_has_no_drift() -> None:
    facts = rollout(1, "hello")
    index = index_file(index_line(tid(1), "hello"))
    history = history_file(*turns_of(facts))
    plan = make_plan(None, by_id([facts]), index, history, ALL)
    assert plan.drift.empty, plan.drift


def test_a_stale_name_gets_a_newer_line() -> None:
    facts = rollout(1, "hello")
    threads = {tid(1): row(1, name="Renamed in the DB", updated_ms=BASE_MS)}
    index = index_file(index_line(tid(1), "hello"))
    plan = make_plan(threads, by_id([facts]), index, EMPTY_HISTORY, ALL)
    (entry,) = plan.drift.index_append
    assert entry.thread_name == "Renamed in the DB"
    assert plan.drift.index_reasons == {tid(1): DriftReason.INDEX_STALE_NAME}


def test_a_thread_known_only_by_its_id_gets_no_line_yet() -> None:
    facts = rollout(1)  # no turn, no title
    plan = make_plan(None, by_id([facts]), EMPTY_INDEX, EMPTY_HISTORY, ALL)
    assert [e.thread_id for e in plan.selection.entries] == [tid(1)]
    assert plan.drift.index_append == () and plan.drift.empty


def test_index_lines_are_appended_oldest_first() -> None:
    rollouts = by_id(rollout(n, f"turn {n}") for n in (2, 0, 1))
    plan = make_plan(None, rollouts, EMPTY_INDEX, EMPTY_HISTORY, ALL)
    assert [e.thread_id for e in plan.drift.index_append] == [tid(0), tid(1), tid(2)]
    assert [e.thread_id for e in plan.selection.entries] == [tid(2), tid(1), tid(0)]


def test_only_one_file_is_planned_when_asked() -> None:
    rollouts = by_id([rollout(1, "hello")])
    index_only = make_plan(
        None,
        rollouts,
        EMPTY_INDEX,
        EMPTY_HISTORY,
        Policy(max_threads=0, only=OnlyFile.SESSION_INDEX),
    )
    assert index_only.writes_index and not index_only.writes_history
    assert index_only.drift.index_append and not index_only.drift.history_add
    history_only = make_plan(
        None, rollouts, EMPTY_INDEX, EMPTY_HISTORY, Policy(max_threads=0, only=OnlyFile.HISTORY)
    )
    assert history_only.writes_history and not history_only.writes_index
    assert history_only.drift.history_add and not history_only.drift.index_append


def test_history_persistence_none_plans_no_history() -> None:
    policy = Policy(max_threads=0, history_enabled=False)
    plan = make_plan(None, by_id([rollout(1, "hello")]), EMPTY_INDEX, EMPTY_HISTORY, policy)
    assert not plan.writes_history
    assert plan.drift.history_add == () and plan.desired_history == ()
    assert plan.drift.index_append


def test_history_sources_filter_the_turns() -> None:
    rollouts = by_id([rollout(1, "from exec", source="exec"), rollout(2, "from cli")])
    policy = Policy(max_threads=0, history_sources=frozenset({"cli"}))
    plan = make_plan(None, rollouts, EMPTY_INDEX, EMPTY_HISTORY, policy)
    assert [line.text for line in plan.drift.history_add] == ["from cli"]
    assert len(plan.drift.index_append) == 2, "the index still lists every thread"


def test_a_partial_plan_needs_an_unlimited_selection() -> None:
    with pytest.raises(ValueError, match="max_threads"):
        make_plan(None, {}, EMPTY_INDEX, EMPTY_HISTORY, Policy(max_threads=5), only={tid(1)})


def test_a_partial_plan_covers_only_its_threads() -> None:
    rollouts = by_id(rollout(n, f"turn {n}") for n in range(4))
    plan = make_plan(None, rollouts, EMPTY_INDEX, EMPTY_HISTORY, ALL, only={tid(2)})
    assert [e.thread_id for e in plan.drift.index_append] == [tid(2)]
    assert [line.session_id for line in plan.drift.history_add] == [tid(2)]


def test_turns_of_fresh_threads_wait_for_the_tuis_own_line() -> None:
    rollouts = by_id([rollout(1, "tui turn"), rollout(2, "exec turn", source="exec")])
    plan = make_plan(
        None, rollouts, EMPTY_INDEX, EMPTY_HISTORY, ALL, fresh=frozenset({tid(1), tid(2)})
    )
    assert [line.text for line in plan.drift.history_pending] == ["tui turn"]
    assert [line.text for line in plan.drift.history_add] == ["exec turn"]


def test_over_the_cap_only_what_fits_is_added_and_the_rest_counted() -> None:
    facts = rollout(1, *(f"turn {i} " + "x" * 40 for i in range(6)))
    one = len(encode_history_line(turns_of(facts)[0])) + 1
    policy = Policy(max_threads=0, history_max_bytes=2 * one + 1)
    plan = make_plan(None, by_id([facts]), EMPTY_INDEX, EMPTY_HISTORY, policy)
    assert [line.text for line in plan.drift.history_add] == [
        t.text for t in facts.user_turns[-2:]
    ], "the newest that fit"
    assert plan.drift.history_over_cap == 4


def test_rebuilt_files_keep_unparseable_lines_first() -> None:
    facts = rollout(1, "hello")
    index = index_file(b"not json", index_line(tid(1), "old"))
    plan = make_plan(None, by_id([facts]), index, EMPTY_HISTORY, ALL)
    rebuilt = rebuilt_index_bytes(plan.selection, index)
    assert rebuilt == b"not json\n" + encode_index_entry(plan.selection.entries[0]) + b"\n"
    history = b"garbage\n" + history_line(tid(5), 1, "gone") + b"\n"
    rebuilt_history = rebuilt_history_bytes(history, plan.desired_history, ALL)
    assert rebuilt_history.split(b"\n")[0] == b"garbage"
    assert parse_history_bytes(rebuilt_history).parsed[1:] == list(plan.desired_history)


# -- a plan, once written, leaves nothing to do --------------------------------------------

texts_st = st.sampled_from(["hi", "hello\nworld", "é", "  padded  ", "x" * 30])
home_st = st.lists(
    st.tuples(st.integers(0, 12), st.lists(texts_st, max_size=4), st.booleans()),
    max_size=8,
    unique_by=lambda t: t[0],
)


@settings(max_examples=200, deadline=None)
@given(
    spec=home_st,
    indexed=st.sets(st.integers(0, 12)),
    in_history=st.sets(st.integers(0, 12)),
    in_db=st.sets(st.integers(0, 12)),
    limit=st.integers(0, 5),
    cap=st.none() | st.integers(100, 2000),
)
def test_applying_a_plan_leaves_no_drift(
    *,
    spec: list[tuple[int, list[str], bool]],
    indexed: set[int],
    in_history: set[int],
    in_db: set[int],
    limit: int,
    cap: int | None,
) -> None:
    rollouts = by_id(rollout(n, *texts, archived=archived) for n, texts, archived in spec)
    threads = {
        tid(n): row(n, name=f"db name {n}", updated_ms=BASE_MS) for n, _, _ in spec if n in in_db
    }
    index_bytes = b"".join(
        index_line(tid(n), f"old name {n}") + b"\n" for n, _, _ in spec if n in indexed
    )
    history_bytes = b"".join(
        history_line(tid(n), t.ts, t.text or "") + b"\n"
        for n, _, _ in spec
        if n in in_history
        for t in rollouts[tid(n)].user_turns
    )
    policy = Policy(max_threads=limit, include_orphans=True, history_max_bytes=cap)
    plan = make_plan(
        threads,
        rollouts,
        parse_index_bytes(index_bytes),
        parse_history_bytes(history_bytes),
        policy,
    )
    index_after = index_bytes + b"".join(
        encode_index_entry(e) + b"\n" for e in plan.drift.index_append
    )
    history_after = history_bytes + b"".join(
        encode_history_line(line) + b"\n" for line in plan.drift.history_add
    )
    if cap is not None:
        assert len(history_after) <= max(cap, len(history_bytes)), "never over the cap"
    again = make_plan(
        threads,
        rollouts,
        parse_index_bytes(index_after),
        parse_history_bytes(history_after),
        policy,
    )
    assert again.drift.index_append == ()
    assert again.drift.history_add == (), "what was left out stays left out"
    assert again.drift.history_over_cap == plan.drift.history_over_cap
    assert again.selection.entries == plan.selection.entries
