"""detect() and path resolution."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from codex_indexd_service import LABEL, UNIT_NAME
from codex_indexd_service.command_runner import Result, SubprocessRunner
from codex_indexd_service.context import default_manager, resolve
from codex_indexd_service.manager import detect


@pytest.mark.parametrize("key", ["INVOCATION_ID", "NOTIFY_SOCKET"])
def test_detect_systemd_from_our_environment(key: str, runner: Any) -> None:
    found = detect(env={key: "x"}, runner=runner, platform="linux")
    assert (found.manager, found.running_under) == ("systemd", True)
    assert runner.calls == []


def test_detect_launchd_agent_from_xpc_service_name(runner: Any) -> None:
    found = detect(env={"XPC_SERVICE_NAME": LABEL}, runner=runner, platform="darwin")
    assert (found.manager, found.running_under) == ("launchd", True)


def test_terminal_xpc_service_name_is_not_our_agent(runner: Any) -> None:
    runner.answer(("launchctl",), Result(113, "", "Could not find service"))
    found = detect(env={"XPC_SERVICE_NAME": "0"}, runner=runner, platform="darwin")
    assert found.manager is None


@pytest.mark.parametrize(("state", "manager"), [("active\n", "systemd"), ("inactive\n", None)])
def test_detect_asks_systemctl(runner: Any, state: str, manager: str | None) -> None:
    runner.answer(("systemctl",), Result(0 if manager else 3, state))
    found = detect(env={}, runner=runner, platform="linux")
    assert found.manager == manager and not found.running_under
    assert runner.calls == [("systemctl", "--user", "is-active", UNIT_NAME)]


def test_detect_asks_launchctl(runner: Any) -> None:
    found = detect(env={}, runner=runner, platform="darwin")
    assert found.manager == "launchd"
    assert runner.calls[0][:2] == ("launchctl", "print")


def test_default_manager() -> None:
    assert default_manager("linux") == "systemd"
    assert default_manager("darwin") == "launchd"
    assert default_manager("win32") is None


def test_resolve_defaults_and_overrides(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "CODEX_HOME": "~/codex", "XDG_CONFIG_HOME": "relative"}
    ctx = resolve("systemd", env=env, uid=1000)
    assert ctx.codex_home == tmp_path / "codex"
    assert ctx.unit_path == tmp_path / ".config" / "systemd" / "user" / UNIT_NAME
    assert ctx.xdg["XDG_CONFIG_HOME"] == str(tmp_path / ".config")
    assert resolve("systemd", codex_home="/c", env=env).codex_home == Path("/c")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "cfg")
    assert resolve("systemd", env=env).unit_dir == tmp_path / "cfg" / "systemd" / "user"


def test_subprocess_runner_reports_a_missing_program() -> None:
    result = SubprocessRunner().run(["/nonexistent/program"])
    assert result.returncode == 127 and not result.ok
    assert SubprocessRunner().run(["true"]).ok
