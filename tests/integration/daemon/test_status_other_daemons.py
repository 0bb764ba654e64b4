"""`status` for a home no daemon serves, while a daemon runs for another home (one started
with --codex-home or CODEX_HOME, which hide the config file's homes): it says so and names
the daemon, instead of suggesting a first install."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codex_indexd.cli import main
from tests.support.daemons import Spawn
from tests.support.homes import build_home, new_thread


def test_status_names_the_daemon_that_serves_another_home(
    tmp_path: Path, spawn: Spawn, capsys: pytest.CaptureFixture[str]
) -> None:
    served = build_home(tmp_path / "served", [new_thread(1)])
    unserved = build_home(tmp_path / "unserved", [new_thread(2)])
    daemon = spawn(served)
    daemon.wait_ready()

    code = main(["status", "--codex-home", str(unserved)])
    out = capsys.readouterr().out
    assert code == 1  # drift in the unserved home, nothing repairs it
    assert f"NOT serving this home — a daemon runs (pid {daemon.proc.pid}) for {served}" in out
    assert "service install' (or" not in out

    main(["status", "--codex-home", str(unserved), "--json"])
    (report,) = json.loads(capsys.readouterr().out)["homes"]
    assert report["daemon_pid"] is None
    assert [(d["pid"], d["homes"]) for d in report["other_daemons"]] == [
        (daemon.proc.pid, [str(served)])
    ]
    assert daemon.terminate() == 0

    main(["status", "--codex-home", str(unserved)])
    assert "NOT running — start it with" in capsys.readouterr().out
