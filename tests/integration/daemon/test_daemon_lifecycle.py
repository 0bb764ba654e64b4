"""Process life: single instance, signals, SIGHUP reload, sd_notify, checkpoints, and
consistency after a kill in the middle of a burst."""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from codex_indexd.config import settings as settings_mod
from codex_indexd.daemon.loop import Daemon
from codex_indexd.store.files import OurFiles
from tests.integration.daemon.home_files import (
    append,
    codex_history_append,
    contains_in_order,
    history_texts,
    index_ids,
    jsonl,
    raw_lines,
    status,
)
from tests.support.daemons import Spawn, log_records
from tests.support.homes import (
    BASE_TIME,
    Thread,
    build_home,
    new_thread,
    rollout_lines,
    rollout_path,
    user_turn,
    write_rollout,
)
from tests.support.waiting import wait_for

# -- single instance, signals, reload -----------------------------------------------------------


def test_second_instance_exits_75_with_a_clear_message(tmp_path: Path, spawn: Spawn) -> None:
    home = build_home(tmp_path / "h", [new_thread(0)])
    first = spawn(home)
    first.wait_ready()
    second = spawn(home, notify=False)
    assert second.proc.wait(timeout=10) == 75
    message = second.stderr
    assert "already running" in message and f"pid {first.pid}" in message
    assert first.alive()


def test_sigterm_exits_0_within_two_seconds(tmp_path: Path, spawn: Spawn, log_dir: Path) -> None:
    home = build_home(tmp_path / "h", [new_thread(0)])
    daemon = spawn(home)
    daemon.wait_ready()
    notify = daemon.notify
    started = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=5) == 0
    assert time.monotonic() - started < 2.0
    assert notify is not None and notify.has("STOPPING=1")
    assert status(home)["running"] is False
    # Its last line gives its peak resident size, the saves at the stop included: a running
    # interpreter with our modules is well over 10 MiB, and under a gigabyte here.
    (stopped,) = log_records(log_dir, "daemon.stopped")
    assert 10 < stopped["peak_rss_mib"] < 1024
    daemon.close()


def test_sighup_with_a_bad_config_keeps_the_last_good_one(
    tmp_path: Path,
    spawn: Spawn,
    private_dirs: Path,
    log_dir: Path,
) -> None:
    config = Path(os.environ["CODEX_INDEXD_CONFIG"])
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('[policy]\nhistory_sources = ["cli"]\n')
    cli, exe = new_thread(0), new_thread(1, source="exec")
    home = build_home(tmp_path / "h", [cli, exe])
    daemon = spawn(home)
    daemon.wait_ready()
    assert exe.turns[0].text not in history_texts(home)  # the good config is in force

    config.write_text("[policy\nhistory_sources = 'all'\n")  # not TOML
    daemon.proc.send_signal(signal.SIGHUP)
    failed = wait_for(
        lambda: log_records(log_dir, "config.reload_failed"), 3, "config.reload_failed"
    )
    assert "config.toml" in failed[0]["error"]
    assert daemon.alive()
    # Still running, still with history_sources = ["cli"]: the exec turn (written first) stays out.
    append(rollout_path(home, exe), user_turn(exe, "exec turn", BASE_TIME + timedelta(days=1)))
    append(
        rollout_path(home, cli),
        user_turn(cli, "cli turn", BASE_TIME + timedelta(days=1, seconds=1)),
    )
    wait_for(lambda: "cli turn" in history_texts(home), 3, "the cli turn")
    assert "exec turn" not in history_texts(home)

    config.write_text('[policy]\nhistory_sources = "all"\n')  # fixed: the reload takes it
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: log_records(log_dir, "config.reloaded"), 3, "config.reloaded")
    wait_for(lambda: "exec turn" in history_texts(home), 3, "the exec turn after a good reload")
    assert daemon.terminate() == 0


# -- sd_notify --------------------------------------------------------------------------------


def test_sd_notify_ready_after_the_first_repair_status_and_watchdog(
    tmp_path: Path, spawn: Spawn
) -> None:
    threads = [new_thread(i) for i in range(5)]
    home = build_home(tmp_path / "h", threads)
    assert not (home / "session_index.jsonl").exists()
    daemon = spawn(home, env={"WATCHDOG_USEC": "300000"})
    notify = daemon.notify
    assert notify is not None
    wait_for(lambda: notify.has("READY=1"), 15, "READY=1")
    # READY=1 comes after the first reconcile: the index is already repaired.
    assert index_ids(home) == {t.thread_id for t in threads}
    assert len(history_texts(home)) == 10
    ready_message = next(msg for _, msg in notify.messages if "READY=1" in msg.split("\n"))
    status_line = next(f for f in ready_message.split("\n") if f.startswith("STATUS="))
    assert "5 sessions" in status_line
    ready_at = next(t for t, msg in notify.messages if "READY=1" in msg.split("\n"))

    def watchdogs() -> int:
        return sum(
            1 for t, msg in notify.messages if t >= ready_at and "WATCHDOG=1" in msg.split("\n")
        )

    wait_for(lambda: watchdogs() >= 3, 2, "WATCHDOG=1 pings (every WATCHDOG_USEC/3)")
    assert any(f.startswith("STATUS=") for f in notify.fields())
    assert daemon.terminate() == 0


