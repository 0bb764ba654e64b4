"""Turns cut from one packed form share pieces of it and still behave as lists of their own:
whatever is appended to one is seen by it alone, in any order of appends."""

from __future__ import annotations

from array import array

from hypothesis import given
from hypothesis import strategies as st

from codex_indexd.index.model import Turns, UserTurn, signed_key

ts = st.integers(0, 2**40)
keys = st.integers(0, 2**64 - 1)
turn_st = st.builds(UserTurn, ts, st.none(), keys, st.integers(-1, 2**40))
text_turn_st = st.builds(UserTurn, ts, st.text(max_size=5), keys, st.integers(-1, 2**40))


@given(
    # up to 120 turns: more than one piece of the packed form (`Turns.split` cuts them)
    st.lists(st.lists(turn_st, max_size=3), min_size=1, max_size=40),
    st.lists(st.tuples(st.integers(0, 39), turn_st | text_turn_st), max_size=12),
)
def test_split_turns_are_independent_lists(
    rollouts: list[list[UserTurn]], appends: list[tuple[int, UserTurn]]
) -> None:
    data = array("q")
    for turns in rollouts:
        for t in turns:
            data.extend((t.ts, signed_key(t.key), t.offset))
    shared = Turns.split(data, [len(t) for t in rollouts], None)
    expected = [list(t) for t in rollouts]
    for which, turn in appends:
        i = which % len(rollouts)
        shared[i].append(turn)
        expected[i].append(turn)
    for got, want in zip(shared, expected, strict=True):
        assert list(got) == want and len(got) == len(want)
        assert got.last_ts == (want[-1].ts if want else None)
        assert [(t, k) for t, k, _ in got.keyed()] == [(t.ts, t.key) for t in want]
        assert Turns.packed(got.data, got.texts) == want


def test_split_turns_start_at_cached_small_ints() -> None:
    """Each rollout's start in its piece is at most 256 (an int Python keeps cached), and the
    pieces hold every turn once."""
    counts = [2, 0, 1, 90, 3] * 40
    data = array("q", range(3 * sum(counts)))
    shared = Turns.split(data, counts, None)
    assert max(t._at for t in shared) <= 256
    assert len({id(t._data) for t in shared}) > 1
    assert [x for t in shared for x in t.data] == list(data)
