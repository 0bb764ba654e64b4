"""The running daemon follows appends: new turns reach history.jsonl, new rollouts reach
session_index.jsonl, half-written lines wait, its own writes wake nothing, renames stay."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from codex_indexd.daemon.home_worker import HomeWorker
from codex_indexd.index.plan import Plan
from tests.integration.daemon.home_files import (
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
)
from tests.support.daemons import InProc, Spawn, log_records
from tests.support.homes import (
    BASE_TIME,
    build_home,
    iso,
    new_thread,
    rollout_path,
    user_turn,
    write_rollout,
)
from tests.support.waiting import wait_for


def test_appended_turns_and_new_rollouts_show_up_within_two_seconds(
    tmp_path: Path, spawn: Spawn
) -> None:
    # `codex exec` threads: no TUI writes their history lines, so none is held for it.
    legacy, paginated = new_thread(0, source="exec"), new_thread(1, paginated=True, source="exec")
    threads = [legacy, paginated, new_thread(2, source="exec")]
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
    append(
        rollout_path(home, paginated),
        user_turn(paginated, "paginated follow-up", later + timedelta(seconds=1)),
    )
    started = time.monotonic()
    wait_for(
        lambda: {"legacy follow-up", "paginated follow-up"} <= set(history_texts(home)),
        2.0,
        "both appended turns in history.jsonl",
    )
    assert time.monotonic() - started < 2.0

    fresh = new_thread(7, turns=1, source="exec")
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
def test_half_written_line_is_not_consumed(tmp_path: Path, spawn: Spawn, paginated: bool) -> None:
    thread = new_thread(0, paginated=paginated)
    home = build_home(tmp_path / "h", [thread])
    daemon = spawn(home)
    daemon.wait_ready()
    text = "a turn written in two halves: ünïcödé and a long tail " + "x" * 200
    full = user_turn(thread, text, BASE_TIME + timedelta(hours=1)).encode("utf-8")
    cut = full.index(b"halves") + 3  # inside the text, so the halves are not JSON
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


def test_own_writes_do_not_feed_back(tmp_path: Path, spawn: Spawn) -> None:
    threads = [new_thread(i, turns=2) for i in range(5)]
    home = build_home(tmp_path / "h", threads)
    daemon = spawn(home)
    daemon.wait_ready()
    # One more repair while running, so that the daemon has just written both files.
    append(
        rollout_path(home, threads[0]),
        user_turn(threads[0], "one more", BASE_TIME + timedelta(days=1)),
    )
    wait_for(lambda: "one more" in history_texts(home), 3, "the appended turn")
    wait_for(lambda: status(home).get("repairs") == 2, 2, "the second repair in the status")
    ident = status_ident(home)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:  # an observation window, not a synchronisation
        assert status(home).get("repairs") == 2
        assert status_ident(home) == ident, "the daemon reconciled again with no outside change"
        time.sleep(0.05)
    assert daemon.alive()


def plans_after(monkeypatch) -> list[tuple[float, Plan]]:
    """Record every reconcile's start time and plan (appended once it returned)."""
    done: list[tuple[float, Plan]] = []
    original = HomeWorker.reconcile

    def reconcile(self, *, reason: str, heal: bool = True) -> Plan:
        started = time.monotonic()
        plan = original(self, reason=reason, heal=heal)
        done.append((started, plan))
        return plan

    monkeypatch.setattr(HomeWorker, "reconcile", reconcile)
    return done


def next_plan(done: list[tuple[float, Plan]], since: float, what: str) -> Plan:
    """The plan of the first reconcile that started after `since`."""
    return wait_for(
        lambda: next((plan for started, plan in list(done) if started > since), None), 3, what
    )


def test_an_old_turn_is_appended_and_not_written_again(
    tmp_path: Path, inproc: InProc, monkeypatch
) -> None:
    """A turn older than history's tail is appended (running TUIs address lines by offset:
    nothing Codex wrote moves). Later reconciles must not see it as missing again."""
    threads = [new_thread(i, turns=2) for i in range(4)]
    home = build_home(tmp_path / "h", threads)
    done = plans_after(monkeypatch)
    run = inproc(home)
    # Thread 0's turns are the oldest in history; this one sorts before thread 3's lines.
    old = BASE_TIME + timedelta(seconds=30)
    since = time.monotonic()
    append(rollout_path(home, threads[0]), user_turn(threads[0], "late but old", old))
    before = (home / "history.jsonl").read_bytes()
    # (A TUI-like thread's turn is held for its own line for a moment, then added.)
    wait_for(lambda: "late but old" in history_texts(home), 5, "the reconcile that adds the turn")
    assert history_texts(home)[-1] == "late but old", "expected an append"
    assert (home / "history.jsonl").read_bytes().startswith(before)

    # Codex appends a line of its own: the daemon looks (a reconcile) but has nothing to do.
    since = time.monotonic()
    codex_history_append(home, threads[3].thread_id, "typed in codex", int(time.time()))
    plan = next_plan(done, since, "a reconcile after Codex's append")
    assert plan.drift.empty, "history drift from a stale cached copy"
    texts = history_texts(home)
    assert texts.count("late but old") == 1 and texts.count("typed in codex") == 1
    assert run.worker.current_drift == {}


