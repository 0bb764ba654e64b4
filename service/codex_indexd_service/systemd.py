"""systemd user unit: install/uninstall plans, lingering, status."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from codex_indexd_service import UNIT_NAME
from codex_indexd_service.command_runner import Runner
from codex_indexd_service.context import Context
from codex_indexd_service.steps import MakeDir, RemoveFile, Run, Step, WriteFile

__all__ = (
    "LINGER_DIR",
    "SYSTEMCTL",
    "install_steps",
    "journal_command",
    "linger_enabled",
    "linger_hint",
    "show",
    "status",
    "uninstall_steps",
)

SYSTEMCTL = ("systemctl", "--user")
LINGER_DIR = Path("/var/lib/systemd/linger")
_SHOW_PROPS = (
    "LoadState",
    "UnitFileState",
    "ActiveState",
    "SubState",
    "MainPID",
    "StatusText",
    "NRestarts",
    "Result",
    "FragmentPath",
)


def install_steps(ctx: Context, unit_text: str, *, reinstall: bool) -> list[Step]:
    """Write the unit, reload, enable and start it; a re-install restarts it instead."""
    steps: list[Step] = [
        MakeDir(ctx.unit_dir),
        WriteFile(ctx.unit_path, unit_text, 0o644),
        Run((*SYSTEMCTL, "daemon-reload")),
    ]
    if reinstall:
        steps += [Run((*SYSTEMCTL, "enable", UNIT_NAME)), Run((*SYSTEMCTL, "restart", UNIT_NAME))]
    else:
        steps.append(Run((*SYSTEMCTL, "enable", "--now", UNIT_NAME)))
    return steps


def uninstall_steps(ctx: Context) -> list[Step]:
    """Stop and disable the unit, remove every file install made, reload the manager."""
    return [
        Run((*SYSTEMCTL, "disable", "--now", UNIT_NAME), ignore_errors=True),
        RemoveFile(ctx.wants_link),
        RemoveFile(ctx.unit_path),
        Run((*SYSTEMCTL, "daemon-reload")),
        Run((*SYSTEMCTL, "reset-failed", UNIT_NAME), ignore_errors=True),
    ]


def linger_enabled(user: str, runner: Runner | None, linger_dir: Path = LINGER_DIR) -> bool:
    """Whether *user*'s manager outlives their sessions (``loginctl``, else the flag file).

    With *runner* None (dry runs) only the flag file is looked at.
    """
    if runner is not None:
        result = runner.run(("loginctl", "show-user", user, "--property=Linger"))
        value = result.stdout.strip()
        if result.ok and value in ("Linger=yes", "Linger=no"):
            return value == "Linger=yes"
    return (linger_dir / user).exists()


def linger_hint(user: str) -> str:
    """What to tell a user whose daemon would stop at logout."""
    return (
        f"note: lingering is off for {user}: the user manager, and codex-indexd with it, "
        "starts at login and stops at logout.\n"
        "      To keep codex-indexd running without a session (and start it at boot), run:\n"
        f"        loginctl enable-linger {user}"
    )


def journal_command(
    *,
    follow: bool = False,
    priority: str | None = None,
    since: str | None = None,
    lines: int | None = None,
) -> list[str]:
    """The ``journalctl`` command for this unit (``--user-unit`` also works for UID < 1000)."""
    argv = ["journalctl", "--user-unit", UNIT_NAME]
    if lines is not None:
        argv += ["-n", str(lines)]
    if priority:
        argv += ["-p", priority]
    if since:
        argv += ["--since", since]
    if follow:
        argv.append("-f")
    return argv


def show(runner: Runner) -> dict[str, str]:
    """``systemctl --user show`` of the unit as a dict (empty if the manager is unreachable)."""
    result = runner.run((*SYSTEMCTL, "show", UNIT_NAME, "--property=" + ",".join(_SHOW_PROPS)))
    if not result.ok:
        return {}
    props: dict[str, str] = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key] = value
    return props


def status(ctx: Context, runner: Runner, out: TextIO) -> int:
    """Print the unit's state; 0 when it is active, 3 (LSB "not running") otherwise."""
    installed = ctx.unit_path.exists()
    print(
        f"unit file:  {ctx.unit_path} ({'installed' if installed else 'not installed'})", file=out
    )
    props = show(runner)
    if not props:
        print("manager:    systemctl --user is not reachable (no user manager?)", file=out)
        return 3
    state = f"{props.get('ActiveState', '?')} ({props.get('SubState', '?')})"
    print(f"enabled:    {props.get('UnitFileState') or 'not installed'}", file=out)
    print(f"state:      {state}", file=out)
    pid = props.get("MainPID", "0")
    if pid not in ("", "0"):
        print(f"main PID:   {pid}", file=out)
    if props.get("StatusText"):
        print(f"status:     {props['StatusText']}", file=out)
    print(f"restarts:   {props.get('NRestarts', '0')}", file=out)
    if props.get("Result") not in (None, "", "success"):
        print(f"last result: {props['Result']}", file=out)
    lingering = linger_enabled(ctx.user, runner)
    print(f"linger:     {'yes' if lingering else 'no (stops at logout)'}", file=out)
    if installed and not lingering:
        print(f"            enable with: loginctl enable-linger {ctx.user}", file=out)
    print(f"journal:    {' '.join(journal_command(follow=True))}", file=out)
    return 0 if props.get("ActiveState") == "active" else 3
