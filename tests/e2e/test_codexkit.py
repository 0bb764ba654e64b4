"""Prove the e2e harness drives the real Codex CLI (each pinned version) offline.

Each test uses a fresh ``CODEX_HOME`` and the mock Responses server from conftest.
"""

from __future__ import annotations

import json
import sqlite3
import stat
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.e2e.codexkit import (
    AppServer,
    MockResponsesServer,
    TuiSession,
    codex_archive,
    codex_exec,
    codex_unarchive,
    find_rollout,
    make_codex_home,
    managed_daemon_pids,
    read_history,
    read_rollout,
    stop_managed_daemon,
)

SCHEMA_SNAPSHOT = Path(__file__).with_name("threads_schema_0169.sql")
INDEX_KEYS = ["id", "thread_name", "updated_at"]


@contextmanager
def state_db(home: Path) -> Iterator[sqlite3.Connection]:
    """Open ``state_5.sqlite`` strictly read-only."""
    uri = f"file:{home / 'state_5.sqlite'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA query_only = 1")
        yield conn


def thread_row(home: Path, thread_id: str) -> dict[str, Any]:
    """The ``threads`` row of ``thread_id`` as a dict."""
    with state_db(home) as conn:
        row = conn.execute("SELECT * FROM threads WHERE id = ?", (thread_id,)).fetchone()
    assert row is not None, f"no DB row for {thread_id}"
    return dict(row)


def rollout_of(home: Path, thread_id: str) -> Path:
    """The rollout path of ``thread_id`` (must exist)."""
    path = find_rollout(home, thread_id)
    assert path is not None, f"no rollout for {thread_id}"
    return path


def user_turns(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Paginated user-turn records: ``event_msg`` ``item_completed`` of a ``UserMessage``."""
    return [
        r
        for r in records
        if r.get("type") == "event_msg"
        and r["payload"].get("type") == "item_completed"
        and r["payload"]["item"].get("type") == "UserMessage"
    ]


def parse_ts(value: str) -> float:
    """Rollout RFC 3339 timestamp (``...Z``) to Unix seconds."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def test_exec_writes_paginated_rollout_and_db_row(
    codex_home: Path, mock_server: MockResponsesServer
) -> None:
    prompt = "First prompt about apples"
    thread_id = codex_exec(codex_home, prompt)

    rollout = rollout_of(codex_home, thread_id)
    records = read_rollout(rollout)
    meta = records[0]
    # Directories and file name use local time; timestamps inside are UTC.
    local = datetime.fromtimestamp(parse_ts(meta["payload"]["timestamp"]))
    named = datetime.strptime(rollout.name[len("rollout-") :][:19], "%Y-%m-%dT%H-%M-%S")
    assert abs((named - local).total_seconds()) <= 2
    assert rollout.parent == codex_home / "sessions" / named.strftime("%Y/%m/%d")
    assert rollout.read_bytes().endswith(b"\n")
    assert [r["ordinal"] for r in records] == list(range(len(records)))
    assert meta["type"] == "session_meta"
    assert meta["payload"]["id"] == thread_id
    assert meta["payload"]["history_mode"] == "paginated"
    assert meta["payload"]["source"] == "exec"
    assert meta["payload"]["originator"] == "codex_exec"
    turns = user_turns(records)
    assert [t["payload"]["item"]["content"][0]["text"] for t in turns] == [prompt]
    kinds = {r["payload"].get("type") for r in records if r["type"] == "event_msg"}
    assert "user_message" not in kinds and "task_complete" in kinds

    row = thread_row(codex_home, thread_id)
    assert row["rollout_path"] == str(rollout)
    assert (row["source"], row["history_mode"], row["model_provider"]) == (
        "exec",
        "paginated",
        "mock",
    )
    assert row["title"] == row["preview"] == row["first_user_message"] == prompt
    assert row["name"] is None and row["archived"] == 0
    assert not (codex_home / "session_index.jsonl").exists()
    assert not (codex_home / "history.jsonl").exists()
    assert len(mock_server.responses_requests()) == 1


def test_exec_resume_appends_to_same_rollout(codex_home: Path) -> None:
    thread_id = codex_exec(codex_home, "Start a thread")
    assert codex_exec(codex_home, "Continue it", resume=thread_id) == thread_id
    records = read_rollout(rollout_of(codex_home, thread_id))
    texts = [t["payload"]["item"]["content"][0]["text"] for t in user_turns(records)]
    assert texts == ["Start a thread", "Continue it"]
    assert thread_row(codex_home, thread_id)["title"] == "Start a thread"


def test_threads_schema_matches_snapshot(codex_home: Path) -> None:
    codex_exec(codex_home, "Create the database")
    with closing(sqlite3.connect(":memory:")) as snap:
        snap.executescript(SCHEMA_SNAPSHOT.read_text())
        expected = [tuple(r) for r in snap.execute("PRAGMA table_info(threads)")]
    with state_db(codex_home) as conn:
        actual = [tuple(r) for r in conn.execute("PRAGMA table_info(threads)")]
    assert actual == expected


