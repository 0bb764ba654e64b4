"""`codex-indexd service install|uninstall|status|print` against a fake OS boundary."""

from __future__ import annotations

import os
import plistlib
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from codex_indexd_service import LABEL, UNIT_NAME, service_command
from codex_indexd_service.command_runner import Result
from codex_indexd_service.context import resolve
from codex_indexd_service.daemon_link import DaemonLink
from codex_indexd_service.render import render_unit

SYSTEMCTL = ("systemctl", "--user")


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if not p.is_dir())


def unit_path(home: Path) -> Path:
    return home / ".config" / "systemd" / "user" / UNIT_NAME


def test_print_renders_the_unit(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert service_command.main(["print", "--manager", "systemd", "--codex-home", "~/x"]) == 0
    out = capsys.readouterr().out
    assert out == render_unit(resolve("systemd", codex_home=str(home / "x")))
    assert f"--codex-home {home}/x" in out


def test_dry_run_prints_everything_and_does_nothing(
    home: Path, runner: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        service_command.main(["install", "--manager", "systemd", "--dry-run"], runner=runner) == 0
    )
    out = capsys.readouterr().out
    assert runner.calls == []
    assert files_under(home) == []
    assert f"would run: write {unit_path(home)} (mode 0644)" in out
    assert "Type=notify" in out and f"ExecStart={resolve('systemd').argv[0]}" in out
    assert "would run: systemctl --user daemon-reload" in out
    assert "would run: systemctl --user enable --now codex-indexd.service" in out
    assert "loginctl enable-linger" in out  # no linger flag file for this user


def test_install_then_reinstall_is_idempotent_and_restarts(
    home: Path, runner: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert service_command.main(["install", "--manager", "systemd"], runner=runner) == 0
    unit = unit_path(home)
    first = unit.read_text()
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    assert runner.calls == [
        ("systemctl", "--user", "show-environment"),
        (*SYSTEMCTL, "daemon-reload"),
        (*SYSTEMCTL, "enable", "--now", UNIT_NAME),
        ("loginctl", "show-user", resolve("systemd").user, "--property=Linger"),
    ]
    runner.calls.clear()
    assert service_command.main(["install", "--manager", "systemd"], runner=runner) == 0
    assert unit.read_text() == first
    assert runner.calls[1:4] == [
        (*SYSTEMCTL, "daemon-reload"),
        (*SYSTEMCTL, "enable", UNIT_NAME),
        (*SYSTEMCTL, "restart", UNIT_NAME),
    ]
    wants = f".config/systemd/user/default.target.wants/{UNIT_NAME}"
    assert files_under(home) == [f".config/systemd/user/{UNIT_NAME}", wants]


def test_reinstall_updates_a_changed_unit(home: Path, runner: Any) -> None:
    assert service_command.main(["install", "--manager", "systemd"], runner=runner) == 0
    assert (
        service_command.main(
            ["install", "--manager", "systemd", "--codex-home", "/srv/c"], runner=runner
        )
        == 0
    )
    assert '"CODEX_HOME=/srv/c"' in unit_path(home).read_text()


def test_install_honours_xdg_config_home(
    home: Path, runner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "cfg"))
    assert service_command.main(["install", "--manager", "systemd"], runner=runner) == 0
    text = (home / "cfg" / "systemd" / "user" / UNIT_NAME).read_text()
    assert f'"XDG_CONFIG_HOME={home}/cfg"' in text


@pytest.mark.parametrize(("answer", "hint"), [("Linger=no", True), ("Linger=yes", False)])
def test_linger_hint(
    home: Path, runner: Any, capsys: pytest.CaptureFixture[str], answer: str, hint: bool
) -> None:
    runner.answer(("loginctl",), Result(0, answer + "\n"))
    assert service_command.main(["install", "--manager", "systemd"], runner=runner) == 0
    out = capsys.readouterr().out
    assert ("stops at logout" in out) is hint
    assert (f"loginctl enable-linger {resolve('systemd').user}" in out) is hint


def test_failed_enable_is_reported(
    home: Path, runner: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    runner.answer((*SYSTEMCTL, "enable"), Result(1, "", "Failed to connect to bus"))
    assert service_command.main(["install", "--manager", "systemd"], runner=runner) == 1
    assert "Failed to connect to bus" in capsys.readouterr().err


def test_uninstall_leaves_nothing_behind(home: Path, runner: Any) -> None:
    assert service_command.main(["install", "--manager", "systemd"], runner=runner) == 0
    runner.calls.clear()
    assert service_command.main(["uninstall", "--manager", "systemd"], runner=runner) == 0
    assert runner.calls == [
        (*SYSTEMCTL, "disable", "--now", UNIT_NAME),
        (*SYSTEMCTL, "daemon-reload"),
        (*SYSTEMCTL, "reset-failed", UNIT_NAME),
    ]
    assert files_under(home) == []


def test_uninstall_removes_the_files_even_when_disable_fails(home: Path, runner: Any) -> None:
    assert service_command.main(["install", "--manager", "systemd"], runner=runner) == 0
    runner.answer((*SYSTEMCTL, "disable"), Result(1, "", "not loaded"))
    assert service_command.main(["uninstall", "--manager", "systemd"], runner=runner) == 0
    assert files_under(home) == []


def test_uninstall_dry_run_keeps_everything(
    home: Path, runner: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert service_command.main(["install", "--manager", "systemd"], runner=runner) == 0
    before, runner.calls = files_under(home), []
    assert (
        service_command.main(["uninstall", "--manager", "systemd", "--dry-run"], runner=runner) == 0
    )
    assert runner.calls == [] and files_under(home) == before
    assert f"would run: rm -f {unit_path(home)}" in capsys.readouterr().out


def test_launchd_install_commands_and_plist(home: Path, runner: Any) -> None:
    runner.tools.add("plutil")
    assert service_command.main(["install", "--manager", "launchd"], runner=runner) == 0
    uid, plist = os.getuid(), home / "Library" / "LaunchAgents" / f"{LABEL}.plist"
    assert runner.calls == [
        ("launchctl", "bootout", f"gui/{uid}/{LABEL}"),
        ("plutil", "-lint", str(plist)),
        ("launchctl", "bootstrap", f"gui/{uid}", str(plist)),
        ("launchctl", "kickstart", "-k", f"gui/{uid}/{LABEL}"),
    ]
    loaded = plistlib.loads(plist.read_bytes())
    assert loaded["Label"] == LABEL
    # no home named at install: the daemon follows the config file's homes
    assert "CODEX_HOME" not in loaded["EnvironmentVariables"]
    assert "--codex-home" not in loaded["ProgramArguments"]
    log_dir = home / "Library" / "Logs" / "codex-indexd"
    assert stat.S_IMODE(log_dir.stat().st_mode) == 0o700


def test_launchd_install_without_plutil_retries_a_busy_bootstrap(
    home: Path, runner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "sleep", lambda _: None)
    answers = iter([Result(5, "", "Bootstrap failed: 5: Input/output error"), Result(0)])
    runner.responders.append(
        lambda argv: next(answers) if argv[:2] == ("launchctl", "bootstrap") else None
    )
    assert service_command.main(["install", "--manager", "launchd"], runner=runner) == 0
    verbs = [call[1] for call in runner.calls]
    assert verbs == ["bootout", "bootstrap", "bootout", "bootstrap", "kickstart"]
    assert not any(call[0] == "plutil" for call in runner.calls)


def test_launchd_uninstall(home: Path, runner: Any) -> None:
    assert service_command.main(["install", "--manager", "launchd"], runner=runner) == 0
    runner.calls.clear()
    assert service_command.main(["uninstall", "--manager", "launchd"], runner=runner) == 0
    assert runner.calls == [("launchctl", "bootout", f"gui/{os.getuid()}/{LABEL}")]
    assert not (home / "Library" / "LaunchAgents" / f"{LABEL}.plist").exists()


SHOW = """LoadState=loaded
UnitFileState=enabled
ActiveState={state}
SubState={sub}
MainPID={pid}
StatusText=watching 3 dirs
NRestarts=2
Result=success
"""


@pytest.mark.parametrize(
    ("state", "sub", "pid", "code"), [("active", "running", 4242, 0), ("failed", "failed", 0, 3)]
)
def test_systemd_status(
    home: Path,
    runner: Any,
    capsys: pytest.CaptureFixture[str],
    *,
    state: str,
    sub: str,
    pid: int,
    code: int,
) -> None:
    runner.answer((*SYSTEMCTL, "show"), Result(0, SHOW.format(state=state, sub=sub, pid=pid)))
    runner.answer((*SYSTEMCTL, "is-active"), Result(0 if code == 0 else 3, state + "\n"))
    runner.answer(("loginctl",), Result(0, "Linger=yes\n"))
    assert service_command.main(["status", "--manager", "systemd"], runner=runner) == code
    out = capsys.readouterr().out
    assert f"state:      {state} ({sub})" in out
    assert "restarts:   2" in out and "watching 3 dirs" in out
    assert ("main PID:   4242" in out) is (code == 0)


def test_launchd_status(home: Path, runner: Any, capsys: pytest.CaptureFixture[str]) -> None:
    printed = f"gui/501/{LABEL} = {{\n\tactive count = 1\n\tstate = running\n\tpid = 77\n}}\n"
    runner.answer(("launchctl", "print"), Result(0, printed))
    assert service_command.main(["status", "--manager", "launchd"], runner=runner) == 0
    out = capsys.readouterr().out
    assert "state:      running" in out and "pid:        77" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--dry-run"],
        ["status", "--python", "/usr/bin/python3"],
        ["print", "--dry-run"],
        ["print", "--allow-ephemeral"],
        ["status", "--allow-ephemeral"],
        ["uninstall", "--python", "/usr/bin/python3"],
    ],
)
def test_options_that_do_nothing_are_not_offered(
    home: Path, runner: Any, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        service_command.main([*argv, "--manager", "systemd"], runner=runner)
    assert exited.value.code == 2 and runner.calls == []
    assert "unrecognized arguments" in capsys.readouterr().err


def test_bad_codex_home_is_an_error(home: Path, runner: Any) -> None:
    assert (
        service_command.main(
            ["install", "--manager", "systemd", "--codex-home", "/a\nb"], runner=runner
        )
        == 2
    )
    assert runner.calls == [] and files_under(home) == []


def test_install_without_a_reachable_user_manager_starts_the_daemon_in_the_background(
    home: Path, runner: Any, monkeypatch: Any
) -> None:
    from codex_indexd_service import background
    from codex_indexd_service.command_runner import Result

    started: list[Path] = []

    def start_detached(ctx: Any, link: Any, out: Any) -> int:
        started.append(ctx.codex_home)
        return 0

    monkeypatch.setattr(background, "start_detached", start_detached)
    runner.answer(
        ("systemctl", "--user", "show-environment"), Result(1, "", "Failed to connect to bus")
    )
    link = DaemonLink(home / "log", lambda h: h / "lock", lambda lock: None)
    assert service_command.main(["install", "--manager", "systemd"], runner=runner, link=link) == 0
    assert len(started) == 1
    assert runner.calls == [("systemctl", "--user", "show-environment")]  # nothing else attempted
    assert files_under(home) == []


def test_install_says_how_the_daemon_rereads_its_homes(
    home: Path, runner: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no home baked in, install says how to apply an edited config file: through the
    service manager, or by signalling the background daemon (no user manager)."""
    from codex_indexd_service import background

    assert service_command.main(["install", "--manager", "systemd"], runner=runner) == 0
    assert "`systemctl --user kill -s HUP codex-indexd` applies it" in capsys.readouterr().out
    monkeypatch.setattr(background, "start_detached", lambda ctx, link, out: 0)
    runner.answer(("systemctl", "--user", "show-environment"), Result(1, "", "no bus"))
    link = DaemonLink(home / "log", lambda h: h / "lock", lambda lock: 4242)
    assert service_command.main(["install", "--manager", "systemd"], runner=runner, link=link) == 0
    out = capsys.readouterr().out
    assert "`kill -HUP 4242` applies it" in out and "systemctl" not in out


def test_codex_home_in_the_installing_shell_is_said_to_pin_the_service(
    home: Path, runner: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CODEX_HOME", str(home / ".codex"))
    assert service_command.main(["install", "--manager", "systemd"], runner=runner) == 0
    err = capsys.readouterr().err
    assert f"CODEX_HOME is set in this shell ({home / '.codex'})" in err
    assert "env -u CODEX_HOME codex-indexd service install" in err
    assert "--codex-home" in unit_path(home).read_text()


def test_without_the_daemons_link_no_reachable_manager_is_an_error(
    home: Path, runner: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m codex_indexd_service` knows nothing of the daemon's files, so it cannot
    start one in the background; it says so instead of guessing where the lock is."""
    runner.answer(
        ("systemctl", "--user", "show-environment"), Result(1, "", "Failed to connect to bus")
    )
    assert service_command.main(["install", "--manager", "systemd"], runner=runner) == 1
    assert "no user service manager is reachable" in capsys.readouterr().err
    assert files_under(home) == []


def test_without_a_user_manager_install_and_uninstall_start_and_stop_a_real_daemon(
    home: Path, runner: Any, tmp_path: Path, monkeypatch: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's install command in a container, then `service uninstall`: the background
    daemon must really start, and really stop (it holds its instance lock until it exits)."""
    from codex_indexd.cli import _daemon_link
    from codex_indexd.store.files import OurFiles
    from codex_indexd.store.status_file import read_status
    from codex_indexd.write.locks import holder_pid
    from codex_indexd_service.command_runner import Result

    def instance_lock_path(home: Path) -> Path:
        return OurFiles.for_home(home).instance_lock

    def main(argv: list[str]) -> int:
        return service_command.main(argv, runner=runner, link=_daemon_link())

    for name in ("STATE", "CACHE", "LOG"):
        monkeypatch.setenv(f"CODEX_INDEXD_{name}_DIR", str(tmp_path / name.lower()))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[3]))
    codex_home = tmp_path / "codex"
    codex_home.mkdir()
    runner.answer(
        ("systemctl", "--user", "show-environment"), Result(1, "", "Failed to connect to bus")
    )
    args = ["--manager", "systemd", "--codex-home", str(codex_home)]
    assert main(["install", *args]) == 0
    pid = holder_pid(instance_lock_path(codex_home))
    assert pid is not None and "started in the background" in capsys.readouterr().out
    # what it is, with exit 0 while it runs; and the daemon's own record says who started it
    status_args = ["--manager", "systemd", "--codex-home", str(codex_home)]
    assert main(["status", *status_args]) == 0
    out = capsys.readouterr().out
    assert (
        f"running in the background (pid {pid})" in out
        and out.count("\nmanager:") + out.startswith("manager:") == 1
    )
    assert "not installed" not in out
    from tests.support.waiting import wait_for

    record = wait_for(lambda: read_status(codex_home), 15, "the daemon's status record")
    assert record["service_manager"].startswith("service install (background")
    # install again (an upgrade): the daemon is restarted, not left running old code
    assert main(["install", *args]) == 0
    assert "Restarting the background daemon" in capsys.readouterr().out
    new_pid = holder_pid(instance_lock_path(codex_home))
    assert new_pid is not None and new_pid != pid
    pid = new_pid
    assert main(["uninstall", *args]) == 0
    assert f"Stopped the background codex-indexd daemon (pid {pid})" in capsys.readouterr().out
    assert main(["status", *status_args]) == 3
    assert holder_pid(instance_lock_path(codex_home)) is None
    assert main(["uninstall", *args]) == 0
    assert "nothing to stop" in capsys.readouterr().out


def test_a_misspelled_command_gets_a_suggestion(
    runner: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert service_command.main(["instal"], runner=runner) == 2
    assert "did you mean 'install'?" in capsys.readouterr().err
    from codex_indexd.cli import main as top_main

    assert top_main(["stauts"]) == 2
    assert "did you mean 'status'?" in capsys.readouterr().err
