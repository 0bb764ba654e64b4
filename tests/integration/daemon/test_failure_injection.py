"""An exception in one phase of one home's work never stops the daemon or its other homes: the
failure is logged once per episode with its cause (type, message, where; never prompt text),
`status` shows it, the home is retried after a delay and recovers on its own once the cause
is gone. Failures are injected through seams in a daemon on a thread of the test."""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from codex_indexd.codex.home import CodexHome
from codex_indexd.config import settings as settings_mod
from codex_indexd.daemon import checkpoint, failures, healing, home_worker
from codex_indexd.daemon.home_worker import HomeWorker
from codex_indexd.daemon.home_writes import HomeWrites
from codex_indexd.daemon.loop import Daemon
from codex_indexd.daemon.own_writes import IndexCache
from codex_indexd.engine import live
from codex_indexd.engine import reconcile as engine_reconcile
from codex_indexd.store.files import OurFiles
from codex_indexd.write import history_writer
from tests.integration.daemon.home_files import append, history_texts, status
from tests.support.daemons import InProc, Spawn, log_records
from tests.support.homes import BASE_TIME, build_home, new_thread, rollout_path, user_turn
from tests.support.waiting import wait_for

MARKER = "PROMPT-MARKER-c41e"
Logs = list[MutableMapping[str, Any]]


@dataclass
class Injection:
    """Raises `make()` from the seams it is set on, while `on` and the daemon works for `home`."""

    home: str
    make: Callable[[], Exception]
    on: bool = True
    hits: int = 0
    current: list[str] = field(default_factory=list)  # the home the daemon works for, nested

    def check(self) -> None:
        if self.on and self.current and self.current[-1] == self.home:
            self.hits += 1
            raise self.make()


@dataclass(frozen=True)
class Case:
    """Where to inject (`target`, `attr`), what, which phase logs it, and when it starts."""

    target: Any
    attr: str
    make: Callable[[], Exception]
    phase: str
    from_start: bool = True
    also: tuple[str, ...] = ()  # other phases that meet the same failure


CASES = {
    "checkpoint-load": Case(
        checkpoint, "load", lambda: OSError(errno.EIO, "injected checkpoint read"), "start"
    ),
    # (a file the reader fails on is skipped alone: tests/unit/engine/test_unparsable_rollout.py)
    "rollout-read-at-start": Case(
        live.RolloutTracker, "full_scan", lambda: UnicodeError("injected rollout scan"), "start"
    ),
    "rollout-read-on-event": Case(
        live.RolloutTracker,
        "refresh",
        lambda: ValueError("injected rollout read"),
        "reconcile",
        False,
    ),
    "event-handling": Case(
        HomeWorker, "take", lambda: KeyError("injected event"), "reconcile", False
    ),
    "index-read": Case(  # healing reads the cached parse too
        IndexCache,
        "history",
        lambda: OSError(errno.EIO, "injected index read"),
        "reconcile",
        also=("heal",),
    ),
    "plan": Case(engine_reconcile, "make_plan", lambda: MemoryError("injected plan"), "reconcile"),
    "prepare": Case(HomeWrites, "prepare", lambda: RuntimeError("injected prepare"), "reconcile"),
    "apply": Case(
        engine_reconcile, "apply_plan", lambda: RuntimeError("injected apply"), "reconcile"
    ),
    "history-write": Case(
        history_writer, "append_history", lambda: AssertionError("injected write"), "reconcile"
    ),
    "heal": Case(healing, "record_db_drift", lambda: RuntimeError("injected heal"), "heal"),
    "checkpoint-save": Case(
        checkpoint, "save", lambda: TypeError("injected checkpoint save"), "checkpoint"
    ),
    "status-write": Case(
        home_worker, "write_status", lambda: OSError(errno.ENOSPC, "injected status"), "status"
    ),
}


def seam(
    monkeypatch: pytest.MonkeyPatch, target: Any, attr: str, before: Callable[[], None]
) -> None:
    """Replace `target.attr` by a wrapper that calls `before()` first."""
    original = getattr(target, attr)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        before()
        return original(*args, **kwargs)

    monkeypatch.setattr(target, attr, wrapper)


