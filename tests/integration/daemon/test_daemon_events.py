"""The running daemon follows appends: new turns reach history.jsonl, new rollouts reach
session_index.jsonl, half-written lines wait, its own writes wake nothing, renames stay."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from daemon_harness import (
    append,
    codex_history_append,
    codex_rename,
    contains_in_order,
    history_texts,
    index_ids,
    jsonl,
    latest_names,
    raw_lines,
    status,
    status_ident,
    user_turn,
    wait_for,
)

from tests.support.homes import BASE_TIME, build_home, iso, new_thread, rollout_name, write_rollout


def rollout_path(home: Path, thread) -> Path:  # type: ignore[no-untyped-def]
    return home / "sessions" / thread.start.strftime("%Y/%m/%d") / rollout_name(thread)


def test_appended_turns_and_new_rollouts_show_up_within_two_seconds(tmp_path: Path, spawn) -> None:  # type: ignore[no-untyped-def]
    legacy, paginated = new_thread(0), new_thread(1, paginated=True)
    threads = [legacy, paginated, new_thread(2)]
    home = build_home(tmp_path / "h", threads)
    daemon = spawn(home, debounce_ms=300)  # the default quiet period
    daemon.wait_ready()
    history = home / "history.jsonl"
    wait_for(lambda: len(history_texts(home)) == 6, 2, "the initial repair")
    before_history = raw_lines(history)
    before_index = raw_lines(home / "session_index.jsonl")
    inode = history.stat().st_ino

    later = BASE_TIME + timedelta(days=1)
    append(rollout_path(home, legacy), user_turn(legacy, "legacy follow-up", later))
    append(rollout_path(home, paginated), user_turn(paginated, "paginated follow-up", later + timedelta(seconds=1)))
    started = time.monotonic()
    wait_for(lambda: {"legacy follow-up", "paginated follow-up"} <= set(history_texts(home)), 2.0,
             "both appended turns in history.jsonl")
    assert time.monotonic() - started < 2.0

    fresh = new_thread(7, turns=1)
    write_rollout(home, fresh)
    started = time.monotonic()
    wait_for(lambda: fresh.thread_id in index_ids(home), 2.0, "the new rollout's index line")
    assert time.monotonic() - started < 2.0
    wait_for(lambda: fresh.turns[0].text in history_texts(home), 2.0, "the new rollout's turn")

    after_history = raw_lines(history)
    assert contains_in_order(after_history, before_history), "a history line was lost or reordered"
    assert raw_lines(home / "session_index.jsonl")[: len(before_index)] == before_index
    st = history.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_ino == inode
    texts = history_texts(home)
    assert texts.count("legacy follow-up") == 1 and texts.count("paginated follow-up") == 1
    assert daemon.alive()


@pytest.mark.parametrize("paginated", [False, True], ids=["legacy", "paginated"])
def test_half_written_line_is_not_consumed(tmp_path: Path, spawn, paginated: bool) -> None:  # type: ignore[no-untyped-def]
    thread = new_thread(0, paginated=paginated)
    home = build_home(tmp_path / "h", [thread])
    daemon = spawn(home)
    daemon.wait_ready()
    text = "a turn written in two halves: ünïcödé and a long tail " + "x" * 200
    full = user_turn(thread, text, BASE_TIME + timedelta(hours=1)).encode("utf-8")
    cut = full.index("halves".encode()) + 3  # inside the text, so the halves are not JSON
    path = rollout_path(home, thread)
    append(path, full[:cut])

    # A later event that the daemon handles proves the half line's event was handled too.
    marker = new_thread(5, turns=1)
    write_rollout(home, marker)
    wait_for(lambda: marker.thread_id in index_ids(home), 3, "the marker rollout")
    assert not any("halves" in t for t in history_texts(home))

    append(path, full[cut:])
    wait_for(lambda: text in history_texts(home), 3, "the completed turn")
    marker2 = new_thread(6, turns=1)
    write_rollout(home, marker2)
    wait_for(lambda: marker2.thread_id in index_ids(home), 3, "the second marker rollout")
    texts = history_texts(home)
    assert texts.count(text) == 1
    assert not any("halves" in t and t != text for t in texts)


def test_own_writes_do_not_feed_back(tmp_path: Path, spawn) -> None:  # type: ignore[no-untyped-def]
    threads = [new_thread(i, turns=2) for i in range(5)]
    home = build_home(tmp_path / "h", threads)
    daemon = spawn(home)
    daemon.wait_ready()
    # One more repair while running, so that the daemon has just written both files.
    append(rollout_path(home, threads[0]), user_turn(threads[0], "one more", BASE_TIME + timedelta(days=1)))
    wait_for(lambda: "one more" in history_texts(home), 3, "the appended turn")
    wait_for(lambda: status(home).get("repairs") == 2, 2, "the second repair in the status")
    ident = status_ident(home)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:  # an observation window, not a synchronisation
        assert status(home).get("repairs") == 2
        assert status_ident(home) == ident, "the daemon reconciled again with no outside change"
        time.sleep(0.05)
    assert daemon.alive()


def settled(run) -> int:  # type: ignore[no-untyped-def]
    """Wait until no batch is pending; return the daemon's reconcile count."""
    wait_for(lambda: run.daemon.debouncer.due_in(time.monotonic()) is None, 3, "an idle debouncer")
    return run.daemon.reconciles


