"""Fast checks of the daemon benchmark: its helpers, and a whole `--quick` run (< 20 s)."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.bench import bench_daemon as bench

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 51)]
    assert bench.percentile(values, 95) == 48.0
    assert bench.percentile(values, 50) == 25.0
    assert bench.percentile([], 95) is None


def test_cpu_and_memory_readers_see_this_process() -> None:
    pid = os.getpid()
    ticks0, sched0 = bench.cpu_ticks_s(pid), bench.cpu_sched_s(pid)
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    assert bench.cpu_sched_s(pid) - sched0 >= 0.04
    assert bench.cpu_ticks_s(pid) >= ticks0
    mem = bench.proc_mem_mib(pid)
    assert 0 < mem["VmRSS"] <= mem["VmHWM"]


def test_idle_cpu_is_not_charged_to_an_append() -> None:
    samples = [bench.AppendSample(0.3, cpu_s=0.006, window_s=1.0)]
    assert bench.net_cpu_ms(samples, rate=0.001) == pytest.approx([5.0])


def test_built_home_and_appended_turn(tmp_path: Path) -> None:
    """A few-KB-per-session home whose newest thread gets the appends; the turn is one write
    whose text history.jsonl must come to hold."""
    live = bench.build_home(tmp_path / "home", 5, subject_bytes=300_000)
    rollouts = sorted((tmp_path / "home" / "sessions").rglob("rollout-*.jsonl"))
    assert len(rollouts) == 5 and live.path in rollouts
    assert live.path.stat().st_size >= 300_000
    assert all(p.stat().st_size < 8192 for p in rollouts if p != live.path)
    # The appended thread is an exec one (no TUI history line to wait for), the others TUI's.
    sources = {p: json.loads(p.read_bytes().splitlines()[0])["payload"]["source"] for p in rollouts}
    assert sources.pop(live.path) == bench.APPEND_SOURCE == "exec"
    assert set(sources.values()) == {"cli"}
    before = live.path.stat().st_size
    newest_before = max(json.loads(p.read_bytes().splitlines()[-1])["timestamp"] for p in rollouts)
    _, needle = bench.append_turn(live)
    tail = live.path.read_bytes()[before:]
    assert tail.endswith(b"\n") and needle in tail
    kinds = [json.loads(raw)["type"] for raw in tail.splitlines()]
    assert kinds == ["event_msg", "turn_context", "response_item", "event_msg"]
    assert json.loads(tail.splitlines()[-1])["payload"]["type"] == "user_message"
    stamp = json.loads(tail.splitlines()[-1])["timestamp"]
    assert stamp > newest_before  # the appended turn is the newest history line
    assert datetime.fromisoformat(stamp.replace("Z", "+00:00")) <= datetime.now(tz=UTC)


def test_quick_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The whole benchmark at tiny sizes: every measure gets a value and no daemon fails."""
    out_json = tmp_path / "out.json"
    work = tmp_path / "work"
    started = time.monotonic()
    code = bench.main(["--quick", "--workdir", str(work), "--json", str(out_json)])
    elapsed = time.monotonic() - started
    out = capsys.readouterr().out
    assert code == 0, out
    for measure in (
        "append->history p95",
        "CPU per append ratio",
        "idle CPU",
        "warm start to READY",
        "cold start to READY",
        "VmHWM after warm READY",
    ):
        assert measure in out
    payload = json.loads(out_json.read_text())
    assert payload["failures"] == []
    assert all(row["value"] is not None for row in payload["rows"])
    assert list(work.iterdir()) == []  # the run dir is removed without --keep
    assert elapsed < 60  # about 13 s on the 2-CPU VM