def track_homes(monkeypatch: pytest.MonkeyPatch, current: list[str]) -> None:
    """Keep `current[-1]` the home whose worker method runs (the seams check it)."""
    for name in ("start", "take", "reconcile", "save_checkpoint", "maybe_heal", "write_status"):
        original = getattr(HomeWorker, name)

        def wrapper(self: HomeWorker, *args: Any, _original: Any = original, **kw: Any) -> Any:
            current.append(str(self.home.root))
            try:
                return _original(self, *args, **kw)
            finally:
                current.pop()

        monkeypatch.setattr(HomeWorker, name, wrapper)


def two_homes(tmp_path: Path) -> tuple[Path, Path]:
    made = []
    for name in ("good", "bad"):
        threads = [new_thread(i, turns=1) for i in range(2)]
        for n, thread in enumerate(threads):
            thread.turns[0].text = f"{MARKER} {name} first prompt {n}"
        made.append(build_home(tmp_path / name, threads))
    return made[0], made[1]


def add_turn(home: Path, text: str, seconds: int) -> None:
    thread = new_thread(0, turns=1)
    when = BASE_TIME + timedelta(days=1, seconds=seconds)
    append(rollout_path(home, thread), user_turn(thread, text, when))


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(failures, "RETRY_DELAYS_S", (0.2,))


@pytest.fixture
def logs() -> Iterator[Logs]:
    with capture_logs() as captured:
        yield captured


@pytest.mark.usefixtures("fast_retries")
@pytest.mark.parametrize("name", sorted(CASES))
def test_a_failing_phase_of_one_home_stops_nothing_else_and_recovers(
    name: str,
    tmp_path: Path,
    inproc: InProc,
    monkeypatch: pytest.MonkeyPatch,
    logs: Logs,
) -> None:
    case = CASES[name]
    good, bad = two_homes(tmp_path)
    bad_key, good_key = str(CodexHome.at(bad).root), str(CodexHome.at(good).root)
    injection = Injection(bad_key, case.make, on=case.from_start)
    seam(monkeypatch, case.target, case.attr, injection.check)
    track_homes(monkeypatch, injection.current)  # around the seam on `HomeWorker.take`

    run = inproc(good, bad)  # READY even with a home failing from the start
    wait_for(lambda: f"{MARKER} good first prompt 1" in history_texts(good), 5, "good served")
    injection.on = True
    for n in range(3):  # events for the failing home: none of them logs the failure again
        add_turn(bad, f"{MARKER} bad turn {n}", n)
    wait_for(lambda: injection.hits >= 4, 10, "several failing attempts")
    add_turn(good, f"{MARKER} good turn", 10)
    wait_for(lambda: f"{MARKER} good turn" in history_texts(good), 5, "the other home served")
    wait_for(lambda: injection.hits >= 8, 10, "more failing attempts (retries)")

    assert run.thread.is_alive() and run.error is None, "the daemon stopped"
    failed = [e for e in logs if e["event"] == "home.failed"]
    phases = sorted((case.phase, *case.also))
    # Once per episode, however many attempts failed.
    assert sorted(e["phase"] for e in failed) == phases, failed
    message = failures.safe_detail(case.make())
    # What the exception says is logged only where it cannot quote a file: an OSError's
    # errno and reason, never a ValueError's or a KeyError's message.
    assert ("injected" in message) == isinstance(case.make(), OSError)
    for record in failed:
        assert record["home"] == bad_key
        assert record["error"] == type(case.make()).__name__ and record["detail"] == message
        assert record["where"].endswith(" in check")  # the seam raised it
    worker = run.daemon.workers[bad_key]
    assert worker.failures.episodes[case.phase].count >= 4
    if case.phase != "status":  # the status file cannot show what stops it being written
        shown = status(bad)["errors"][f"{case.phase}_failed"]
        assert type(case.make()).__name__ in shown["detail"] and message in shown["detail"]
    assert not [e for e in logs if e.get("home") == good_key and e["event"] == "home.failed"]
    assert not run.daemon.workers[good_key].failures.failing()

    injection.on = False  # the cause goes: the home recovers without a restart
    wait_for(
        lambda: {f"{MARKER} bad turn {n}" for n in range(3)} <= set(history_texts(bad)),
        10,
        "the failing home's turns, once it recovers",
    )
    wait_for(lambda: not run.daemon.workers[bad_key].failures.failing(), 5, "the recovery")
    recovered = [e for e in logs if e["event"] == "home.recovered"]
    assert sorted((e["home"], e["phase"]) for e in recovered) == [(bad_key, p) for p in phases]
    wait_for(
        lambda: f"{case.phase}_failed" not in status(bad).get("errors", {}),
        5,
        "status without the error",
    )
    assert f"{MARKER} bad first prompt 1" in history_texts(bad)
    assert run.thread.is_alive() and run.error is None
    assert MARKER not in repr(logs), "prompt text reached a log line"
    run.stop()


