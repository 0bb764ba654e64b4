"""``codex-indexd service install|uninstall|status|print``."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from codex_indexd_service import background, launchd, systemd
from codex_indexd_service.command_runner import Runner, SubprocessRunner
from codex_indexd_service.context import Context, Manager, default_manager, resolve
from codex_indexd_service.daemon_link import DaemonLink
from codex_indexd_service.ephemeral import ephemeral_reason, refusal
from codex_indexd_service.manager import detect
from codex_indexd_service.render import render
from codex_indexd_service.steps import Step, apply

__all__ = ("build_parser", "main")


def _home_option(help_text: str) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--codex-home", metavar="PATH", help=help_text)
    return parent


def build_parser(prog: str = "codex-indexd service") -> argparse.ArgumentParser:
    """Return the argparse parser (``prog`` as the lead's CLI shows it)."""
    manager = argparse.ArgumentParser(add_help=False)
    manager.add_argument(
        "--manager",
        choices=("systemd", "launchd"),
        help="service manager (default: systemd on Linux, launchd on macOS)",
    )
    bake = _home_option(
        "bake this one Codex home into the service (default: none; the daemon watches "
        "the config file's homes, else ~/.codex, and re-reads them on SIGHUP)"
    )
    which = _home_option(
        "without a user service manager: the Codex home whose background daemon to look "
        "for (default: the config file's first home, else ~/.codex)"
    )
    python = argparse.ArgumentParser(add_help=False)
    python.add_argument(
        "--python", metavar="PATH", help="interpreter that runs the daemon (default: this one)"
    )
    ephemeral = argparse.ArgumentParser(add_help=False)
    ephemeral.add_argument(
        "--allow-ephemeral",
        action="store_true",
        help="install even from a throwaway environment (uvx, pipx run, a temporary venv)",
    )
    dry = argparse.ArgumentParser(add_help=False)
    dry.add_argument(
        "--dry-run",
        action="store_true",
        help="print every file and command instead of writing or running them",
    )
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run codex-indexd as a per-user service (systemd or launchd).",
        epilog=EXIT_STATUS + EXAMPLES["install"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text, parents in (
        (
            "install",
            "write the unit/agent, enable and start it; a re-install (after an upgrade, or a "
            "changed config) writes it again and restarts the daemon",
            [manager, bake, python, ephemeral, dry],
        ),
        ("uninstall", "stop and disable the service and remove its file", [manager, which, dry]),
        (
            "status",
            "show whether the service is installed and running (exit 0 running, 3 not)",
            [manager, which],
        ),
        ("print", "print the unit/agent file rendered for this machine", [manager, bake, python]),
    ):
        sub.add_parser(
            name,
            parents=parents,
            help=text,
            description=text,
            epilog=EXIT_STATUS + EXAMPLES[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    return parser


EXIT_STATUS = """\
exit status: 0 done (status: the daemon runs), 1 a step failed, 2 bad options or a refused
install, 3 (status) the daemon is not running.

"""
EXAMPLES = {
    "install": """\
examples:
  codex-indexd service install --dry-run
  codex-indexd service install            # again after an upgrade: restarts the daemon
""",
    "uninstall": """\
examples:
  codex-indexd service uninstall --dry-run
  codex-indexd service uninstall
""",
    "status": """\
examples:
  codex-indexd service status
  codex-indexd service status && echo running
""",
    "print": """\
examples:
  codex-indexd service print
  codex-indexd service print --manager launchd --codex-home ~/.codex
""",
}


NO_MANAGER = (
    "error: no user service manager is reachable here; `codex-indexd service {command}` "
    "runs the daemon in the background instead"
)


def _no_link(command: str) -> int:
    print(NO_MANAGER.format(command=command), file=sys.stderr)
    return 1


def _warn_setup(ctx: Context, err: TextIO) -> None:
    if not ctx.codex_home.is_dir():
        print(f"warning: {ctx.codex_home} is not a directory (yet)", file=err)
    this_python = Path(sys.executable).absolute() == ctx.python
    if this_python and importlib.util.find_spec("codex_indexd") is None:
        print(f"warning: {ctx.python} cannot import codex_indexd", file=err)


def _install_checks(ctx: Context, args: argparse.Namespace, err: TextIO) -> int:
    """Refuse an install from a throwaway environment (2; a dry run only says so) and say
    which homes the service will watch; return 0 when the install may go on."""
    reason = ephemeral_reason(ctx.python, None if args.python else sys.prefix)
    if reason and not args.allow_ephemeral:
        if not args.dry_run:
            print(refusal(reason), file=err)
            return 2
        print(f"warning: a real install would be refused: {reason}", file=err)
    _warn_setup(ctx, err)
    if ctx.baked_home and not args.codex_home:
        print(
            f"note: CODEX_HOME is set in this shell ({ctx.codex_home}), so the service is "
            "pinned to that one home and `homes` in the config file is not used; to follow "
            "the config file instead: env -u CODEX_HOME codex-indexd service install",
            file=err,
        )
    return 0


def _follow_hint(ctx: Context, background: bool, pid: int | None = None) -> str | None:
    """Return how to make the daemon re-read the config file's homes (None when a home is
    baked in): a signal to the background daemon `pid`, or through its service manager."""
    if ctx.baked_home:
        return None
    if background:
        reload = f"kill -HUP {pid}" if pid else "codex-indexd service install"
    elif ctx.manager == "systemd":
        reload = "systemctl --user kill -s HUP codex-indexd"
    else:
        reload = f"launchctl kill HUP {ctx.service_target}"
    return (
        "The daemon watches the homes in codex-indexd's config file (`codex-indexd config "
        f"show`); after editing it, `{reload}` applies it."
    )


def _install(ctx: Context, runner: Runner, link: DaemonLink | None, dry_run: bool) -> int:
    text = render(ctx)
    if not dry_run and not background.manager_reachable(ctx, runner):
        if link is None:
            return _no_link("install")
        code = background.start_detached(ctx, link, sys.stdout)
        hint = _follow_hint(ctx, True, link.holder_pid(link.lock_of(ctx.codex_home)))
        if code == 0 and hint:
            print(hint)
        return code
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
    hint = _follow_hint(ctx, False)
    if hint:
        print(hint)
    if not dry_run:
        print(
            "codex-indexd is installed and running; see `codex-indexd service status` "
            "and `codex-indexd logs -f`."
        )
    return 0


def _uninstall(ctx: Context, runner: Runner, link: DaemonLink | None, dry_run: bool) -> int:
    installed = ctx.manager == "systemd" and ctx.unit_path.exists()
    if not dry_run and not installed and not background.manager_reachable(ctx, runner):
        if link is None:
            return _no_link("uninstall")
        return background.stop_detached(ctx, link, sys.stdout)  # what `install` started instead
    if ctx.manager == "systemd":
        steps = systemd.uninstall_steps(ctx)
    else:
        steps = launchd.uninstall_steps(ctx)
    code = apply(steps, runner, sys.stdout, sys.stderr, dry_run=dry_run)
    if code == 0 and not dry_run:
        print("codex-indexd service removed.")
    return code


def _status(ctx: Context, runner: Runner, link: DaemonLink | None, dry_run: bool) -> int:
    if dry_run:
        queries = (
            ["systemctl --user show codex-indexd.service", f"loginctl show-user {ctx.user}"]
            if ctx.manager == "systemd"
            else [f"launchctl print {ctx.service_target}"]
        )
        for query in queries:
            print(f"would run: {query}  # read-only")
        return 0
    if ctx.manager == "systemd" and not background.manager_reachable(ctx, runner):
        if link is None:
            return _no_link("status")
        return background.status(ctx, link, sys.stdout)
    found = detect(runner=runner)
    print(f"manager:    {found.manager or 'none'} ({found.reason})")
    if ctx.manager == "systemd":
        return systemd.status(ctx, runner, sys.stdout)
    return launchd.status(ctx, runner, sys.stdout)


def main(
    argv: Sequence[str] | None = None,
    *,
    runner: Runner | None = None,
    link: DaemonLink | None = None,
) -> int:
    """Run the service CLI; return the exit code. `link` (the daemon's files and config, given
    by `codex-indexd service`) is needed only where no user service manager is reachable."""
    words = list(sys.argv[1:] if argv is None else argv)
    commands = ("install", "uninstall", "status", "print")
    if words and not words[0].startswith("-") and words[0] not in commands:
        import difflib

        close = difflib.get_close_matches(words[0], commands, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(
            f"codex-indexd service: unknown command {words[0]!r}{hint}; "
            f"commands: {', '.join(commands)}",
            file=sys.stderr,
        )
        return 2
    args = build_parser().parse_args(words)
    manager: Manager | None = args.manager or default_manager()
    if manager is None:
        print(f"error: no supported service manager on {sys.platform}", file=sys.stderr)
        return 2
    try:
        ctx = resolve(
            manager,
            codex_home=getattr(args, "codex_home", None),
            python=getattr(args, "python", None),
            configured_home=link.configured_home if link else None,
        )
        runner = runner or SubprocessRunner()
        if args.command == "print":
            sys.stdout.write(render(ctx))
            return 0
        if args.command == "install":
            refused = _install_checks(ctx, args, sys.stderr)
            if refused:
                return refused
            return _install(ctx, runner, link, args.dry_run)
        if args.command == "uninstall":
            return _uninstall(ctx, runner, link, args.dry_run)
        return _status(ctx, runner, link, False)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
