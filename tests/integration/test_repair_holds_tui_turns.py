"""`repair` leaves a TUI turn seconds old to the TUI, which writes that turn's history line
itself shortly after the rollout line: run in between, repair would add the line and the
TUI's own would double it. A turn whose line never comes is added once it is older."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import pytest

from codex_indexd.cli import main
from tests.support.codexsim import CodexSim


def repair(home: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["repair", "--codex-home", str(home), "--max-threads", "0", "--json"]) == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def texts(home: Path) -> list[str]:
    raw = (home / "history.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in raw]


def test_a_tui_turn_seconds_old_is_held_and_never_doubled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = CodexSim(tmp_path / "home", random.Random(9))
    thread = sim.new_thread(tui=True, first_text="first prompt", history_delay_s=0.0)
    repair(home=sim.home, capsys=capsys)
    assert texts(sim.home).count("first prompt") == 1

    sim._rollout_turn(thread, "second prompt", None)  # the TUI's line has not come yet
    held = repair(sim.home, capsys)
    assert held["history_lines_held"] == 1 and held["history_lines_added"] == 0
    assert "second prompt" not in texts(sim.home)
    sim.history_append(thread.tid, "second prompt", int(time.time()))  # now it comes
    after = repair(sim.home, capsys)
    assert after["history_lines_held"] == 0 and after["history_lines_added"] == 0
    assert texts(sim.home).count("second prompt") == 1


def test_an_older_tui_turn_without_its_line_is_added(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = CodexSim(tmp_path / "home", random.Random(10))
    thread = sim.new_thread(tui=True, first_text="first prompt", history_delay_s=0.0)
    sim._rollout_turn(thread, "a turn the TUI never wrote", time.time() - 30)
    report = repair(sim.home, capsys)
    assert report["history_lines_held"] == 0
    assert texts(sim.home).count("a turn the TUI never wrote") == 1
