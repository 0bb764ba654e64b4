"""`codex-indexd` command line: one module per subcommand, each `main(args) -> int`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from codex_indexd import __version__

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every subcommand registered."""
    from codex_indexd.commands import explain, repair, run

    parser = argparse.ArgumentParser(
        prog="codex-indexd",
        description="Keep Codex's session_index.jsonl and history.jsonl in step with its rollouts.",
    )
    parser.add_argument("--version", action="version", version=f"codex-indexd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    repair.add_parser(sub)
    run.add_parser(sub)
    explain.add_parser(sub)
    for name, help_text in (
        ("status", "show whether the daemon runs and what is wrong"),
        ("logs", "show the daemon's log"),
        ("service", "install, remove or inspect the user service"),
        ("config", "show the effective configuration"),
    ):
        passthrough = sub.add_parser(name, help=help_text, add_help=False)
        passthrough.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` and run the subcommand; return its exit code."""
    try:
        return _main(argv)
    finally:
        # A command that logged nothing leaves its "configure logging on first use" hook
        # behind; it must not fire later in the same process (tests call main() in-process).
        from codex_indexd import logs

        logs.set_configure_hook(None)


def _main(argv: Sequence[str] | None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if args_list and args_list[0] in {"status", "logs", "service", "config"}:
        return _passthrough(args_list[0], args_list[1:])
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    result: int = args.handler(args)
    return result


def _passthrough(command: str, rest: list[str]) -> int:
    if command == "service":
        from codex_indexd_service.cli import main as service_main

        return service_main(rest)
    if command == "logs":
        from codex_indexd_service.logs import main as logs_main

        return logs_main(rest)
    if command == "status":
        from codex_indexd.commands.status import main as status_main

        return status_main(rest)
    from codex_indexd.commands.config_cmd import main as config_main

    return config_main(rest)


def entry_point() -> None:
    """Console-script entry: exit with `main()`'s code (quietly when the reader went away)."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    raise SystemExit(code)
