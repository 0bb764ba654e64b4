"""Watching: a dead observer is restarted, lost events force a full reconcile, polling works
(forced, or as the fallback when inotify runs out), bursts are coalesced, and a removed and
recreated sessions/ directory is watched again."""

from __future__ import annotations

import errno
import logging
import shutil
import time
from datetime import timedelta
from pathlib import Path

import pytest

from codex_indexd.daemon.loop import Daemon
from codex_indexd.watch import observer as observer_mod
from tests.integration.daemon.home_files import append, history_texts, index_ids, status
from tests.support.daemons import InProc, Spawn, log_records
from tests.support.homes import (
    BASE_TIME,
    build_home,
    new_thread,
    rollout_lines,
    rollout_path,
    user_turn,
    write_rollout,
)
from tests.support.waiting import wait_for


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_observer_killed_by_a_handler_exception_is_restarted(
    tmp_path: Path, inproc: InProc, monkeypatch
) -> None:
    home = build_home(tmp_path / "h", [new_thread(0)])
    run = inproc(home)
    first_observer = run.daemon.watch.observer
    assert first_observer is not None, "a running daemon has an observer"
    original = observer_mod.HomeEventHandler.dispatch
    armed = {"raise": True}

    def dispatch(self, event):
        if armed["raise"]:
            armed["raise"] = False
            raise RuntimeError("handler blew up")  # kills watchdog's dispatcher thread
        return original(self, event)

    monkeypatch.setattr(observer_mod.HomeEventHandler, "dispatch", dispatch)
    victim = new_thread(1, turns=1)
    write_rollout(home, victim)  # its event is the one that raises

    def restarted() -> bool:
        current = run.daemon.watch.observer
        return (
            run.daemon.watch.restarts >= 1
            and current is not None
            and current is not first_observer
            and current.is_alive()
        )

    wait_for(restarted, 5, "the supervisor to restart the observer")
    assert not first_observer.is_alive()
    # The event that killed the observer was lost; the full reconcile after the restart finds it.
    wait_for(lambda: victim.thread_id in index_ids(home), 3, "the rollout whose event was lost")
    later = new_thread(2, turns=1)
    write_rollout(home, later)
    wait_for(lambda: later.thread_id in index_ids(home), 3, "a rollout written after the restart")
    assert status(home)["observer_restarts"] >= 1


def test_observer_stopped_under_the_daemon_is_restarted(tmp_path: Path, inproc: InProc) -> None:
    home = build_home(tmp_path / "h", [new_thread(0)])
    run = inproc(home)
    dead = run.daemon.watch.observer
    assert dead is not None, "a running daemon has an observer"
    dead.stop()
    dead.join(timeout=5)
    wait_for(
        lambda: (
            run.daemon.watch.restarts >= 1
            and run.daemon.watch.observer not in (None, dead)
            and run.daemon.watch.observer.is_alive()
        ),
        5,
        "the supervisor to restart it",
    )
    later = new_thread(3, turns=1)
    write_rollout(home, later)
    wait_for(lambda: later.thread_id in index_ids(home), 3, "a rollout written after the restart")


def test_overflow_record_forces_a_full_reconcile(
    tmp_path: Path, inproc: InProc, monkeypatch
) -> None:
    # An exec thread: its turn is not held for a TUI line, so one reconcile writes it.
    thread = new_thread(0, source="exec")
    home = build_home(tmp_path / "h", [thread])
    run = inproc(home)
    seen: list[str] = []

    def drop(self, event) -> None:
        seen.append(str(event.src_path))  # the kernel queue overflowed: the event is lost

    monkeypatch.setattr(observer_mod.HomeEventHandler, "_route", drop)
    path = rollout_path(home, thread)
    append(path, user_turn(thread, "nobody heard this", BASE_TIME + timedelta(days=1)))
    wait_for(lambda: str(path) in seen, 3, "the event to be dropped")
    monkeypatch.undo()
    # Let whatever is pending (events of the daemon's own start-up writes) be handled first.
    wait_for(lambda: run.daemon.debouncer.due_in(time.monotonic()) is None, 3, "an idle debouncer")
    reconciles = run.daemon.reconciles
    assert "nobody heard this" not in history_texts(home)

    logging.getLogger("watchdog.observers.inotify_c").warning(
        "Inotify queue overflowed; filesystem events were lost"
    )
    wait_for(lambda: "nobody heard this" in history_texts(home), 2, "the full reconcile")
    wait_for(lambda: run.daemon.reconciles > reconciles, 2, "the reconcile to be counted")
    assert run.daemon.reconciles == reconciles + 1
    assert run.worker.stats["last_reconcile_reason"] == "full"


