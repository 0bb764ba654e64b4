"""An index file that is not a regular file (a FIFO, a link to /dev/zero, a directory) is
refused with one log line naming it, in every command and in the daemon, and the other index
file is still served. Commands run as subprocesses under a timeout: a hang fails the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.daemons import ROOT
from tests.support.homes import build_home, new_thread, read_jsonl

TIMEOUT_S = 60


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


def make_zero_link(path: Path) -> None:
    path.symlink_to("/dev/zero")


def make_dir(path: Path) -> None:
    path.mkdir()


HAZARDS: dict[str, tuple[Callable[[Path], None], str]] = {
    "fifo": (make_fifo, "is a FIFO"),
    "dev_zero": (make_zero_link, "is a symbolic link"),
    "directory": (make_dir, "is a directory"),
}


def codex_indexd(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "codex_indexd", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def hostile_home(tmp_path: Path, name: str, hazard: str) -> tuple[Path, list[str]]:
    threads = [new_thread(i, turns=1, paginated=True) for i in range(3)]
    home = build_home(tmp_path / "home", threads, db=False)
    for index_file in ("session_index.jsonl", "history.jsonl"):
        (home / index_file).unlink(missing_ok=True)
    HAZARDS[hazard][0](home / name)
    return home, [t.thread_id for t in threads]


def other_file_served(home: Path, name: str, ids: list[str]) -> None:
    if name == "history.jsonl":
        assert {e["id"] for e in read_jsonl(home / "session_index.jsonl")} >= set(ids)
    else:
        assert {e["session_id"] for e in read_jsonl(home / "history.jsonl")} >= set(ids)


@pytest.mark.parametrize("name", ["session_index.jsonl", "history.jsonl"])
@pytest.mark.parametrize("hazard", sorted(HAZARDS))
def test_repair_and_status_refuse_and_serve_the_other_file(
    tmp_path: Path, name: str, hazard: str
) -> None:
    home, ids = hostile_home(tmp_path, name, hazard)
    reason = HAZARDS[hazard][1]
    path = home / name

    dry = codex_indexd("repair", "--codex-home", str(home), "--dry-run", "--json")
    assert "Traceback" not in dry.stderr
    report = json.loads(dry.stdout)
    refused = [w for w in report["warnings"] if w["event"] == "index_file.refused"]
    assert refused == [{"event": "index_file.refused", "path": str(path), "detail": reason}]

    done = codex_indexd("repair", "--codex-home", str(home))
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1  # the refused file could not be repaired
    assert "index_file.refused" in done.stderr and str(path) in done.stderr
    assert f"error: {name}" in done.stdout  # repair's own output names the file
    other_file_served(home, name, ids)
    if hazard == "dev_zero":
        assert os.readlink(path) == "/dev/zero"  # left alone, not replaced
    status = codex_indexd("status", "--codex-home", str(home), "--json")
    assert "Traceback" not in status.stderr
    errors = json.loads(status.stdout)["homes"][0]["errors"]
    assert any(str(path) in e and reason in e for e in errors), errors


@pytest.mark.parametrize("name", ["session_index.jsonl", "history.jsonl"])
@pytest.mark.parametrize("hazard", sorted(HAZARDS))
def test_daemon_once_refuses_and_serves_the_other_file(
    tmp_path: Path, name: str, hazard: str
) -> None:
    home, ids = hostile_home(tmp_path, name, hazard)
    done = codex_indexd("run", "--once", "--codex-home", str(home))
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0
    refusals = [ln for ln in done.stderr.splitlines() if "index_file.refused" in ln]
    assert len(refusals) == 1 and str(home / name) in refusals[0]
    other_file_served(home, name, ids)


def test_daemon_keeps_serving_with_a_fifo_history(tmp_path: Path) -> None:
    """A running daemon with history.jsonl a FIFO starts, indexes and stops on SIGTERM."""
    from tests.support.daemons import DaemonProcess
    from tests.support.waiting import wait_for

    home, ids = hostile_home(tmp_path, "history.jsonl", "fifo")
    proc = DaemonProcess(home)
    try:
        wait_for(
            lambda: (
                (home / "session_index.jsonl").exists()
                and {e["id"] for e in read_jsonl(home / "session_index.jsonl")} >= set(ids)
            ),
            timeout=30,
            what="the index to be served",
        )
        proc.terminate(timeout=5)
    finally:
        proc.close()
    err = proc.stderr
    assert "Traceback" not in err
    assert proc.returncode == 0
