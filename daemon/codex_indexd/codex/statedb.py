"""Read-only access to Codex's state DB (`state_<N>.sqlite`, the highest N; table `threads`).

We never write, checkpoint or vacuum it: connections are `mode=ro` URIs with
`query_only`, a busy timeout, and each read is one short transaction.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from codex_indexd.index.model import ThreadRow
from codex_indexd.records import record

BUSY_TIMEOUT_S = 2.0
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
        raise _classify(exc, path) from exc
    return conn


def _classify(exc: sqlite3.Error, path: Path) -> StateDbError:
    text = str(exc)
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


def read_threads(
    conn: sqlite3.Connection, path: Path, *, updated_since_ms: int | None = None
) -> ThreadQuery:
    """Return thread rows (all, or those updated at or after `updated_since_ms`).

    Raises StateDbError (`no_table` when there is no `threads` table).
    """
    try:
        conn.row_factory = None
        conn.execute("BEGIN")
        try:
            columns = thread_columns(conn)
            if "id" not in columns:
                raise StateDbError("no_table", path, "no threads table (or no id column)")
            sql = f"SELECT {', '.join(columns)} FROM threads"
            params: tuple[int, ...] = ()
            if updated_since_ms is not None and "updated_at_ms" in columns:
                sql += " WHERE updated_at_ms >= ?"
                params = (updated_since_ms,)
            rows: dict[str, ThreadRow] = {}
            max_ms: int | None = None
            for row in conn.execute(sql, params):
                thread = row_to_thread(row, columns)
                if thread is None:
                    continue
                rows[thread.thread_id] = thread
                if thread.updated_at_ms is not None and (
                    max_ms is None or thread.updated_at_ms > max_ms
                ):
                    max_ms = thread.updated_at_ms
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise _classify(exc, path) from exc
    return ThreadQuery(rows, max_ms)


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
