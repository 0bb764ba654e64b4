"""``codex-indexd service install|uninstall|status|print``."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from codex_indexd_service import background, launchd, systemd
from codex_indexd_service.manager import detect
from codex_indexd_service.paths import Context, Manager, default_manager, resolve
from codex_indexd_service.plan import Step, apply
from codex_indexd_service.render import render
from codex_indexd_service.runner import Runner, SubprocessRunner

__all__ = ("build_parser", "main")


def build_parser(prog: str = "codex-indexd service") -> argparse.ArgumentParser:
    """The argparse parser (``prog`` as the lead's CLI shows it)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--codex-home",
        metavar="P",
        help="Codex home to watch (default: $CODEX_HOME, else ~/.codex)",
    )
    common.add_argument(
        "--dry-run",
        action="store_true",
        help="print every file and command instead of writing or running them",
    )
    common.add_argument(
        "--manager",
        choices=("systemd", "launchd"),
        help="service manager (default: systemd on Linux, launchd on macOS)",
    )
    common.add_argument(
        "--python", metavar="PATH", help="interpreter that runs the daemon (default: this one)"
    )
    parser = argparse.ArgumentParser(
        prog=prog, description="Run codex-indexd as a per-user service (systemd or launchd)."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (
        ("install", "write the unit/agent, enable and (re)start it"),
        ("uninstall", "stop and disable the service and remove its file"),
        ("status", "show whether the service is installed and running"),
        ("print", "print the unit/agent file rendered for this machine"),
    ):
        sub.add_parser(name, parents=[common], help=text, description=text)
    return parser


def _warn_setup(ctx: Context, err: TextIO) -> None:
    if not ctx.codex_home.is_dir():
        print(f"warning: {ctx.codex_home} is not a directory (yet)", file=err)
    this_python = Path(sys.executable).absolute() == ctx.python
    if this_python and importlib.util.find_spec("codex_indexd") is None:
        print(f"warning: {ctx.python} cannot import codex_indexd", file=err)


def _install(ctx: Context, runner: Runner, dry_run: bool) -> int:
    text = render(ctx)
    if not dry_run and not background.manager_reachable(ctx, runner):
        from codex_indexd import paths

        return background.start_detached(ctx, paths.log_dir(), sys.stdout)
    steps: list[Step]
    if ctx.manager == "systemd":
        steps = systemd.install_steps(ctx, text, reinstall=ctx.unit_path.exists())
    else:
        steps = launchd.install_steps(ctx, text, has_plutil=runner.which("plutil") is not None)
    code = apply(steps, runner, sys.stdout, sys.stderr, dry_run=dry_run)
    if code:
        return code
    if ctx.manager == "systemd" and not systemd.linger_enabled(
        ctx.user, None if dry_run else runner
    ):
        print(systemd.linger_hint(ctx.user))
    if not dry_run:
        print(
            "codex-indexd is installed and running; see `codex-indexd service status` "
            "and `codex-indexd logs -f`."
        )
    return 0


def _uninstall(ctx: Context, runner: Runner, dry_run: bool) -> int:
    installed = ctx.manager == "systemd" and ctx.unit_path.exists()
    if not dry_run and not installed and not background.manager_reachable(ctx, runner):
        return background.stop_detached(ctx, sys.stdout)  # what `install` started instead
    if ctx.manager == "systemd":
        steps = systemd.uninstall_steps(ctx)
    else:
        steps = launchd.uninstall_steps(ctx)
    code = apply(steps, runner, sys.stdout, sys.stderr, dry_run=dry_run)
    if code == 0 and not dry_run:
        print("codex-indexd service removed.")
    return code


def _status(ctx: Context, runner: Runner, dry_run: bool) -> int:
    if dry_run:
        queries = (
            ["systemctl --user show codex-indexd.service", f"loginctl show-user {ctx.user}"]
            if ctx.manager == "systemd"
            else [f"launchctl print {ctx.service_target}"]
        )
        for query in queries:
            print(f"would run: {query}  # read-only")
        return 0
    found = detect(runner=runner)
    print(f"manager:    {found.manager or 'none'} ({found.reason})")
    if ctx.manager == "systemd":
        return systemd.status(ctx, runner, sys.stdout)
    return launchd.status(ctx, runner, sys.stdout)


def main(argv: Sequence[str] | None = None, *, runner: Runner | None = None) -> int:
    """Run the service CLI; returns the exit code."""
    args = build_parser().parse_args(argv)
    manager: Manager | None = args.manager or default_manager()
    if manager is None:
        print(f"error: no supported service manager on {sys.platform}", file=sys.stderr)
        return 2
    try:
        ctx = resolve(manager, codex_home=args.codex_home, python=args.python)
        runner = runner or SubprocessRunner()
        if args.command == "print":
            sys.stdout.write(render(ctx))
            return 0
        if args.command == "install":
            _warn_setup(ctx, sys.stderr)
            return _install(ctx, runner, args.dry_run)
        if args.command == "uninstall":
            return _uninstall(ctx, runner, args.dry_run)
        return _status(ctx, runner, args.dry_run)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