def test_no_repair_loop_after_an_in_place_history_insert(tmp_path: Path, inproc) -> None:  # type: ignore[no-untyped-def]
    """A turn older than history's tail is inserted in place (same inode, file grows in the
    middle). Later reconciles must not see it as missing again (and rewrite for nothing)."""
    threads = [new_thread(i, turns=2) for i in range(4)]
    home = build_home(tmp_path / "h", threads)
    run = inproc(home)
    reconciles = settled(run)
    # Thread 0's turns are the oldest in history; this one sorts before thread 3's lines.
    old = BASE_TIME + timedelta(seconds=30)
    append(rollout_path(home, threads[0]), user_turn(threads[0], "late but old", old))
    wait_for(lambda: "late but old" in history_texts(home), 3, "the inserted turn")
    assert history_texts(home)[-1] != "late but old", "expected an insert, not an append"
    reconciles = settled(run)

    # Codex appends a line of its own: the daemon looks (a reconcile) but has nothing to do.
    codex_history_append(home, threads[3].thread_id, "typed in codex", int(time.time()))
    wait_for(lambda: run.daemon.reconciles > reconciles, 3, "a reconcile after Codex's append")
    assert run.worker.last_plan.drift.empty, "history drift from a stale cached copy"
    texts = history_texts(home)
    assert texts.count("late but old") == 1 and texts.count("typed in codex") == 1


def test_in_place_insert_by_another_writer_is_reread(tmp_path: Path, inproc) -> None:  # type: ignore[no-untyped-def]
    """Another writer (a manual `codex-indexd repair`) inserts a turn in the middle of history,
    keeping the inode. When the rollout later gets that turn, the daemon must see the line is
    already there instead of trusting a cached copy that took the shifted tail for an append."""
    threads = [new_thread(i, turns=2) for i in range(4)]
    home = build_home(tmp_path / "h", threads)
    run = inproc(home)
    history = home / "history.jsonl"
    reconciles = settled(run)
    # Codex appends a line: the daemon reads history (and caches what it parsed).
    codex_history_append(home, threads[3].thread_id, "typed in codex", int(time.time()))
    wait_for(lambda: run.daemon.reconciles > reconciles, 3, "a reconcile after Codex's append")
    reconciles = settled(run)
    old = BASE_TIME + timedelta(seconds=30)
    lines = raw_lines(history)
    inserted = ('{"session_id":"%s","ts":%d,"text":"inserted elsewhere"}'
                % (threads[0].thread_id, int(old.timestamp()))).encode()
    with open(history, "r+b") as handle:  # same inode, grows in the middle
        handle.write(b"".join(x + b"\n" for x in [*lines[:2], inserted, *lines[2:]]))
    wait_for(lambda: run.daemon.reconciles > reconciles, 3, "a reconcile after the external write")
    reconciles = settled(run)
    append(rollout_path(home, threads[0]), user_turn(threads[0], "inserted elsewhere", old))
    wait_for(lambda: run.daemon.reconciles > reconciles, 3, "a reconcile after the rollout append")
    assert run.worker.last_plan.drift.empty, "the daemon saw the inserted line as missing"
    assert history_texts(home).count("inserted elsewhere") == 1


@pytest.mark.parametrize("db_name", [None, "Old name from the DB"])
def test_codex_rename_while_running_is_never_overridden(tmp_path: Path, spawn, db_name: str | None) -> None:  # type: ignore[no-untyped-def]
    threads = [new_thread(i, turns=2) for i in range(3)]
    target = threads[1]
    home = build_home(tmp_path / "h", threads, names={target.thread_id: db_name} if db_name else None)
    daemon = spawn(home)
    daemon.wait_ready()
    wait_for(lambda: target.thread_id in index_ids(home), 2, "the initial index")
    renamed_at = datetime.now(tz=UTC)
    codex_rename(home, target.thread_id, "Renamed in Codex", iso(renamed_at))

    # Codex also records a turn (rollout + DB row touched a little before the rename time).
    append(rollout_path(home, target), user_turn(target, "after the rename", BASE_TIME + timedelta(days=2)))
    with sqlite3.connect(home / "state_5.sqlite") as conn:
        conn.execute("UPDATE threads SET updated_at_ms = ? WHERE id = ?",
                     (int((renamed_at - timedelta(seconds=5)).timestamp() * 1000), target.thread_id))
    wait_for(lambda: "after the rename" in history_texts(home), 3, "the turn")
    # One more unrelated change handled after that, then look at the index.
    other = new_thread(9, turns=1)
    write_rollout(home, other)
    wait_for(lambda: other.thread_id in index_ids(home), 3, "the unrelated rollout")

    assert latest_names(home)[target.thread_id] == "Renamed in Codex"
    lines = jsonl(home / "session_index.jsonl")
    rename_at = max(i for i, e in enumerate(lines) if e["thread_name"] == "Renamed in Codex")
    assert all(e["id"] != target.thread_id for e in lines[rename_at + 1 :]), "the daemon wrote over the rename"
    assert os.path.exists(home / "session_index.jsonl.lock")
