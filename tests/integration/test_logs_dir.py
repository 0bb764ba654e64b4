"""`codex-indexd logs` reads the JSON log where the daemon wrote it: both take the file from
the one owner of our files, so `CODEX_INDEXD_LOG_DIR` moves them together."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codex_indexd.store.files import log_file
from tests.support.homes import build_home, new_thread


def test_logs_reads_the_log_dir_the_daemon_writes(tmp_path: Path, private_dirs: Path) -> None:
    home = tmp_path / "home"
    build_home(home, [new_thread(1)])
    moved = tmp_path / "elsewhere" / "logs"
    env = {**os.environ, "CODEX_INDEXD_LOG_DIR": str(moved)}
    once = [sys.executable, "-m", "codex_indexd", "run", "--once", "--codex-home", str(home)]
    ran = subprocess.run(once, env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert (moved / "codex-indexd.log").is_file()
    assert not (private_dirs / "log" / "codex-indexd.log").exists()
    shown = subprocess.run(
        [sys.executable, "-m", "codex_indexd", "logs", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    events = [json.loads(line)["event"] for line in shown.stdout.splitlines()]
    assert "home.loaded" in events


def test_the_log_file_follows_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEX_INDEXD_LOG_DIR", str(tmp_path / "x"))
    assert log_file() == tmp_path / "x" / "codex-indexd.log"
