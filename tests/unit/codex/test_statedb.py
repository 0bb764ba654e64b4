"""`read_threads` normalises in SQL what `row_to_thread` normalises in Python: the two agree on
rows of every value type, with or without each optional column."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from codex_indexd.codex.statedb import _WANTED, read_threads, row_to_thread, thread_columns
from codex_indexd.index.model import ThreadRow

_VALUES = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, 2, -1, 1_700_000_000, 1_700_000_000_000, 9223372036854776]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", " ", "\t\n", "\u3000", "x", " named ", "0", "cli", "hello"]),
    st.text(max_size=8),
    st.binary(max_size=4),
)


def _table(conn: sqlite3.Connection, columns: list[str]) -> None:
    conn.execute(f"CREATE TABLE threads ({', '.join(columns)})")


@settings(max_examples=150, deadline=None)
@given(
    dropped=st.sets(st.sampled_from([c for c in _WANTED if c != "id"])),
    rows=st.lists(
        st.lists(_VALUES, min_size=len(_WANTED), max_size=len(_WANTED)), min_size=1, max_size=6
    ),
    ids=st.lists(st.one_of(st.none(), st.text(max_size=3), st.integers(0, 3)), min_size=6),
)
def test_read_threads_matches_row_to_thread(
    dropped: set[str], rows: list[list[object]], ids: list[object]
) -> None:
    columns = [c for c in _WANTED if c not in dropped]
    conn = sqlite3.connect(":memory:", isolation_level=None)
    _table(conn, columns)
    for i, values in enumerate(rows):
        by_name = dict(zip(_WANTED, values, strict=True))
        by_name["id"] = ids[i]
        marks = ", ".join("?" * len(columns))
        conn.execute(f"INSERT INTO threads VALUES ({marks})", [by_name[c] for c in columns])
    wanted = thread_columns(conn)
    expected: dict[str, ThreadRow] = {}
    for raw in conn.execute(f"SELECT {', '.join(wanted)} FROM threads"):
        thread = row_to_thread(raw, wanted)
        if thread is not None:
            expected[thread.thread_id] = thread
    got = read_threads(conn, Path("state_5.sqlite")).rows
    assert got == expected
    for tid, row in got.items():
        assert [type(v) for v in row] == [type(v) for v in expected[tid]]


def test_rows_since_and_the_largest_time() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    _table(conn, list(_WANTED))
    for i, updated in enumerate([5_000, 9_000, 7_000]):
        values: dict[str, object] = dict.fromkeys(_WANTED)
        values.update(id=f"t{i}", updated_at_ms=updated, title="a", first_user_message="a")
        values["preview"] = "a"
        conn.execute(
            f"INSERT INTO threads VALUES ({', '.join('?' * len(_WANTED))})",
            [values[c] for c in _WANTED],
        )
    query = read_threads(conn, Path("state_5.sqlite"), updated_since_ms=7_000)
    assert sorted(query.rows) == ["t1", "t2"]
    assert query.max_updated_ms == 9_000
    row = query.rows["t1"]
    assert row.title is row.first_user_message  # one object for the usual equal texts
    assert row.preview is row.first_user_message