def test_status_updates_but_no_watchdog_pings_without_watchdog_usec(
    tmp_path: Path, spawn: Spawn
) -> None:
    home = build_home(tmp_path / "h", [new_thread(0)])
    daemon = spawn(home)
    daemon.wait_ready()
    notify = daemon.notify
    assert notify is not None
    assert "STATUS=watching 1 sessions in 1 home(s)" in notify.fields()[1]
    write_rollout(home, new_thread(1, turns=1))
    # The loop iteration that handled the new rollout sends the changed STATUS= line ...
    wait_for(
        lambda: any(f.startswith("STATUS=watching 2 sessions") for f in notify.fields()),
        3,
        "the updated STATUS= line",
    )
    # ... and, with no WATCHDOG_USEC, never a WATCHDOG=1; READY=1 exactly once.
    assert "WATCHDOG=1" not in notify.fields()
    assert notify.fields().count("READY=1") == 1
    assert daemon.terminate() == 0


# -- checkpoints ------------------------------------------------------------------------------


def loaded(log_dir: Path) -> dict[str, Any]:
    return log_records(log_dir, "home.loaded")[-1]


def test_restart_uses_the_checkpoint_and_rereads_nothing(
    tmp_path: Path, spawn: Spawn, log_dir: Path
) -> None:
    threads = [new_thread(i, turns=3) for i in range(40)]
    home = build_home(tmp_path / "h", threads)
    first = spawn(home)
    first.wait_ready()
    assert loaded(log_dir)["from_checkpoint"] is False
    assert loaded(log_dir)["bytes_read"] > 40 * 5000
    assert first.terminate() == 0

    second = spawn(home)
    second.wait_ready()
    record = loaded(log_dir)
    assert record["from_checkpoint"] is True and record["bytes_read"] == 0
    assert record["rollouts"] == 40
    assert second.terminate() == 0

    # A turn appended while the daemon was down: only the new bytes are read.
    extra = user_turn(threads[3], "while you were away", BASE_TIME + timedelta(days=1))
    append(rollout_path(home, threads[3]), extra)
    third = spawn(home)
    third.wait_ready()
    record = loaded(log_dir)
    assert record["from_checkpoint"] is True and record["bytes_read"] == len(extra.encode())
    assert "while you were away" in history_texts(home)
    assert third.terminate() == 0


def test_the_last_repair_is_remembered_across_a_restart(tmp_path: Path, spawn: Spawn) -> None:
    home = build_home(tmp_path / "h", [new_thread(i) for i in range(3)])
    first = spawn(home)
    first.wait_ready()
    repaired = status(home)["last_repair"]
    assert repaired is not None and repaired["history_lines_added"] == 6
    assert first.terminate() == 0

    second = spawn(home)  # nothing left to repair
    second.wait_ready()
    assert status(home)["last_repair"] == repaired
    assert second.terminate() == 0


