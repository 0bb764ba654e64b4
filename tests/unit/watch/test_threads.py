"""The daemon's view of the state DB: a full read after an index change is skipped only when no
other connection committed since the last full read."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from structlog.testing import capture_logs

from codex_indexd.codex.home import CodexHome
from codex_indexd.watch.threads import ThreadTable
from tests.support.homes import build_home, new_thread

FP_A = (1, 2, 3, 4)
FP_B = (1, 2, 30, 40)


def a_table(tmp_path: Path) -> tuple[ThreadTable, Path, list[str]]:
    threads = [new_thread(i) for i in range(3)]
    home = build_home(tmp_path / "home", threads)
    table = ThreadTable(CodexHome.at(home))
    assert table.refresh(force=True)
    return table, home / "state_5.sqlite", [t.thread_id for t in threads]


def count_selects(table: ThreadTable) -> list[str]:
    """Record the `SELECT ... FROM threads` statements the table's connection runs."""
    seen: list[str] = []
    assert table._conn is not None
    table._conn.set_trace_callback(
        lambda sql: seen.append(sql) if sql.startswith("SELECT") and "FROM threads" in sql else None
    )
    return seen


def rename(db: Path, thread_id: str, name: str) -> None:
    """What Codex 0.169 does on a rename: the name, and `updated_at_ms` 1 ms later."""
    conn = sqlite3.connect(db)
    try:
        conn.execute(
            "UPDATE threads SET name = ?, updated_at_ms = (SELECT max(updated_at_ms) FROM threads) + 1000 WHERE id = ?",
            (name, thread_id),
        )
        conn.commit()
    finally:
        conn.close()


def test_an_index_change_after_a_full_read_with_no_commit_since_reads_nothing(
    tmp_path: Path,
) -> None:
    table, _db, ids = a_table(tmp_path)
    rows = dict(table.rows or {})
    selects = count_selects(table)
    assert table.refresh_for_index(FP_A) is False
    assert selects == []
    assert table.rows == rows and set(rows) == set(ids)


def test_an_index_change_after_a_commit_reads_every_row_again(tmp_path: Path) -> None:
    table, db, ids = a_table(tmp_path)
    rename(db, ids[0], "renamed")
    selects = count_selects(table)
    assert table.refresh_for_index(FP_A) is True
    assert len(selects) == 1 and "WHERE" not in selects[0]  # a full read
    assert table.rows is not None and table.rows[ids[0]].name == "renamed"
    # The same index content again: nothing to do; a new one with no commit since: no read.
    assert table.refresh_for_index(FP_A) is False
    assert table.refresh_for_index(FP_B) is False
    assert len(selects) == 1


def test_an_incremental_read_does_not_stand_for_a_full_one(tmp_path: Path) -> None:
    """A rename of an old thread moves `updated_at_ms` by 1 ms, below what the incremental
    query looks at: after one, an index change must still read every row."""
    table, db, ids = a_table(tmp_path)
    rename(db, ids[0], "renamed")
    table.refresh()  # incremental: whether it sees the rename depends on the rows' times
    selects = count_selects(table)
    table.refresh_for_index(FP_A)
    assert len(selects) == 1 and "WHERE" not in selects[0]
    assert table.rows is not None and table.rows[ids[0]].name == "renamed"


def test_a_forced_refresh_always_reads_every_row(tmp_path: Path) -> None:
    table, _db, _ids = a_table(tmp_path)
    selects = count_selects(table)
    assert table.refresh(force=True) is True
    assert len(selects) == 1


def test_a_row_that_is_not_utf8_is_left_out_of_every_read(tmp_path: Path) -> None:
    """A damaged row (text that does not decode) is read as absent by a full, an incremental
    and a by-id read; the others are read; no log line quotes its text."""
    table, db, ids = a_table(tmp_path)
    secret = "a private name"
    bad = (secret + "\udcff").encode("utf-8", "surrogateescape")
    conn = sqlite3.connect(db)
    later = "(SELECT max(updated_at_ms) FROM threads) + 1000"  # as a rename moves it
    conn.execute(
        f"UPDATE threads SET name = CAST(? AS TEXT), updated_at_ms = {later} WHERE id = ?",
        (bad, ids[0]),
    )
    conn.execute(
        f"UPDATE threads SET name = 'fine', updated_at_ms = {later} WHERE id = ?", (ids[1],)
    )
    conn.commit()
    conn.close()
    with capture_logs() as logs:
        table.refresh()  # incremental: the rows updated since
        assert table.rows is not None and table.rows[ids[1]].name == "fine"
        table.refresh_ids(ids)
        assert table.refresh(force=True)
    assert table.error is None
    assert table.rows is not None and set(table.rows) == set(ids[1:])
    assert any(e["event"] == "statedb.rows_undecodable" for e in logs)
    assert secret not in repr(logs)