def test_app_server_name_set_appends_index_and_lists_name(codex_home: Path) -> None:
    thread_id = codex_exec(codex_home, "Thread to be named")
    before = thread_row(codex_home, thread_id)

    with AppServer(codex_home) as server:
        default_ids = [t["id"] for t in server.thread_list()["data"]]
        server.thread_name_set(thread_id, "Apple thread")
        note = server.wait_for_notification(
            "thread/name/updated", lambda p: p.get("threadId") == thread_id
        )
        listed = server.thread_list_all(sourceKinds=["exec"])
        read = server.thread_read(thread_id)

    assert thread_id not in default_ids  # exec threads are not interactive sources
    assert note["params"]["threadName"] == "Apple thread"
    assert {t["id"]: t.get("name") for t in listed}[thread_id] == "Apple thread"
    assert read["name"] == "Apple thread"

    lines = (codex_home / "session_index.jsonl").read_text().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert list(entry) == INDEX_KEYS
    assert (entry["id"], entry["thread_name"]) == (thread_id, "Apple thread")
    assert (codex_home / "session_index.jsonl.lock").exists()

    after = thread_row(codex_home, thread_id)
    assert after["name"] == "Apple thread"
    assert after["title"] == before["title"]
    # 0.169.0 bumps updated_at_ms by exactly 1 ms (not to the wall clock).
    assert after["updated_at_ms"] == before["updated_at_ms"] + 1
    assert after["updated_at"] == before["updated_at"]
    assert after["recency_at_ms"] == before["recency_at_ms"]


def test_archive_and_unarchive_move_the_rollout(codex_home: Path) -> None:
    thread_id = codex_exec(codex_home, "Thread to archive")
    active = rollout_of(codex_home, thread_id)
    archived = codex_home / "archived_sessions" / active.name

    created = thread_row(codex_home, thread_id)

    codex_archive(codex_home, thread_id)
    assert archived.is_file() and not active.exists()
    row = thread_row(codex_home, thread_id)
    assert (row["archived"], row["rollout_path"]) == (1, str(archived))
    assert row["archived_at"] is not None
    assert row["updated_at_ms"] == created["updated_at_ms"] + 1  # observed in 0.169.0

    before_unarchive_ms = int(time.time() * 1000)
    codex_unarchive(codex_home, thread_id)
    assert active.is_file() and not archived.exists()
    row = thread_row(codex_home, thread_id)
    assert (row["archived"], row["rollout_path"], row["archived_at"]) == (0, str(active), None)
    assert row["updated_at_ms"] >= before_unarchive_ms  # unarchive stamps "now"
    assert active.stat().st_mtime_ns // 1_000_000 >= before_unarchive_ms - 1
    assert not (codex_home / "session_index.jsonl").exists()


def test_tui_writes_history_line_with_mode_0600(
    codex_home: Path, mock_server: MockResponsesServer, tmp_path: Path, tmux_bin: Path
) -> None:
    prompt = "Tell me about cherries"
    workdir = tmp_path / "work"
    workdir.mkdir()
    with TuiSession(codex_home, cwd=workdir, tmux_bin=tmux_bin) as tui:
        entry = tui.submit(prompt)
        assert managed_daemon_pids(codex_home), "TUI should start a managed daemon"
        tui.quit()
        assert managed_daemon_pids(codex_home), "managed daemon should survive the TUI"
    assert not managed_daemon_pids(codex_home), "TuiSession.close must stop the daemon"

    history = codex_home / "history.jsonl"
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    assert read_history(codex_home) == [entry]
    assert list(entry) == ["session_id", "ts", "text"] and entry["text"] == prompt
    assert history.read_bytes().endswith(b"\n")

    thread_id = entry["session_id"]
    records = read_rollout(rollout_of(codex_home, thread_id))
    meta = records[0]["payload"]
    assert (meta["source"], meta["originator"]) == ("vscode", "codex-tui")
    assert meta["cwd"] == str(workdir)
    turn = user_turns(records)[0]
    assert turn["payload"]["item"]["content"][0]["text"] == prompt
    delta = entry["ts"] - parse_ts(turn["timestamp"])
    assert -2.0 <= delta <= 2.0, f"history ts vs rollout user turn: {delta:+.3f}s"
    assert abs(entry["ts"] - time.time()) < 120
    assert len(mock_server.responses_requests()) >= 1


def test_tui_history_persistence_none_writes_no_history(
    tmp_path: Path, mock_server: MockResponsesServer, codex_bin: Path, tmux_bin: Path
) -> None:
    home = make_codex_home(tmp_path / "home-none", mock_server, history_persistence="none")
    try:
        with TuiSession(home, codex_bin=codex_bin, tmux_bin=tmux_bin) as tui:
            tui.send_text("No history please")
            tui.wait_for_screen(lambda s: "No history please" in s, 15, "prompt typed")
            tui.send_key("Enter")
            tui.wait_for_screen(lambda s: mock_server.reply in s, 20, "mock reply shown")
        assert not (home / "history.jsonl").exists()
    finally:
        stop_managed_daemon(home, codex_bin=codex_bin)
