"""Read-only access to Codex's state DB (`state_<N>.sqlite`, the highest N; table `threads`).

We never write, checkpoint or vacuum it: connections are `mode=ro` URIs with
`query_only`, a busy timeout, and each read is one short transaction.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from codex_indexd.index.model import ThreadRow
from codex_indexd.log import get_logger
from codex_indexd.records import record

log = get_logger("codex_indexd.statedb")
BUSY_TIMEOUT_S = 2.0
# How sqlite3 begins the message of a text value that is not UTF-8 (it goes on to quote it).
UNDECODABLE = "Could not decode to UTF-8"
_WANTED = (
    "id",
    "rollout_path",
    "title",
    "first_user_message",
    "name",
    "created_at_ms",
    "updated_at_ms",
    "created_at",
    "updated_at",
    "archived",
    "source",
    "history_mode",
    "preview",
    "model_provider",
)


class StateDbError(Exception):
    """The DB could not be read; `kind` is `locked`, `corrupt`, `no_table` or `unreadable`."""

    def __init__(self, kind: str, path: Path, detail: str) -> None:
        super().__init__(f"{path}: {kind}: {detail}")
        self.kind = kind
        self.path = path
        self.detail = detail


def connect_readonly(
    path: Path, *, immutable: bool = False, readonly_shm: bool = False
) -> sqlite3.Connection:
    """Return a read-only connection. Raises StateDbError."""
    uri = f"file:{quote(str(path))}?mode=ro"
    if immutable:
        uri += "&immutable=1"
    if readonly_shm:
        uri += "&readonly_shm=1"
    try:
        conn = sqlite3.connect(
            uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA query_only=1")
    except sqlite3.Error as exc:
        raise classify_error(exc, path) from exc
    return conn


def classify_error(exc: sqlite3.Error, path: Path) -> StateDbError:
    """Return the StateDbError for what reading `path` raised; its detail never quotes a value."""
    text = str(exc)
    if text.startswith(UNDECODABLE):  # the rest would quote the value: a prompt
        text = "a text value is not valid UTF-8"
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return StateDbError("locked", path, text)
    if "no such table" in lowered:
        return StateDbError("no_table", path, text)
    if "malformed" in lowered or "not a database" in lowered or "corrupt" in lowered:
        return StateDbError("corrupt", path, text)
    return StateDbError("unreadable", path, text)


def thread_columns(conn: sqlite3.Connection) -> list[str]:
    """Return the columns of `threads` that we use and that this schema has."""
    present = {row[1] for row in conn.execute("PRAGMA table_info(threads)")}
    return [name for name in _WANTED if name in present]


def row_to_thread(row: Sequence[object], columns: Sequence[str]) -> ThreadRow | None:
    """Return the thread of one `SELECT <columns>` result row, or None when it has no id."""
    get = dict(zip(columns, row, strict=True)).get
    thread_id = get("id")
    if not isinstance(thread_id, str) or not thread_id:
        return None
    created_ms = _ms(get("created_at_ms"), get("created_at"))
    updated_ms = _ms(get("updated_at_ms"), get("updated_at"))
    name = get("name")
    # title, first_user_message and preview are usually the same text: keep one object.
    # Interned: the rollout's facts hold the same first message.
    first = sys.intern(_text(get("first_user_message")))
    title = sys.intern(_text(get("title")))
    preview = _optional_text(get("preview"))
    return ThreadRow(
        thread_id=sys.intern(thread_id),
        rollout_path=sys.intern(_text(get("rollout_path"))) or None,
        title=first if title == first else title,
        first_user_message=first,
        name=name if isinstance(name, str) and name.strip() else None,
        created_at_ms=created_ms,
        updated_at_ms=updated_ms,
        archived=bool(get("archived")),
        source=sys.intern(_text(get("source"))) or None,
        history_mode=sys.intern(_text(get("history_mode"))) or None,
        preview=first if preview == first else preview,
        model_provider=sys.intern(_text(get("model_provider"))) or None,
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _optional_text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _ms(ms_value: object, seconds_value: object) -> int | None:
    if isinstance(ms_value, int):
        return ms_value
    if isinstance(seconds_value, int):
        return seconds_value * 1000
    return None


@record(slots=True)
class ThreadQuery:
    """Result of one read: the rows and the largest `updated_at_ms` seen."""

    rows: dict[str, ThreadRow]
    max_updated_ms: int | None


def _select_list(present: set[str]) -> str:
    """Return the SELECT list of every ThreadRow field in order, normalised as `row_to_thread`
    does (text or NULL/'', integer times, the seconds fallback), NULL where a column is absent,
    so that each result row needs no per-column Python step. A title equal to the first
    message is NULL, such a preview 1: no string is made for either."""

    def text(name: str, empty: str) -> str:
        if name not in present:
            return empty
        return f"CASE WHEN typeof({name})='text' THEN {name} ELSE {empty} END"

    def nonempty(name: str) -> str:  # None for '' (as `_text(...) or None`)
        if name not in present:
            return "NULL"
        return f"CASE WHEN typeof({name})='text' AND {name}<>'' THEN {name} END"

    def ms(ms_name: str, s_name: str) -> str:
        cases = ""
        if ms_name in present:
            cases += f" WHEN typeof({ms_name})='integer' THEN {ms_name}"
        if s_name in present:  # times 1000 where SQLite's integer cannot overflow, else text
            cases += (
                f" WHEN typeof({s_name})='integer' THEN CASE WHEN {s_name}"
                f" BETWEEN -9223372036854775 AND 9223372036854775 THEN {s_name}*1000"
                f" ELSE printf('%d', {s_name}) END"
            )
        return f"CASE{cases} END" if cases else "NULL"

    archived = "0"
    if "archived" in present:  # Python's truth of the value SQLite returns
        archived = (
            "CASE WHEN archived IS NULL THEN 0 WHEN typeof(archived) IN ('integer','real')"
            " THEN archived<>0 ELSE length(archived)>0 END"
        )

    def same_as_first(name: str, marker: str, other: str) -> str:  # `marker` for the same text
        if name not in present:
            return other
        if "first_user_message" not in present:
            return text(name, other)
        return (
            f"CASE WHEN typeof({name})='text' AND typeof(first_user_message)='text'"
            f" AND {name}=first_user_message COLLATE BINARY THEN {marker}"
            f" WHEN typeof({name})='text' THEN {name} ELSE {other} END"
        )

    return ", ".join(
        [
            "id",
            nonempty("rollout_path"),
            same_as_first("title", "NULL", "''"),
            text("first_user_message", "''"),
            text("name", "NULL"),
            ms("created_at_ms", "created_at"),
            ms("updated_at_ms", "updated_at"),
            archived,
            nonempty("source"),
            nonempty("history_mode"),
            same_as_first("preview", "1", "NULL"),
            nonempty("model_provider"),
        ]
    )


_BOOL = (False, True)


def read_threads(
    conn: sqlite3.Connection, path: Path, *, updated_since_ms: int | None = None
) -> ThreadQuery:
    """Return thread rows (all, or those updated at or after `updated_since_ms`), each as
    `row_to_thread` makes it.

    Raises StateDbError (`no_table` when there is no `threads` table).
    """
    try:
        conn.row_factory = None
        conn.execute("BEGIN")
        try:
            present = {row[1] for row in conn.execute("PRAGMA table_info(threads)")}
            if "id" not in present:
                raise StateDbError("no_table", path, "no threads table (or no id column)")
            sql = f"SELECT {_select_list(present)} FROM threads"
            params: tuple[int, ...] = ()
            if updated_since_ms is not None and "updated_at_ms" in present:
                sql += " WHERE updated_at_ms >= ?"
                params = (updated_since_ms,)
            try:
                rows, max_ms = _threads(conn.execute(sql, params))
            except sqlite3.OperationalError as exc:
                if not str(exc).startswith(UNDECODABLE):
                    raise
                rows, max_ms = _threads(decodable_rows(conn, sql, params, path))
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise classify_error(exc, path) from exc
    return ThreadQuery(rows, max_ms)


_reported_undecodable: set[tuple[str, int]] = set()  # (DB path, rows): logged once per process


class _Undecodable:
    """What a text value that is not valid UTF-8 reads as in `decodable_rows`."""


_UNDECODABLE_VALUE = _Undecodable()


def _lenient_text(raw: bytes) -> str | _Undecodable:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _UNDECODABLE_VALUE


def decodable_rows(
    conn: sqlite3.Connection, sql: str, params: Sequence[object], path: Path
) -> list[tuple[Any, ...]]:
    """Return the rows of `sql` whose text values are all valid UTF-8 (read again with a
    decoder per value, which only a DB holding such a value pays for); the others are left
    out as if they had no row, and logged once per DB and number of rows, by id, without
    their text."""
    conn.text_factory = _lenient_text
    try:
        rows = conn.execute(sql, params).fetchall()
    finally:
        conn.text_factory = str
    good: list[tuple[Any, ...]] = []
    skipped: list[str] = []
    for row in rows:
        if _UNDECODABLE_VALUE not in row:
            good.append(row)
        else:
            skipped.append(row[0] if isinstance(row[0], str) else "?")
    if (str(path), len(skipped)) not in _reported_undecodable:
        _reported_undecodable.add((str(path), len(skipped)))
        log.warning(
            "statedb.rows_undecodable",
            path=str(path),
            rows=len(skipped),
            ids=skipped[:5],
            effect="these threads are read as if they had no DB row",
        )
    return good


def _threads(cursor: Iterable[Any]) -> tuple[dict[str, ThreadRow], int | None]:
    """Return the rows of a `_select_list` query by id, and the largest `updated_at_ms`."""
    intern, new, row_type = sys.intern, tuple.__new__, ThreadRow
    rows: dict[str, ThreadRow] = {}
    max_ms: int | None = None
    for raw in cursor:
        tid, path, title, first, name, created, updated, archived, src, mode, preview, prov = raw
        if type(tid) is not str or not tid:
            continue
        # title, first_user_message and preview are usually the same text (NULL and 1 in
        # the result): one object. Interned: the rollout's facts hold the same first message.
        fm = intern(first)
        thread = new(
            row_type,
            (
                intern(tid),
                None if path is None else intern(path),
                fm if title is None else intern(title),
                fm,
                name if name and not name.isspace() else None,
                created,
                updated,
                _BOOL[archived],
                None if src is None else intern(src),
                None if mode is None else intern(mode),
                fm if type(preview) is int else preview,
                None if prov is None else intern(prov),
            ),
        )
        if type(created) is str or type(updated) is str:  # seconds too large for SQLite's ms
            thread = thread._replace(
                created_at_ms=_huge_ms(created), updated_at_ms=_huge_ms(updated)
            )
        rows[thread.thread_id] = thread
        ms = thread.updated_at_ms
        if ms is not None and (max_ms is None or ms > max_ms):
            max_ms = ms
    return rows, max_ms


def _huge_ms(value: int | str | None) -> int | None:
    """Return the milliseconds of a `_select_list` time column (text: seconds)."""
    return int(value) * 1000 if isinstance(value, str) else value


def load_threads(path: Path) -> dict[str, ThreadRow]:
    """Read every thread row once, without creating or touching any side file.

    - No `-wal`/`-journal`: no writer has unsynced pages, so the file is read as immutable.
    - `-wal` and `-shm` present: read with `readonly_shm`, so the `-shm` is never written.
    - `-wal` without `-shm`: a plain read would create `-shm`, so a private copy is read.
    Raises StateDbError.
    """
    wal, shm, journal = (Path(f"{path}{suffix}") for suffix in ("-wal", "-shm", "-journal"))
    if wal.exists() and not shm.exists():
        return _load_from_copy(path, wal)
    attempts: list[dict[str, bool]] = []
    if not wal.exists() and not journal.exists():
        attempts.append({"immutable": True})
    if wal.exists():
        attempts.append({"readonly_shm": True})
    attempts.append({})
    last: StateDbError | None = None
    for options in attempts:
        try:
            conn = connect_readonly(path, **options)
        except StateDbError as exc:
            last = exc
            continue
        try:
            return read_threads(conn, path).rows
        except StateDbError as exc:
            last = exc
            if exc.kind == "no_table":
                break
        finally:
            conn.close()
    assert last is not None
    raise last


def _load_from_copy(path: Path, wal: Path) -> dict[str, ThreadRow]:
    """Read a copy of the DB and its WAL in a private temp dir. Raises StateDbError."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="codex-indexd-db-") as scratch:
        copy = Path(scratch) / path.name
        try:
            shutil.copyfile(path, copy)
            shutil.copyfile(wal, Path(f"{copy}-wal"))
        except OSError as exc:
            raise StateDbError("unreadable", path, str(exc)) from exc
        conn = connect_readonly(copy)
        try:
            return read_threads(conn, path).rows
        finally:
            conn.close()


def data_version(conn: sqlite3.Connection) -> int:
    """Return `PRAGMA data_version`, which changes when another connection commits."""
    row = conn.execute("PRAGMA data_version").fetchone()
    return int(row[0])
