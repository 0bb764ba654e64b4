"""Builders for small Codex homes in tests: rollouts in each format, a state DB, index files.

Lines follow what Codex 0.169.0 writes (docs/codex-formats.md); the tests in
tests/e2e check the same against the real binary.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
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


def rollout_lines(thread: Thread) -> list[str]:
    """Return the rollout lines for a thread, legacy (G1) or paginated (G2)."""
    out: list[str] = []
    ordinal = 0

    def emit(ts: datetime, kind: str, payload: dict[str, Any]) -> None:
        nonlocal ordinal
        obj: dict[str, Any] = {"timestamp": iso(ts)}
        if thread.paginated:
            obj["ordinal"] = ordinal
            ordinal += 1
        obj["type"] = kind
        obj["payload"] = payload
        out.append(line(obj))

    meta: dict[str, Any] = {
        "id": thread.thread_id,
        "timestamp": iso(thread.start),
        "cwd": "/work/x",
        "originator": "codex_cli_rs",
        "cli_version": "0.169.0",
        "source": thread.source,
        "model_provider": "mock",
    }
    if thread.paginated:
        meta["history_mode"] = "paginated"
    emit(thread.start, "session_meta", meta)
    emit(
        thread.start,
        "response_item",
        {
            "type": "message",
            "role": "user",
            "content": [
                {
                    "type": "input_text",
                    "text": "<environment_context>\n  <cwd>/work/x</cwd>\n</environment_context>",
                }
            ],
        },
    )
    for j, turn in enumerate(thread.turns):
        ts = thread.start + timedelta(seconds=10 * (j + 1))
        emit(ts, "turn_context", {"cwd": "/work/x", "model": "mock"})
        emit(
            ts,
            "response_item",
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": turn.text}],
            },
        )
        if thread.paginated:
            content: list[dict[str, Any]] = [
                {"type": "text", "text": turn.text, "text_elements": []}
            ]
            content += [{"type": "image", "image_url": url} for url in turn.images]
            emit(
                ts,
                "event_msg",
                {
                    "type": "item_completed",
                    "thread_id": thread.thread_id,
                    "turn_id": f"t{j}",
                    "item": {"type": "UserMessage", "id": f"u{j}", "content": content},
                },
            )
        else:
            emit(
                ts,
                "event_msg",
                {
                    "type": "user_message",
                    "message": turn.text,
                    "images": turn.images,
                    "local_images": [],
                    "kind": "plain",
                },
            )
        emit(
            ts + timedelta(seconds=1),
            "response_item",
            {
                "type": "function_call_output",
                "call_id": "c",
                "output": "x" * thread.tool_output_bytes,
            },
        )
        emit(ts + timedelta(seconds=2), "event_msg", {"type": "agent_message", "message": "done"})
    for when, name in thread.renames:
        emit(
            when,
            "event_msg",
            {"type": "thread_name_updated", "thread_id": thread.thread_id, "thread_name": name},
        )
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
