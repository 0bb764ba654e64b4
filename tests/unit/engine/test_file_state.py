"""A tracked file's numbers packed in one bytes object: the narrow form when the counts fit
in 4 bytes, the wide one otherwise, and every reader of a state sees the same numbers."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codex_indexd.engine.file_state import FileState, pack_columns, pack_numbers
from codex_indexd.index.model import RolloutFacts

u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(0, 2**63 - 1)
# counts around the narrow form's limit, so that both forms are drawn
counts = st.integers(0, 2**33) | st.sampled_from([2**32 - 1, 2**32])
numbers_st = st.tuples(u64, u64, i64, i64, i64, counts, counts, counts, st.integers(0, 3))


@given(numbers_st)
def test_a_state_gives_back_the_numbers_it_was_packed_from(numbers: tuple[int, ...]) -> None:
    state = FileState(RolloutFacts("t", "/p"), pack_numbers(*numbers), None)
    assert state.numbers() == numbers
    assert (state.dev, state.ino, state.size, state.mtime_ns, state.offset, state.lines) == (
        numbers[:6]
    )
    assert state.bare == bool(numbers[8] & 1)
    narrow = all(n < 2**32 for n in numbers[5:8])
    assert len(state.nums) == (53 if narrow else 65)
    assert state.same_file(struct.pack("<QQqq", *numbers[:4]))


@given(st.lists(numbers_st, max_size=6))
def test_columns_pack_as_their_rows_do(rows: list[tuple[int, ...]]) -> None:
    columns = [list(column) for column in zip(*rows, strict=True)] or [[] for _ in range(9)]
    assert pack_columns(*columns) == [pack_numbers(*row) for row in rows]


def test_a_number_that_fits_neither_form_raises() -> None:
    with pytest.raises(struct.error):
        pack_numbers(-1, 0, 0, 0, 0, 0, 0, 0, 0)
    with pytest.raises(struct.error):
        pack_columns([0], [0], [0], [0], [0], [2**64], [0], [0], [0])
