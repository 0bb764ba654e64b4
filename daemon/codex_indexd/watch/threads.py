"""The daemon's view of the state DB: one long-lived read-only connection, re-queried only
when `PRAGMA data_version` says another connection committed, and then only the rows whose
`updated_at_ms` moved (plus a full read when rows disappeared or the file was replaced)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from codex_indexd.codex.home import CodexHome
from codex_indexd.codex.statedb import (
    UNDECODABLE,
    StateDbError,
    classify_error,
    connect_readonly,
    data_version,
    decodable_rows,
    read_threads,
    row_to_thread,
    thread_columns,
)
from codex_indexd.index.model import ThreadRow
from codex_indexd.log import get_logger

log = get_logger("codex_indexd.threads")
UPDATED_MARGIN_MS = 5_000  # re-read rows touched shortly before our last maximum


class ThreadTable:
    """Thread rows of one home's state DB, refreshed cheaply."""

    def __init__(self, home: CodexHome) -> None:
        self.home = home
        self.rows: dict[str, ThreadRow] | None = None
        self.db_path: Path | None = None
        self.replaced = 0  # how many times the DB file was replaced under us
        self.error: StateDbError | None = None
        self._conn: sqlite3.Connection | None = None
        self._ident: tuple[int, int] | None = None
        self._version: int | None = None
        # `data_version` when `rows` were last read whole: while it is unchanged, no other
        # connection committed since, so the rows are what a full read would return now.
        self._full_version: int | None = None
        self._max_ms: int | None = None
        # What changed since the worker last looked (it clears them): ids, or everything.
        self.changed_ids: set[str] = set()
        self.all_changed = True
        self._index_seen: tuple[int, int, int, int] | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connect(self, path: Path, ident: tuple[int, int]) -> None:
        self.close()
        if self._ident is not None and (path, ident) != (self.db_path, self._ident):
            self.replaced += 1
            log.info("db.replaced", path=str(path))
        self._conn = connect_readonly(path)
        self.db_path, self._ident, self._version = path, ident, None
        self._full_version = None

    def refresh(self, *, force: bool = False, whole: bool = False) -> bool:
        """Re-read what changed (`force`: every row; `whole`: every row unless nothing was
        committed since the last full read, whose rows are then current); return True when
        the rows changed. Errors are logged once per episode and the last good rows are kept."""
        try:
            changed = self._refresh(force, whole)
        except StateDbError as exc:
            if self.error is None or self.error.kind != exc.kind:
                log.warning(f"db.{exc.kind}", path=str(exc.path), detail=exc.detail)
            self.error = exc
            self.close()
            return False
        if self.error is not None:
            log.info("db.recovered", path=str(self.db_path))
            self.error = None
        return changed

    def refresh_for_index(
        self, fingerprint: tuple[int, int, int, int] | None, *, ours: bool = False
    ) -> bool:
        """Re-read every row when `session_index.jsonl` (its `fingerprint`, taken before this
        call) changed since the last such read, unless the change is our own write (`ours`);
        return True when the rows changed.

        Codex writes a rename's DB value before its index line, and the incremental query
        cannot see a rename (it bumps `updated_at_ms` by 1 ms): read this way, an index line
        seen is never paired with the row as it was before that rename."""
        seen, self._index_seen = self._index_seen, fingerprint
        if fingerprint == seen or ours:
            return False
        # Rows read whole with no commit since are what a read now returns: the start-up
        # read, typically, just before the first plan reads the index.
        return self.refresh(whole=True)

    def _refresh(self, force: bool, whole: bool = False) -> bool:
        path = self.home.state_db()
        if path is None:
            self.close()
            changed = self.rows is not None
            self.rows, self.db_path, self._ident = None, None, None
            return changed
        st = os.stat(path)
        ident = (st.st_dev, st.st_ino)
        full = force or whole or self.rows is None
        if self._conn is None or (path, ident) != (self.db_path, self._ident):
            self._connect(path, ident)
            full = True
        assert self._conn is not None
        try:
            version = data_version(self._conn)
        except sqlite3.Error as exc:
            raise StateDbError("unreadable", path, str(exc)) from exc
        if not full and version == self._version:
            return False
        if whole and not force and self.rows is not None and version == self._full_version:
            return False
        self._version = version
        if full or self._max_ms is None:
            query = read_threads(self._conn, path)
            self.rows, self._max_ms = query.rows, query.max_updated_ms
            self._full_version = version
            self.all_changed = True
            return True
        since = self._max_ms - UPDATED_MARGIN_MS
        query = read_threads(self._conn, path, updated_since_ms=since)
        assert self.rows is not None
        moved = {tid for tid, row in query.rows.items() if self.rows.get(tid) != row}
        changed = bool(moved)
        self.changed_ids |= moved
        self.rows.update(query.rows)
        if query.max_updated_ms is not None:
            self._max_ms = max(self._max_ms, query.max_updated_ms)
        if self._count() != len(self.rows):  # rows deleted (or inserted with old times)
            full_query = read_threads(self._conn, path)
            changed = changed or full_query.rows != self.rows
            self.rows, self._max_ms = full_query.rows, full_query.max_updated_ms
            self._full_version = version
            self.all_changed = True
        return changed

    def _count(self) -> int:
        assert self._conn is not None
        row = self._conn.execute("SELECT COUNT(*) FROM threads").fetchone()
        return int(row[0])

    def refresh_ids(self, ids: Iterable[str]) -> bool:
        """Re-read the rows of given threads (an archive may not move `updated_at_ms`)."""
        wanted = sorted(set(ids))
        if not wanted or self._conn is None or self.rows is None or self.db_path is None:
            return False
        changed = False
        try:
            columns = thread_columns(self._conn)
            self._conn.row_factory = None
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                sql = f"SELECT {', '.join(columns)} FROM threads WHERE id IN ({marks})"
                try:
                    raws = self._conn.execute(sql, chunk).fetchall()
                except sqlite3.OperationalError as exc:
                    if not str(exc).startswith(UNDECODABLE):
                        raise
                    raws = decodable_rows(self._conn, sql, chunk, self.db_path)
                for raw in raws:
                    row = row_to_thread(raw, columns)
                    if row is not None and self.rows.get(row.thread_id) != row:
                        self.rows[row.thread_id] = row
                        self.changed_ids.add(row.thread_id)
                        changed = True
        except sqlite3.Error as exc:
            error = classify_error(exc, self.db_path)
            log.warning(f"db.{error.kind}", path=str(self.db_path), detail=error.detail)
        return changed