def test_in_place_insert_by_another_writer_is_reread(
    tmp_path: Path, inproc: InProc, monkeypatch
) -> None:
    """Another writer (a manual `codex-indexd repair`) inserts a turn in the middle of history,
    keeping the inode. When the rollout later gets that turn, the daemon must see the line is
    already there instead of trusting a cached copy that took the shifted tail for an append."""
    threads = [new_thread(i, turns=2) for i in range(4)]
    home = build_home(tmp_path / "h", threads)
    done = plans_after(monkeypatch)
    inproc(home)
    history = home / "history.jsonl"
    # Codex appends a line: the daemon reads history (and caches what it parsed).
    since = time.monotonic()
    codex_history_append(home, threads[3].thread_id, "typed in codex", int(time.time()))
    next_plan(done, since, "a reconcile after Codex's append")
    old = BASE_TIME + timedelta(seconds=30)
    lines = raw_lines(history)
    inserted = json.dumps(
        {
            "session_id": threads[0].thread_id,
            "ts": int(old.timestamp()),
            "text": "inserted elsewhere",
        },
        separators=(",", ":"),
    ).encode()
    since = time.monotonic()
    with open(history, "r+b") as handle:  # same inode, grows in the middle
        handle.write(b"".join(x + b"\n" for x in [*lines[:2], inserted, *lines[2:]]))
    next_plan(done, since, "a reconcile after the external write")
    since = time.monotonic()
    append(rollout_path(home, threads[0]), user_turn(threads[0], "inserted elsewhere", old))
    plan = next_plan(done, since, "a reconcile after the rollout append")
    assert plan.drift.empty, "the daemon saw the inserted line as missing"
    assert history_texts(home).count("inserted elsewhere") == 1


@pytest.mark.parametrize("db_name", [None, "Old name from the DB"])
def test_codex_rename_while_running_is_never_overridden(
    tmp_path: Path, spawn: Spawn, db_name: str | None
) -> None:
    threads = [new_thread(i, turns=2) for i in range(3)]
    target = threads[1]
    home = build_home(
        tmp_path / "h", threads, names={target.thread_id: db_name} if db_name else None
    )
    daemon = spawn(home)
    daemon.wait_ready()
    wait_for(lambda: target.thread_id in index_ids(home), 2, "the initial index")
    renamed_at = datetime.now(tz=UTC)
    codex_rename(home, target.thread_id, "Renamed in Codex", iso(renamed_at))

    # Codex also records a turn (rollout + DB row touched a little before the rename time).
    append(
        rollout_path(home, target),
        user_turn(target, "after the rename", BASE_TIME + timedelta(days=2)),
    )
    with sqlite3.connect(home / "state_5.sqlite") as conn:
        conn.execute(
            "UPDATE threads SET updated_at_ms = ? WHERE id = ?",
            (int((renamed_at - timedelta(seconds=5)).timestamp() * 1000), target.thread_id),
        )
    wait_for(lambda: "after the rename" in history_texts(home), 3, "the turn")
    # One more unrelated change handled after that, then look at the index.
    other = new_thread(9, turns=1)
    write_rollout(home, other)
    wait_for(lambda: other.thread_id in index_ids(home), 3, "the unrelated rollout")

    assert latest_names(home)[target.thread_id] == "Renamed in Codex"
    lines = jsonl(home / "session_index.jsonl")
    rename_at = max(i for i, e in enumerate(lines) if e["thread_name"] == "Renamed in Codex")
    assert all(e["id"] != target.thread_id for e in lines[rename_at + 1 :]), (
        "the daemon wrote over the rename"
    )
    assert os.path.exists(home / "session_index.jsonl.lock")


def test_many_legitimate_repairs_are_not_taken_for_a_fight(
    tmp_path: Path, spawn: Spawn, log_dir: Path
) -> None:
    """New sessions keep coming (one repair each): that is normal work, not a rewrite loop."""
    home = build_home(tmp_path / "h", [new_thread(0)])
    daemon = spawn(home)
    daemon.wait_ready()
    for i in range(1, 16):
        fresh = new_thread(i, turns=1)
        write_rollout(home, fresh)
        wait_for(lambda: fresh.thread_id in index_ids(home), 3, f"new rollout {i}")  # noqa: B023
    wait_for(lambda: status(home).get("repairs", 0) >= 16, 3, "16 repairs in the status")
    assert status(home)["paused_files"] == []
    assert not log_records(log_dir, "rewrite_loop_suspected")


def test_a_writer_that_keeps_removing_our_line_pauses_that_file(
    tmp_path: Path, spawn: Spawn, log_dir: Path
) -> None:
    threads = [new_thread(i, turns=1) for i in range(3)]
    home = build_home(tmp_path / "h", threads)
    daemon = spawn(home)
    daemon.wait_ready()
    victim = threads[1].thread_id
    index = home / "session_index.jsonl"

    def strip() -> None:  # another tool rewrites the index without the victim's line
        kept = [raw for raw in raw_lines(index) if victim.encode() not in raw]
        temp = index.with_name("other-tool.tmp")
        temp.write_bytes(b"".join(raw + b"\n" for raw in kept))
        os.replace(temp, index)

    for _ in range(6):
        strip()
        # Put back (the 2nd, 3rd, 4th time), or refused once the 4th write tripped the guard.
        wait_for(
            lambda: victim in index_ids(home) or log_records(log_dir, "rewrite_loop_suspected"),
            3,
            "the daemon to put the line back",
        )
        if log_records(log_dir, "rewrite_loop_suspected"):
            break
    (event,) = log_records(log_dir, "rewrite_loop_suspected")
    assert event["file"] == "session_index.jsonl"
    wait_for(
        lambda: "session_index.jsonl" in status(home).get("paused_files", []),
        2,
        "the pause in the status",
    )
    ident = status_ident(home)
    strip()
    wait_for(lambda: status_ident(home) != ident, 3, "a reconcile after the last removal")
    assert victim not in index_ids(home), "the daemon kept fighting"
    assert daemon.alive()