def test_poll_mode_end_to_end(tmp_path: Path, spawn: Spawn) -> None:
    thread = new_thread(0)
    home = build_home(tmp_path / "h", [thread])
    daemon = spawn(home, "--poll", env={"CODEX_INDEXD_POLL_INTERVAL_S": "0.2"})
    daemon.wait_ready()
    record = status(home)
    assert record["polling"] is True and record["watcher"].startswith("polling")
    append(
        rollout_path(home, thread),
        user_turn(thread, "seen by polling", BASE_TIME + timedelta(days=1)),
    )
    wait_for(lambda: "seen by polling" in history_texts(home), 2, "the turn, by polling")
    fresh = new_thread(4, turns=1)
    write_rollout(home, fresh)
    wait_for(lambda: fresh.thread_id in index_ids(home), 2, "the new rollout, by polling")


@pytest.mark.parametrize(
    ("errno_name", "sysctl"),
    [("ENOSPC", "fs.inotify.max_user_watches"), ("EMFILE", "fs.inotify.max_user_instances")],
)
def test_inotify_limit_falls_back_to_polling_with_a_hint(
    tmp_path: Path,
    spawn: Spawn,
    log_dir: Path,
    errno_name: str,
    sysctl: str,
) -> None:
    thread = new_thread(0)
    home = build_home(tmp_path / "h", [thread])
    daemon = spawn(
        home,
        env={"CODEX_INDEXD_POLL_INTERVAL_S": "0.2"},
        seams=[f"inotify-errno={errno_name}"],
    )
    daemon.wait_ready()
    assert status(home)["polling"] is True
    (warning,) = log_records(log_dir, "watch.inotify_unavailable")
    assert sysctl in warning["reason"] and "sudo sysctl" in warning["reason"]
    assert warning["fallback"] == "polling"
    assert sysctl in daemon.stderr
    append(
        rollout_path(home, thread),
        user_turn(thread, "after the fallback", BASE_TIME + timedelta(days=1)),
    )
    wait_for(lambda: "after the fallback" in history_texts(home), 2, "the turn, by polling")


@pytest.mark.slow
def test_burst_of_5000_rollouts_is_coalesced(tmp_path: Path, spawn: Spawn, log_dir: Path) -> None:
    home = build_home(tmp_path / "h", [new_thread(0)])
    daemon = spawn(home, debounce_ms=300)
    daemon.wait_ready()
    repairs_before = len(log_records(log_dir, "index.repaired"))
    threads = [new_thread(i, turns=1, tool_output_bytes=20) for i in range(1, 5001)]
    contents = [(rollout_path(home, t), "".join(rollout_lines(t))) for t in threads]
    for path in {p.parent for p, _ in contents}:
        path.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    for path, text in contents:
        path.write_text(text, encoding="utf-8")
    written_in = time.monotonic() - started
    wanted = {t.thread_id for t in threads}
    wait_for(lambda: wanted <= index_ids(home), 30, "all 5,000 rollouts in the index", interval=0.2)
    wait_for(lambda: len(history_texts(home)) == 2 + 5000, 10, "all 5,000 turns in history")
    repairs = len(log_records(log_dir, "index.repaired")) - repairs_before
    # One flush per max_delay (2 s) while the burst lasts, plus a few at its edges.
    print(f"burst: {repairs} repairs, written in {written_in:.2f} s")
    assert 1 <= repairs <= 6 + int(written_in / 2), (repairs, written_in)
    assert daemon.alive()


