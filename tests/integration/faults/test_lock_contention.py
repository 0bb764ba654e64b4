"""Lock contention with Codex's protocols: we wait within bounds, report it, finish later;
and 10,000 Codex-style appends race continuous repairs without a line lost or torn."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from codex_indexd.cli import main
from tests.support.daemons import DaemonProcess, source_pythonpath
from tests.support.homes import build_home, new_thread, read_jsonl
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[3]


def index_ids(home: Path) -> set[str]:
    path = home / "session_index.jsonl"
    return {e["id"] for e in read_jsonl(path)} if path.exists() else set()


def status_json(home: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "codex_indexd", "status", "--json", "--codex-home", str(home)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": source_pythonpath()},
    )
    report: dict[str, Any] = json.loads(out.stdout)["homes"][0]
    return report


@pytest.mark.slow
@pytest.mark.parametrize("hold_s", [5, 60])
def test_held_index_lock_is_waited_out_and_reported(tmp_path: Path, hold_s: int) -> None:
    threads = [new_thread(i, paginated=True) for i in range(3)]
    home = build_home(tmp_path / "h", threads)
    lock_fd = os.open(home / "session_index.jsonl.lock", os.O_RDWR | os.O_CREAT, 0o666)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)
    held_at = time.monotonic()
    daemon = DaemonProcess(home)
    try:
        wait_for((home / "history.jsonl").exists, 15, "history written despite the index lock")
        report = status_json(home)
        assert any("held right now" in w for w in report["warnings"]), report
        assert report["drift"].get("index_missing") == 3
        assert not index_ids(home)
        if hold_s > 10:
            wait_for(
                lambda: (
                    "lock.busy" in (tmp_path / "indexd" / "log" / "codex-indexd.log").read_text()
                ),
                10,
                "lock.busy logged",
            )
            report = status_json(home)
            assert any("lock was busy" in w for w in report["warnings"]), report
        while time.monotonic() - held_at < hold_s:
            time.sleep(0.1)
            assert daemon.poll() is None  # the daemon never gives up or dies
        if hold_s > 10:  # about 25 retries, one warning: the episode's first
            log_text = (tmp_path / "indexd" / "log" / "codex-indexd.log").read_text()
            assert log_text.count('"lock.busy"') == 1, log_text.count('"lock.busy"')
        os.close(lock_fd)
        lock_fd = -1
        released = time.monotonic()
        wait_for(
            lambda: index_ids(home) == {t.thread_id for t in threads},
            10,
            "index repaired after release",
        )
        assert time.monotonic() - released < 5
        start = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=5) == 0
        assert time.monotonic() - start < 2.5
    finally:
        if lock_fd >= 0:
            os.close(lock_fd)
        daemon.close()


def test_history_flock_held_by_codex_makes_us_wait_then_retry(tmp_path: Path) -> None:
    home = build_home(tmp_path / "h", [new_thread(0, paginated=True)])
    (home / "history.jsonl").write_bytes(b"")
    fd = os.open(home / "history.jsonl", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        started = time.monotonic()
        assert (
            main(["repair", "--codex-home", str(home), "--only", "history"]) == 1
        )  # busy → reported
        assert 0.8 <= time.monotonic() - started < 3  # about Codex's own 1 s budget, no more
    finally:
        os.close(fd)
    assert main(["repair", "--codex-home", str(home), "--only", "history"]) == 0
    assert len(read_jsonl(home / "history.jsonl")) == 2


@pytest.mark.slow
def test_10000_codex_appends_against_continuous_repairs(tmp_path: Path) -> None:
    threads = [new_thread(i, turns=2, paginated=True) for i in range(20)]
    home = build_home(tmp_path / "h", threads)
    per_process = 2500  # × 2 files × 2 processes = 10,000 appends
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.codex_like", str(home), str(per_process), tag],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    daemon = DaemonProcess(home)
    try:
        runs = 0
        while any(p.poll() is None for p in procs):
            assert (
                main(["repair", "--codex-home", str(home), "--max-threads", "0", "--no-backup"])
                == 0
            )
            runs += 1
        outputs = [p.communicate()[0] for p in procs]
    finally:
        daemon.terminate(timeout=10)
        daemon.close()
    assert all("lost=0" in out for out in outputs), outputs
    assert runs >= 2
    for name, key in (("history.jsonl", "text"), ("session_index.jsonl", "thread_name")):
        raw = (home / name).read_bytes()
        assert raw.endswith(b"\n")
        values = [json.loads(line)[key] for line in raw.splitlines()]  # nothing torn
        for tag in ("a", "b"):
            for i in range(per_process):
                expected = f"{tag} prompt {i}" if key == "text" else f"{tag} name {i}"
                assert values.count(expected) == 1, (name, expected)  # not lost, not duplicated
