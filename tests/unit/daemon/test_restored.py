"""The restored ids behave as the set they stand for, through any run of full and partial
plans (small ones edit the list in place, large ones rebuild it)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from codex_indexd.daemon.restored import RestoredIds

ALL = [f"t{i:03d}" for i in range(200)]
ids = st.sampled_from(ALL)
Step = tuple[str, set[str], set[str]]
plans: st.SearchStrategy[list[Step]] = st.lists(
    st.one_of(
        st.tuples(st.just("full"), st.sets(ids, max_size=200), st.builds(set)),
        st.tuples(st.just("partial"), st.sets(ids, max_size=6), st.sets(ids, max_size=6)),
    ),
    max_size=20,
)


@given(st.sets(ids, max_size=40), plans)
def test_restored_ids_equal_a_set_model(
    start: set[str], steps: list[tuple[str, set[str], set[str]]]
) -> None:
    restored, model = RestoredIds(start), set(start)
    for kind, first, second in steps:
        if kind == "full":
            restored.replace(first)
            model = set(first)
        else:
            selected = first & second  # a plan selects among the threads it looked at
            restored.update(first, selected)
            model = (model - first) | selected
        assert restored.sorted() == sorted(model)
        assert len(restored) == len(model)


@given(st.randoms(use_true_random=False))
def test_small_partial_plans_on_many_ids_edit_in_place_as_a_set_would(rnd: random.Random) -> None:
    start = set(rnd.sample(ALL, 150))
    restored, model = RestoredIds(start), set(start)
    for _ in range(10):
        looked_at = set(rnd.sample(ALL, 8))
        selected = set(rnd.sample(sorted(looked_at), 3))
        restored.update(looked_at, selected)
        model = (model - looked_at) | selected
        assert restored.sorted() == sorted(model)