@pytest.mark.parametrize(
    "how", ["absent_at_start", "removed_seen", "removed_and_recreated_at_once", "polling"]
)
def test_removed_and_recreated_sessions_dir_is_watched_again(
    tmp_path: Path, spawn: Spawn, how: str
) -> None:
    threads = [new_thread(i, turns=1) for i in range(6)]
    home = build_home(tmp_path / "h", threads)
    if how == "absent_at_start":
        shutil.rmtree(home / "sessions")
    poll = ["--poll"] if how == "polling" else []
    daemon = spawn(home, *poll, env={"CODEX_INDEXD_POLL_INTERVAL_S": "0.2"})
    daemon.wait_ready()
    if how != "absent_at_start":
        shutil.rmtree(home / "sessions")
    if how == "removed_seen":
        wait_for(
            lambda: status(home).get("sessions") == 0, 3, "the daemon to see the rollouts gone"
        )
    (home / "sessions").mkdir()
    # New files reuse the deleted files' inode numbers: they must not be taken for moves.
    first = new_thread(20, turns=1)
    write_rollout(home, first)
    wait_for(lambda: first.thread_id in index_ids(home), 3, "a rollout in the new sessions/")
    second = new_thread(21 + 24 * 60, turns=1)  # another day: a new subdirectory
    write_rollout(home, second)
    wait_for(lambda: second.thread_id in index_ids(home), 3, "a rollout in a new day directory")
    append(
        rollout_path(home, second),
        user_turn(second, "appended later", BASE_TIME + timedelta(days=9)),
    )
    wait_for(lambda: "appended later" in history_texts(home), 3, "an append in the new tree")
    assert daemon.alive()


@pytest.mark.parametrize("poll", [False, True], ids=["inotify", "polling"])
def test_a_home_created_after_the_start_is_picked_up_at_once(
    tmp_path: Path, spawn: Spawn, poll: bool
) -> None:
    """Installed before Codex ever ran: ~/.codex (and its parents) appear later, and the daemon
    must notice without waiting for the periodic reconcile (10 minutes)."""
    home = tmp_path / "user" / ".codex"
    daemon = spawn(home, *(["--poll"] if poll else []), env={"CODEX_INDEXD_POLL_INTERVAL_S": "0.2"})
    daemon.wait_ready()
    assert not home.exists()
    (tmp_path / "user").mkdir()
    thread = new_thread(0, turns=2)
    build_home(home, [thread])
    wait_for(lambda: thread.thread_id in index_ids(home), 5, "the new home's first thread")
    later = new_thread(1, turns=1)
    write_rollout(home, later)
    wait_for(lambda: later.thread_id in index_ids(home), 3, "a thread after the home appeared")
    # The index line is written just before the history line, in the same reconcile.
    wait_for(lambda: len(history_texts(home)) == 3, 2, "the new thread's turn in history")
    assert daemon.alive()


def test_write_just_before_the_observer_starts_is_not_lost(
    tmp_path: Path, inproc: InProc, monkeypatch
) -> None:
    """A Codex session appends while the daemon starts: the turn must be caught by the start-up
    scan or by an event, whichever comes after it."""
    thread = new_thread(0)
    home = build_home(tmp_path / "h", [thread])
    original = Daemon.start_observer
    calls = {"n": 0}

    def start_observer(self) -> None:
        calls["n"] += 1
        if calls["n"] == 1:  # the last moment before events are seen
            append(
                rollout_path(home, thread),
                user_turn(thread, "during start-up", BASE_TIME + timedelta(days=1)),
            )
        original(self)

    monkeypatch.setattr(Daemon, "start_observer", start_observer)
    inproc(home)
    wait_for(
        lambda: "during start-up" in history_texts(home), 2, "the turn written during start-up"
    )