def test_run_once_serves_the_other_homes_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs: Logs
) -> None:
    good, bad = two_homes(tmp_path)
    bad_key = str(CodexHome.at(bad).root)
    injection = Injection(bad_key, lambda: RuntimeError("injected plan"))
    seam(monkeypatch, engine_reconcile, "make_plan", injection.check)
    track_homes(monkeypatch, injection.current)
    daemon = Daemon(settings_mod.load({"homes": [str(good), str(bad)]}))
    assert daemon.run_once() == 1
    assert f"{MARKER} good first prompt 1" in history_texts(good)
    assert not history_texts(bad)
    failed = [e for e in logs if e["event"] == "home.failed"]
    assert [(e["home"], e["phase"], e["error"]) for e in failed] == [
        (bad_key, "reconcile", "RuntimeError")
    ]


@pytest.mark.usefixtures("fast_retries")
def test_a_home_that_never_started_saves_no_checkpoint(
    tmp_path: Path, inproc: InProc, monkeypatch: pytest.MonkeyPatch, logs: Logs
) -> None:
    """Stopped while its start still fails, the home's partial facts are not saved over a
    checkpoint; the other home's are."""
    good, bad = two_homes(tmp_path)
    injection = Injection(str(CodexHome.at(bad).root), lambda: RuntimeError("injected scan"))
    seam(monkeypatch, live.RolloutTracker, "full_scan", injection.check)
    track_homes(monkeypatch, injection.current)
    run = inproc(good, bad)
    wait_for(lambda: injection.hits >= 3, 10, "failing starts")
    run.stop()
    assert OurFiles.for_home(good).checkpoint.exists()
    assert not OurFiles.for_home(bad).checkpoint.exists()
    assert [e["phase"] for e in logs if e["event"] == "home.failed"] == ["start"]


def test_the_daemon_process_keeps_running_and_serving(
    tmp_path: Path, spawn: Spawn, log_dir: Path
) -> None:
    """As a process (what systemd runs): one home's plan always fails, the process stays up,
    serves the other home, logs the failure once, and exits 0 on SIGTERM; the next start
    without the fault repairs the home."""
    good, bad = two_homes(tmp_path)
    seam_arg = f"fail-plan-under={CodexHome.at(bad).root}"
    daemon = spawn(good, "--codex-home", str(bad), seams=[seam_arg], log_dir=log_dir)
    daemon.wait_ready()
    for n in range(3):
        add_turn(bad, f"{MARKER} bad turn {n}", n)
    add_turn(good, f"{MARKER} good turn", 10)
    wait_for(lambda: f"{MARKER} good turn" in history_texts(good), 5, "the other home served")
    wait_for(
        lambda: status(bad).get("errors", {}).get("reconcile_failed", {}).get("count", 0) >= 3,
        10,
        "several failing attempts in status",
    )
    daemon.check_alive()
    failed = log_records(log_dir, "home.failed")
    assert [(r["phase"], r["error"], r["detail"]) for r in failed] == [
        ("reconcile", "RuntimeError", "message withheld: it may quote a file's content")
    ]
    assert not history_texts(bad)
    assert daemon.terminate() == 0

    again = spawn(good, "--codex-home", str(bad), log_dir=log_dir)
    again.wait_ready()
    wait_for(lambda: f"{MARKER} bad turn 2" in history_texts(bad), 5, "the home repaired")
    assert again.terminate() == 0
    assert MARKER not in (log_dir / "codex-indexd.log").read_text()
