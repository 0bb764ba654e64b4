"""The daemon follows the config file's homes: SIGHUP adds and drops them, and a change only a
restart applies is logged and shown by `status`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.daemons import log_records, source_pythonpath
from tests.support.homes import build_home, new_thread
from tests.support.waiting import wait_for


def status_of(home: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "codex_indexd", "status", "--json", "--codex-home", str(home)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": source_pythonpath()},
    )
    report: dict[str, Any] = json.loads(done.stdout)["homes"][0]
    return report


def homes_toml(*homes: Path, extra: str = "") -> str:
    return extra + "homes = [" + ", ".join(json.dumps(str(h)) for h in homes) + "]\n"


def config_with_first_of_two_homes(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Return (the config file naming the first home only, the first home, a second home)."""
    config = Path(os.environ["CODEX_INDEXD_CONFIG"])
    config.parent.mkdir(parents=True, exist_ok=True)
    first = build_home(tmp_path / "first", [new_thread(0)])
    second = build_home(tmp_path / "second", [new_thread(1)])
    config.write_text(homes_toml(first))
    return config, first, second


def test_sighup_adds_and_drops_homes(tmp_path: Path, private_dirs: Path, log_dir: Path) -> None:
    config, first, second = config_with_first_of_two_homes(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "codex_indexd", "run", "--debounce-ms", "30"],
        env={**os.environ, "PYTHONPATH": source_pythonpath()},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for((first / "session_index.jsonl").exists, 20, "the first home served")
        assert not (second / "session_index.jsonl").exists()
        assert status_of(second)["daemon_running"] is False

        config.write_text(homes_toml(first, second))
        proc.send_signal(signal.SIGHUP)
        wait_for((second / "session_index.jsonl").exists, 20, "the added home served")
        assert log_records(log_dir, "home.added")
        assert status_of(second)["daemon_pid"] == proc.pid

        config.write_text(homes_toml(second, extra='log_level = "debug"\n'))
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: log_records(log_dir, "home.dropped"), 20, "home.dropped")
        wait_for(lambda: status_of(first)["daemon_running"] is False, 20, "the first let go")
        assert log_records(log_dir, "config.restart_needed")
        warnings = status_of(second)["warnings"]
        assert any("restarted to apply log_level" in w for w in warnings), warnings
        # started by hand, so no service manager's command is suggested
        assert any("stop 'codex-indexd run' and start it again" in w for w in warnings)
        assert not any("systemctl" in w for w in warnings), warnings
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_homes_fixed_on_the_command_line_are_said_to_hide_the_config_files(
    tmp_path: Path, private_dirs: Path, log_dir: Path
) -> None:
    """A daemon started with --codex-home (a service installed with one home) does not
    follow `homes` in the config file: it logs so at start and after each SIGHUP, instead
    of a bare config.reloaded that changes nothing."""
    config, first, second = config_with_first_of_two_homes(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "codex_indexd", "run", "--codex-home", str(first)],
        env={**os.environ, "PYTHONPATH": source_pythonpath()},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for((first / "session_index.jsonl").exists, 20, "the first home served")
        (record,) = log_records(log_dir, "config.homes_ignored")
        assert (record["file_line"], record["by"]) == ("file:1", "cli")
        config.write_text(homes_toml(first, second))
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: len(log_records(log_dir, "config.homes_ignored")) == 2, 20, "a warning")
        assert not (second / "session_index.jsonl").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