def corrupt(path: Path, how: str) -> None:
    """Damage a checkpoint (JSON lines: a header, then chunks of rollouts, each field a column)
    in one way."""
    header, *rows = [json.loads(raw) for raw in path.read_bytes().splitlines()]

    def write() -> None:
        path.write_text("".join(json.dumps(item) + "\n" for item in [header, *rows]))

    if how == "garbage":
        path.write_bytes(b"\x00\xff not json at all")
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "rows_missing":  # cut at a line boundary: every line parses
        rows.pop()
        write()
    elif how == "other_version":
        header["v"] = header["v"] + 1
        write()
    elif how == "other_home":
        header["home"] = "/somewhere/else"
        write()
    elif how == "json_null":
        path.write_text("null")
    elif how == "json_list":
        path.write_text("[1, 2, 3]")
    elif how == "bad_row":
        rows[0]["keys"] = rows[0]["keys"][:5]  # a column shorter than the others
        write()
    elif how == "bad_facts":
        rows[0]["tdata"] = {"not": "a list"}
        write()
    elif how == "bad_types":
        rows[0]["nums"][4] = str(rows[0]["nums"][4])  # the first rollout's offset, as a string
        write()
    elif how == "bad_verified":
        assert header["verified"] is not None
        header["verified"]["rows"] = ["not", "a", "mapping"]
        write()
    elif how == "directory":
        path.unlink()
        path.mkdir()
    else:  # pragma: no cover
        raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    [
        "garbage",
        "truncated",
        "rows_missing",
        "other_version",
        "other_home",
        "json_null",
        "json_list",
        "bad_row",
        "bad_facts",
        "bad_types",
        "bad_verified",
        "directory",
    ],
)
def test_unusable_checkpoint_is_discarded_and_the_repair_is_still_right(
    tmp_path: Path, how: str
) -> None:
    threads = [new_thread(i, turns=2) for i in range(6)]
    home = build_home(tmp_path / "h", threads)

    def once() -> Daemon:
        daemon = Daemon(settings_mod.load({"homes": [str(home)]}))
        assert daemon.run_once() == 0
        return daemon

    once()
    checkpoint = OurFiles.for_home(home).checkpoint
    assert checkpoint.exists()
    corrupt(checkpoint, how)
    (home / "session_index.jsonl").unlink()
    append(
        rollout_path(home, threads[2]),
        user_turn(threads[2], "after the crash", BASE_TIME + timedelta(days=1)),
    )
    with capture_logs() as logs:
        daemon = once()
    (record,) = [r for r in logs if r["event"] == "home.loaded"]
    assert record["from_checkpoint"] is False
    assert record["rollouts"] == 6
    assert [r for r in logs if r["event"] == "checkpoint.discarded"], "the discard was not logged"
    (worker,) = daemon.workers.values()
    assert worker.tracker.bytes_read > 6 * 5000  # everything was read again
    assert index_ids(home) == {t.thread_id for t in threads}
    assert history_texts(home).count("after the crash") == 1
    assert len(history_texts(home)) == 13


# -- crash in the middle of a burst ---------------------------------------------------------------


def check_consistent(
    home: Path, state_dir: Path, before_history: list[bytes], before_index: list[bytes]
) -> None:
    history, index = raw_lines(home / "history.jsonl"), raw_lines(home / "session_index.jsonl")
    jsonl(home / "history.jsonl")  # every line parses, the file ends with a newline
    jsonl(home / "session_index.jsonl")
    assert contains_in_order(history, before_history), "a history line that existed before was lost"
    assert index[: len(before_index)] == before_index, "an index line that existed before was lost"
    leftovers = [
        str(p) for p in home.rglob("*") if p.name.endswith(".tmp") or "codex-indexd" in p.name
    ]
    assert leftovers == []
    assert list((state_dir / "journal").glob("*")) == []


def start_burst(home: Path, count: int) -> tuple[list[Thread], list[tuple[Path, str]]]:
    """An old-timestamped turn (history must be rewritten in place), then `count` new rollouts."""
    threads = [new_thread(1000 + i, turns=1, tool_output_bytes=20) for i in range(count)]
    contents = [(rollout_path(home, t), "".join(rollout_lines(t))) for t in threads]
    for parent in {p.parent for p, _ in contents}:
        parent.mkdir(parents=True, exist_ok=True)
    return threads, contents


@pytest.mark.slow
def test_kill_9_mid_burst_then_restart_is_consistent(
    tmp_path: Path, spawn: Spawn, state_dir: Path
) -> None:
    threads = [new_thread(i, turns=2) for i in range(20)]
    home = build_home(tmp_path / "h", threads)
    # Flush at least every 100 ms, so that the burst is handled in many batches.
    daemon = spawn(home, env={"CODEX_INDEXD_MAX_DELAY_MS": "100"})
    daemon.wait_ready()
    before_history = raw_lines(home / "history.jsonl")
    before_index = raw_lines(home / "session_index.jsonl")
    assert len(before_history) == 40

    new_threads, contents = start_burst(home, 3000)

    def write_burst() -> None:
        append(
            rollout_path(home, threads[0]),
            user_turn(threads[0], "old but new", BASE_TIME + timedelta(seconds=25)),
        )
        for n, (path, text) in enumerate(contents):
            path.write_text(text, encoding="utf-8")
            if n % 100 == 99:
                time.sleep(0.02)  # pacing (not synchronisation): the burst outlasts a few flushes

    writer = threading.Thread(target=write_burst)
    writer.start()
    wanted = {t.thread_id for t in new_threads}
    try:
        # Kill as soon as the daemon is visibly working through the burst, while it goes on.
        wait_for(
            lambda: bool(index_ids(home) & wanted) or not writer.is_alive(),
            20,
            "the daemon to start on the burst",
            interval=0.005,
        )
        os.kill(daemon.pid, signal.SIGKILL)
    finally:
        writer.join()
    daemon.proc.wait(timeout=5)
    done_before_kill = len(index_ids(home) & wanted)
    daemon.close()

    again = spawn(home)
    again.wait_ready()
    check_consistent(home, state_dir, before_history, before_index)
    wait_for(
        lambda: wanted <= index_ids(home),
        20,
        "the rest of the burst after the restart",
        interval=0.1,
    )
    texts = history_texts(home)
    assert texts.count("old but new") == 1
    assert all(texts.count(t.turns[0].text) == 1 for t in new_threads)
    assert again.terminate() == 0
    assert 0 < done_before_kill < len(wanted), "the kill did not land in the middle of the burst"


