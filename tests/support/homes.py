"""Builders for small Codex homes in tests: rollouts in each format, a state DB, index files.

Lines follow what Codex 0.169.0 writes (docs/codex-formats.md); the tests in tests/e2e check
the same against the real binary. Tests whose point is an odd or torn line write those bytes
themselves, next to lines from the builders here.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BASE_TIME = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


@dataclass
class Turn:
    text: str
    images: list[str] = field(default_factory=list)


@dataclass
class Thread:
    thread_id: str
    start: datetime
    turns: list[Turn]
    paginated: bool = False
    source: str = "cli"
    archived: bool = False
    renames: list[tuple[datetime, str]] = field(default_factory=list)
    tool_output_bytes: int = 2000

    @property
    def last_time(self) -> datetime:
        return self.start + timedelta(seconds=10 * len(self.turns) + 5)


def make_uuid(i: int, *, v7: bool) -> str:
    """Return a deterministic UUIDv7-shaped (current Codex) or v4 (2025 files) id."""
    value = (0x0193_4A5B_C000 << 80) | (i + 1)
    value &= ~(0xF000 << 64)
    value |= (0x7000 if v7 else 0x4000) << 64
    value &= ~(0xC000 << 48)
    value |= 0x8000 << 48
    return str(uuid.UUID(int=value))


def new_thread(i: int, *, turns: int = 2, paginated: bool = False, **kw: Any) -> Thread:
    """Return a thread with deterministic id and times (thread i starts i minutes after BASE)."""
    tid = make_uuid(i, v7=paginated)
    texts = [
        Turn(f"Prompt {j} of thread {i}: explain item {j}\nwith a second line")
        for j in range(turns)
    ]
    return Thread(tid, BASE_TIME + timedelta(minutes=i), texts, paginated=paginated, **kw)


# -- rollout lines -------------------------------------------------------------------------
# Each builder returns one line (with its newline) with the keys in Codex's order:
# `timestamp`, `ordinal` (paginated rollouts only), `type`, `payload`. The reader's fast path
# relies on that order, so tests that need odd shapes write those bytes themselves.


def record(ts: str, kind: str, payload: dict[str, Any], *, ordinal: int | None = None) -> str:
    """A rollout line of type `kind` at `ts` (RFC 3339, as written)."""
    obj: dict[str, Any] = {"timestamp": ts}
    if ordinal is not None:
        obj["ordinal"] = ordinal
    obj["type"] = kind
    obj["payload"] = payload
    return line(obj)


def session_meta(thread_id: str, ts: str, *, ordinal: int | None = None, **fields: Any) -> str:
    """A `session_meta` line: `id`, `timestamp`, then `fields` in the order given."""
    return record(ts, "session_meta", {"id": thread_id, "timestamp": ts, **fields}, ordinal=ordinal)


def user_message(text: str, ts: str, *, ordinal: int | None = None, **fields: Any) -> str:
    """A legacy user turn: an `event_msg` / `user_message` (extra payload `fields` after it)."""
    payload = {"type": "user_message", "message": text, **fields}
    return record(ts, "event_msg", payload, ordinal=ordinal)


def user_item(
    thread_id: str,
    text: str,
    ts: str,
    *,
    ordinal: int,
    turn_id: str,
    item_id: str,
    images: Sequence[str] = (),
) -> str:
    """A paginated user turn: an `event_msg` / `item_completed` with a `UserMessage` item."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text, "text_elements": []}]
    content += [{"type": "image", "image_url": url} for url in images]
    payload = {
        "type": "item_completed",
        "thread_id": thread_id,
        "turn_id": turn_id,
        "item": {"type": "UserMessage", "id": item_id, "content": content},
    }
    return record(ts, "event_msg", payload, ordinal=ordinal)


def response_message(text: str, ts: str, *, role: str = "user", ordinal: int | None = None) -> str:
    """A `response_item` message (what the model saw; never a user turn for the index)."""
    payload = {"type": "message", "role": role, "content": [{"type": "input_text", "text": text}]}
    return record(ts, "response_item", payload, ordinal=ordinal)


def thread_renamed(thread_id: str, name: str, ts: str, *, ordinal: int | None = None) -> str:
    """A `thread_name_updated` event: a rename made in Codex."""
    payload = {"type": "thread_name_updated", "thread_id": thread_id, "thread_name": name}
    return record(ts, "event_msg", payload, ordinal=ordinal)


def user_turn(thread: Thread, text: str, when: datetime, *, ordinal: int = 1000) -> str:
    """A user turn line to append to `thread`'s rollout, in its format: legacy
    `user_message`, or paginated `item_completed` (ids derived from `ordinal`)."""
    if thread.paginated:
        return user_item(
            thread.thread_id,
            text,
            iso(when),
            ordinal=ordinal,
            turn_id=f"t{ordinal}",
            item_id=f"u{ordinal}",
        )
    return user_message(text, iso(when), images=[], local_images=[], kind="plain")


ENVIRONMENT_CONTEXT = "<environment_context>\n  <cwd>/work/x</cwd>\n</environment_context>"
"""The context Codex injects as the first `response_item` user message of a session."""


