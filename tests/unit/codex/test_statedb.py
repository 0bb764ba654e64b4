"""`read_threads` normalises in SQL what `row_to_thread` normalises in Python: the two agree on
rows of every value type, with or without each optional column."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from codex_indexd.codex.statedb import (
    _WANTED,
    classify_error,
    read_threads,
    row_to_thread,
    thread_columns,
)
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


SECRET = "a secret prompt"


def test_a_row_with_text_that_is_not_utf8_is_left_out_alone(tmp_path: Path) -> None:
    """Codex's DB holds only UTF-8, but a damaged one may not: the row with a value that does
    not decode is read as if absent (one warning, by id, without its text); the others are
    read as they are."""
    db = tmp_path / "state_5.sqlite"
    conn = sqlite3.connect(db)
    _table(conn, ["id", "rollout_path", "title", "first_user_message", "updated_at_ms"])
    bad = (SECRET + "\udcff").encode("utf-8", "surrogateescape")
    conn.executemany(
        "INSERT INTO threads VALUES (?, ?, ?, ?, ?)",
        [
            ("t-good", "/r/a.jsonl", "hi", "hi", 5),
            ("t-title", "/r/b.jsonl", bad, "hi", 6),
            ("t-first", "/r/c.jsonl", "hi", bad, 7),
            ("t-path", bad, "hi", "hi", 8),
            (bad, "/r/e.jsonl", "hi", "hi", 9),
        ],
    )
    for column in ("id", "rollout_path", "title", "first_user_message"):  # blobs to text
        conn.execute(f"UPDATE threads SET {column} = CAST({column} AS TEXT)")
    conn.commit()
    with capture_logs() as logs:
        first = read_threads(conn, db)
        again = read_threads(conn, db)
    conn.close()
    assert set(first.rows) == set(again.rows) == {"t-good"}
    assert first.rows["t-good"].title == "hi" and first.max_updated_ms == 5
    warned = [e for e in logs if e["event"] == "statedb.rows_undecodable"]
    assert len(warned) == 1 and warned[0]["rows"] == 4
    assert sorted(warned[0]["ids"]) == ["?", "t-first", "t-path", "t-title"]
    assert SECRET not in repr(logs)


def test_a_decoding_error_never_quotes_the_value(tmp_path: Path) -> None:
    error = sqlite3.OperationalError(
        f"Could not decode to UTF-8 column 'title' with text '{SECRET}'"
    )
    assert SECRET not in str(classify_error(error, tmp_path / "state_5.sqlite"))