def repaired_home(path: Path, count: int) -> tuple[Path, list[Thread]]:
    threads = [new_thread(i, turns=2) for i in range(count)]
    home = build_home(path, threads)
    assert Daemon(settings_mod.load({"homes": [str(home)]})).run_once() == 0
    return home, threads


OLD_TURN = "old but new"


def append_old_turn(home: Path, thread) -> None:
    """A turn older than history's tail: history is rewritten in place, with a journal."""
    append(
        rollout_path(home, thread), user_turn(thread, OLD_TURN, BASE_TIME + timedelta(seconds=25))
    )


def traced_steps(tmp_path: Path, spawn: Spawn) -> list[str]:
    """The writer steps of the history append, from a twin home (same path length, same bytes)."""
    twin, threads = repaired_home(tmp_path / "g", 10)
    trace = tmp_path / "twin-trace.txt"
    daemon = spawn(
        twin, env={"CODEX_INDEXD_CRASH_CHUNK": "64", "CODEX_INDEXD_CRASH_TRACE": str(trace)}
    )
    daemon.wait_ready()
    append_old_turn(twin, threads[0])
    wait_for(lambda: OLD_TURN in history_texts(twin), 5, "the twin's rewrite")
    assert daemon.terminate() == 0
    return [row.split(" ", 1)[1] for row in trace.read_text().splitlines()]


CRASH_POINTS = {
    "journal_half_written": lambda steps: steps.index("journal.written") // 2,
    "journal_written": lambda steps: steps.index("journal.written"),
    "journal_committed": lambda steps: steps.index("journal.committed"),
    "tail_half_written": lambda steps: (
        (steps.index("journal.committed") + steps.index("history.tail_written")) // 2
    ),
    "tail_written": lambda steps: steps.index("history.tail_written"),
    "synced": lambda steps: steps.index("history.synced"),
}


@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_crash_inside_a_history_rewrite_then_restart_is_consistent(
    tmp_path: Path,
    spawn: Spawn,
    state_dir: Path,
    point: str,
) -> None:
    """`CODEX_INDEXD_CRASH_AT` kills the daemon (exit 86) at a chosen step of a history append
    (64-byte write chunks, so a crash can leave half of it). Codex appends while it is down;
    the restart recovers, keeps those lines, then handles a burst."""
    steps = traced_steps(tmp_path, spawn)
    # The append's journal is durable before Codex's lock is asked for, and goes after it.
    assert steps.index("journal.committed") < steps.index("history.locked"), steps
    assert steps[-1] == "journal.removed", steps
    crash_at = CRASH_POINTS[point](steps) + 1  # steps are counted from 1
    home, threads = repaired_home(tmp_path / "h", 10)
    before_history = raw_lines(home / "history.jsonl")
    before_index = raw_lines(home / "session_index.jsonl")

    crashing = spawn(
        home, env={"CODEX_INDEXD_CRASH_AT": str(crash_at), "CODEX_INDEXD_CRASH_CHUNK": "64"}
    )
    crashing.wait_ready()  # the home is consistent: no writer step before the append
    append_old_turn(home, threads[0])
    assert crashing.proc.wait(timeout=10) == 86
    crashing.close()
    if point != "synced":
        assert list((state_dir / "journal").glob("*")), "expected the crash to leave a journal"

    codex_history_append(
        home, threads[5].thread_id, "typed while the daemon was down", int(time.time())
    )
    new_threads, contents = start_burst(home, 30)
    for path, text in contents:
        path.write_text(text, encoding="utf-8")
    again = spawn(home)
    again.wait_ready()
    check_consistent(home, state_dir, before_history, before_index)
    wanted = {t.thread_id for t in new_threads}
    wait_for(lambda: wanted <= index_ids(home), 5, "the burst after the restart")
    texts = history_texts(home)
    assert texts.count(OLD_TURN) == 1
    assert texts.count("typed while the daemon was down") == 1
    assert all(texts.count(t.turns[0].text) == 1 for t in new_threads)
    assert stat.S_IMODE((home / "history.jsonl").stat().st_mode) == 0o600
    assert again.terminate() == 0