def rollout_lines(thread: Thread) -> list[str]:
    """Return the rollout lines for a thread, legacy (G1) or paginated (G2)."""
    ordinals = itertools.count()

    def at(ts: datetime) -> tuple[str, int | None]:
        return iso(ts), next(ordinals) if thread.paginated else None

    def emit(ts: datetime, kind: str, payload: dict[str, Any]) -> str:
        when, ordinal = at(ts)
        return record(when, kind, payload, ordinal=ordinal)

    meta: dict[str, Any] = {
        "cwd": "/work/x",
        "originator": "codex_cli_rs",
        "cli_version": "0.169.0",
        "source": thread.source,
        "model_provider": "mock",
    }
    if thread.paginated:
        meta["history_mode"] = "paginated"
    when, ordinal = at(thread.start)
    out = [session_meta(thread.thread_id, when, ordinal=ordinal, **meta)]
    when, ordinal = at(thread.start)
    out.append(response_message(ENVIRONMENT_CONTEXT, when, ordinal=ordinal))
    for j, turn in enumerate(thread.turns):
        ts = thread.start + timedelta(seconds=10 * (j + 1))
        out.append(emit(ts, "turn_context", {"cwd": "/work/x", "model": "mock"}))
        when, ordinal = at(ts)
        out.append(response_message(turn.text, when, ordinal=ordinal))
        when, ordinal = at(ts)
        if thread.paginated:
            assert ordinal is not None
            out.append(
                user_item(
                    thread.thread_id,
                    turn.text,
                    when,
                    ordinal=ordinal,
                    turn_id=f"t{j}",
                    item_id=f"u{j}",
                    images=turn.images,
                )
            )
        else:
            out.append(
                user_message(turn.text, when, images=turn.images, local_images=[], kind="plain")
            )
        output = {
            "type": "function_call_output",
            "call_id": "c",
            "output": "x" * thread.tool_output_bytes,
        }
        out.append(emit(ts + timedelta(seconds=1), "response_item", output))
        done = {"type": "agent_message", "message": "done"}
        out.append(emit(ts + timedelta(seconds=2), "event_msg", done))
    for when_dt, name in thread.renames:
        when, ordinal = at(when_dt)
        out.append(thread_renamed(thread.thread_id, name, when, ordinal=ordinal))
    return out


def rollout_name(thread: Thread) -> str:
    return f"rollout-{thread.start.strftime('%Y-%m-%dT%H-%M-%S')}-{thread.thread_id}.jsonl"


def rollout_path(home: Path, thread: Thread, *, archived: bool | None = None) -> Path:
    """Where Codex keeps the thread's rollout: `archived_sessions/` or `sessions/Y/M/D/`
    (`archived` overrides the thread's own flag: where an (un)archive moves it)."""
    if thread.archived if archived is None else archived:
        return home / "archived_sessions" / rollout_name(thread)
    return home / "sessions" / thread.start.strftime("%Y/%m/%d") / rollout_name(thread)


def write_rollout(home: Path, thread: Thread) -> Path:
    path = rollout_path(home, thread)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(rollout_lines(thread)), encoding="utf-8")
    return path


THREADS_DDL = """
CREATE TABLE threads (
  id TEXT PRIMARY KEY, rollout_path TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
  source TEXT NOT NULL, model_provider TEXT NOT NULL, cwd TEXT NOT NULL, title TEXT NOT NULL,
  sandbox_policy TEXT NOT NULL DEFAULT '', approval_mode TEXT NOT NULL DEFAULT '',
  tokens_used INTEGER NOT NULL DEFAULT 0, has_user_event INTEGER NOT NULL DEFAULT 0,
  archived INTEGER NOT NULL DEFAULT 0, archived_at INTEGER, first_user_message TEXT NOT NULL DEFAULT '',
  created_at_ms INTEGER, updated_at_ms INTEGER, preview TEXT NOT NULL DEFAULT '',
  history_mode TEXT NOT NULL DEFAULT 'legacy', name TEXT
)
"""


def db_row(
    home: Path, thread: Thread, *, name: str | None = None, title: str | None = None
) -> dict[str, Any]:
    first = thread.turns[0].text if thread.turns else ""
    path = rollout_path(home, thread)
    return {
        "id": thread.thread_id,
        "rollout_path": str(path),
        "created_at": int(thread.start.timestamp()),
        "updated_at": int(thread.last_time.timestamp()),
        "source": thread.source,
        "model_provider": "mock",
        "cwd": "/work/x",
        "title": title if title is not None else first,
        "first_user_message": first,
        "preview": first,
        "archived": int(thread.archived),
        "created_at_ms": int(thread.start.timestamp() * 1000),
        "updated_at_ms": int(thread.last_time.timestamp() * 1000),
        "history_mode": "paginated" if thread.paginated else "legacy",
        "name": name,
    }


def write_db(
    home: Path, rows: list[dict[str, Any]], *, ddl: str = THREADS_DDL, wal: bool = True
) -> Path:
    path = home / "state_5.sqlite"
    conn = sqlite3.connect(path)
    try:
        if wal:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(ddl)
        for row in rows:
            cols = ", ".join(row)
            conn.execute(
                f"INSERT INTO threads ({cols}) VALUES ({', '.join('?' for _ in row)})",
                list(row.values()),
            )
        conn.commit()
    finally:
        conn.close()
    return path


def build_home(
    home: Path, threads: list[Thread], *, db: bool = True, names: dict[str, str] | None = None
) -> Path:
    """Write rollouts (and DB rows unless `db` is False) for `threads`; return the home."""
    home.mkdir(parents=True, exist_ok=True)
    for thread in threads:
        write_rollout(home, thread)
    if db:
        write_db(home, [db_row(home, t, name=(names or {}).get(t.thread_id)) for t in threads])
    return home


def index_line(thread_id: str, name: str, updated_at: str) -> str:
    return line({"id": thread_id, "thread_name": name, "updated_at": updated_at})


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in path.read_text(encoding="utf-8").splitlines() if raw.strip()]
