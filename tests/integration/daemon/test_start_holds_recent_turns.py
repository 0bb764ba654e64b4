"""A daemon that starts moments after a TUI turn leaves that turn to the TUI: the TUI writes
its own history line after the rollout's (up to 0.5 s, then up to 1 s of lock retries), so a
start-up reconcile that added it at once would see it doubled. A turn whose line never comes
is added once the grace period is over."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path

from codex_indexd.index.history import TUI_LINE_GRACE_S
from tests.support.codexsim import CodexSim
from tests.support.daemons import InProcessDaemon
from tests.support.waiting import wait_for


def texts(home: Path) -> list[str]:
    raw = (home / "history.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in raw]


def test_a_turn_written_just_before_the_start_is_left_to_the_tui(
    tmp_path: Path, inproc: Callable[..., InProcessDaemon]
) -> None:
    sim = CodexSim(tmp_path / "home", random.Random(3))
    thread = sim.new_thread(tui=True, first_text="first prompt", history_delay_s=-1.0)
    sim._rollout_turn(thread, "typed just before the restart", None)  # its line is on its way
    started = time.monotonic()
    daemon = inproc(sim.home)
    assert "typed just before the restart" not in texts(sim.home)
    # The TUI's line lands late in its window (it waited for the lock).
    time.sleep(max(0.0, started + 1.2 - time.monotonic()))  # the TUI's own timing, not a sync
    sim.history_append(thread.tid, "typed just before the restart", int(time.time()))
    wait_for(
        lambda: daemon.worker.held.recheck_at is None,
        10,
        "the held turn looked at again",
    )
    assert texts(sim.home).count("typed just before the restart") == 1
    assert texts(sim.home).count("first prompt") == 1


def test_a_held_turn_whose_line_never_comes_is_added_after_the_grace_period(
    tmp_path: Path, inproc: Callable[..., InProcessDaemon]
) -> None:
    sim = CodexSim(tmp_path / "home", random.Random(4))
    thread = sim.new_thread(tui=True, first_text="first prompt", history_delay_s=-1.0)
    sim._rollout_turn(thread, "the TUI crashed before its line", None)
    started = time.monotonic()
    inproc(sim.home)
    wait_for(
        lambda: "the TUI crashed before its line" in texts(sim.home),
        10,
        "the held turn added",
    )
    assert time.monotonic() - started >= TUI_LINE_GRACE_S
    assert texts(sim.home).count("the TUI crashed before its line") == 1


def test_an_old_turn_missing_at_start_is_added_without_a_hold(
    tmp_path: Path, inproc: Callable[..., InProcessDaemon]
) -> None:
    sim = CodexSim(tmp_path / "home", random.Random(5))
    thread = sim.new_thread(tui=True, first_text="first prompt", history_delay_s=-1.0)
    sim._rollout_turn(thread, "an old turn never written", time.time() - 60)
    daemon = inproc(sim.home)
    # Added by the start-up reconcile itself, before READY.
    assert texts(sim.home).count("an old turn never written") == 1
    assert daemon.worker.held.recheck_at is None