def test_rewatch_of_one_home_loses_no_event_of_another(
    tmp_path: Path, inproc: InProc, monkeypatch
) -> None:
    """Recreating one home's sessions/ restarts the observer of every home; whatever another
    home got while no observer ran must still be found."""
    a = build_home(tmp_path / "a", [new_thread(0)])
    b = build_home(tmp_path / "b", [new_thread(1)])
    run = inproc(a, b)
    original = Daemon.start_observer
    gap_thread = new_thread(2, turns=1)

    def start_observer(self) -> None:
        if not (rollout_path(b, gap_thread)).exists():
            write_rollout(b, gap_thread)  # lands while the old observer is stopped
        original(self)

    monkeypatch.setattr(Daemon, "start_observer", start_observer)
    shutil.rmtree(a / "sessions")
    wait_for(
        lambda: gap_thread.thread_id in index_ids(b),
        3,
        "home b's rollout written during the rewatch",
    )
    assert run.daemon.watch.observer is not None and run.daemon.watch.observer.is_alive()


def test_failed_inotify_start_leaves_no_watcher_threads_behind(
    tmp_path: Path, inproc: InProc, monkeypatch
) -> None:
    """ENOSPC from the second inotify watch: the emitters already started, and the observer's
    inotify instance, must be stopped before falling back to polling (else they keep queueing
    events nobody reads)."""
    import threading

    from watchdog.observers import inotify
    from watchdog.observers.inotify_c import InotifyFD

    from codex_indexd.watch.capped import inotify_emitter_class

    threads = [new_thread(0), new_thread(1, archived=True)]  # sessions/ and archived_sessions/
    home = build_home(tmp_path / "h", threads)

    def watcher_threads() -> list[threading.Thread]:
        return [
            t
            for t in threading.enumerate()
            if isinstance(t, inotify.InotifyEmitter | InotifyFD) and t.is_alive()
        ]

    before = set(watcher_threads())
    emitter = inotify_emitter_class()
    assert emitter is not None and issubclass(emitter, inotify.InotifyEmitter)
    original = emitter.on_thread_start
    calls = {"n": 0}

    def on_thread_start(self) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        original(self)

    monkeypatch.setattr(emitter, "on_thread_start", on_thread_start)
    run = inproc(home, **{"watch.poll_interval_s": 0.2})
    assert run.daemon.watch.polling is True
    assert calls["n"] == 2
    wait_for(
        lambda: set(watcher_threads()) <= before, 3, "the half-started inotify threads to stop"
    )
    fresh = new_thread(5, turns=1)
    write_rollout(home, fresh)
    wait_for(lambda: fresh.thread_id in index_ids(home), 2, "a rollout, by polling")


def test_directory_vanishing_while_the_observer_restarts_does_not_kill_the_daemon(
    tmp_path: Path, inproc: InProc, monkeypatch
) -> None:
    from codex_indexd.daemon import watching as runner
    from codex_indexd.watch import observer as observer_mod

    home = build_home(tmp_path / "h", [new_thread(0)])
    run = inproc(home)
    original = observer_mod.watch_plan  # the function runner calls by this name
    armed = {"on": True, "removed": False}

    def watch_plan(home_, sqlite_home):
        plan = original(home_, sqlite_home)
        if armed["on"] and home_.sessions in plan.recursive:
            armed["on"] = False
            shutil.rmtree(home_.sessions)  # gone between the plan and the watch
            armed["removed"] = True
        return plan

    monkeypatch.setattr(runner, "watch_plan", watch_plan)
    (home / "archived_sessions").mkdir()  # a new root directory: the observer is restarted
    wait_for(lambda: armed["removed"], 3, "the restart that loses its directory")
    (home / "sessions").mkdir()
    fresh = new_thread(8, turns=1)
    write_rollout(home, fresh)
    wait_for(
        lambda: fresh.thread_id in index_ids(home) or run.error,
        3,
        "the rollout in the new sessions/",
    )
    assert run.error is None and run.thread.is_alive()
    assert fresh.thread_id in index_ids(home)
