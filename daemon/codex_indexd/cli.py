"""`codex-indexd` command line: one module per subcommand, each `main(args) -> int`."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from codex_indexd import __version__

if TYPE_CHECKING:
    import argparse

    from codex_indexd.codex.scan_queue import StartedScan
    from codex_indexd_service.daemon_link import DaemonLink

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


PARSED_HERE = ("repair", "run", "explain")
"""The commands whose options this parser holds (the others parse their own)."""
PASSED_THROUGH = ("status", "logs", "service", "config", "report")
COMMANDS = (*PARSED_HERE, *PASSED_THROUGH)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Return the parser with every subcommand registered; with `only` (one of PARSED_HERE),
    with that subcommand alone. A command line that starts with that command parses, helps
    and fails exactly as with the whole parser (its usage names no subcommand), and the
    others' options are not built (each costs a formatter and a few catalogue lookups)."""
    import argparse

    from codex_indexd.commands.arguments import add_explain, add_repair, add_run

    parser = argparse.ArgumentParser(
        prog="codex-indexd",
        description="Keep Codex's session_index.jsonl and history.jsonl in step with its rollouts.",
        epilog="examples:\n  codex-indexd service install   # run the daemon as a user service\n"
        "  codex-indexd status            # is it running, is anything wrong?\n"
        "  codex-indexd COMMAND --help    # options and exit codes of one command",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"codex-indexd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    adders = {"repair": add_repair, "run": add_run, "explain": add_explain}
    if only is not None:
        adders[only](sub)
        return parser
    for add in adders.values():
        add(sub)
    for name, help_text in (
        ("status", "show whether the daemon runs and what is wrong"),
        ("logs", "show the daemon's log"),
        ("service", "install, remove or inspect the user service"),
        ("config", "show the effective configuration"),
        ("report", "write a redacted diagnostic report for a bug report"),
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
        from codex_indexd.log import set_configure_hook

        set_configure_hook(None)


def _main(argv: Sequence[str] | None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in PASSED_THROUGH:
        return _passthrough(args_list[0], args_list[1:])
    if args_list and not args_list[0].startswith("-") and args_list[0] not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(args_list[0], COMMANDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(
            f"codex-indexd: unknown command {args_list[0]!r}{hint}; "
            f"commands: {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    command = args_list[0] if args_list and args_list[0] in PARSED_HERE else None
    early = _early_scan(args_list[1:]) if command == "repair" else None
    try:
        from codex_indexd.commands.words import parse_command_line

        parser = build_parser(command)
        args = parse_command_line(parser, args_list)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        if early is not None:
            args.early_scan = early
        result: int = args.handler(args)
        return result
    finally:
        if early is not None:
            early.discard()


def _early_scan(options: list[str]) -> StartedScan | None:
    """Begin the scan of the home `repair` most likely serves, before its options are even
    parsed (argparse and the rest of the command load while a child scans); `repair`
    checks that home against its options and config before it uses the scan."""
    from codex_indexd.commands.repair import likely_home, start_early

    return start_early(likely_home(options))


def _passthrough(command: str, rest: list[str]) -> int:
    if command == "service":
        from codex_indexd_service.service_command import main as service_main

        return service_main(rest, link=_daemon_link())
    if command == "logs":
        from codex_indexd.commands.logs import main as logs_main
        from codex_indexd_service.journal_hint import journal_hint

        return logs_main(rest, hint=journal_hint)
    if command == "status":
        from codex_indexd.commands.status import main as status_main

        return status_main(rest)
    if command == "report":
        from codex_indexd.commands.report import main as report_main

        return report_main(rest)
    from codex_indexd.commands.config_cmd import main as config_main

    return config_main(rest)


def _daemon_link() -> DaemonLink:
    """Return what `codex-indexd service` needs of the daemon: its log directory, a home's
    lock and its holder, and the config file's first home (None when the config is bad)."""
    from codex_indexd.config import settings as settings_mod
    from codex_indexd.store import dirs
    from codex_indexd.store.files import OurFiles
    from codex_indexd.write.locks import holder_pid
    from codex_indexd_service.daemon_link import DaemonLink

    try:
        homes = settings_mod.load().homes
    except settings_mod.ConfigError:
        homes = []
    return DaemonLink(
        log_dir=dirs.log_dir(),
        lock_of=lambda home: OurFiles.for_home(home).instance_lock,
        holder_pid=holder_pid,
        configured_home=homes[0] if homes else None,
    )


QUICK_EXIT = frozenset({"repair"})
"""Commands whose process ends as soon as it is done (`quick_exit`), with the cyclic
collector off throughout: what they built (a whole home's facts and plan) is neither walked
nor torn down object by object."""


def entry_point() -> None:
    """Console-script entry: exit with `main()`'s code (quietly when the reader went away)."""
    quick = sys.argv[1:2] != [] and sys.argv[1] in QUICK_EXIT
    if quick:
        import gc

        # Such a command keeps nearly everything it makes to its end, and its end is the
        # process's: the cyclic collector stays off from its imports on (it would only walk
        # those objects, once more when `paused_gc` ends), and `quick_exit` never frees them.
        gc.disable()
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    if quick:
        quick_exit(code)
    raise SystemExit(code)


def quick_exit(code: int) -> None:
    """End the process with `code` as the interpreter's exit would, without freeing what it
    holds: the exit functions run (logging's flushes and closes its handlers) and both
    standard streams are flushed (120 when one cannot be, as Python exits then). With a
    thread of ours still running, raise SystemExit(code) instead: a normal exit waits for
    it. Returns only by raising."""
    import _thread
    import atexit

    if _thread._count():  # threads started besides the main one, still running
        raise SystemExit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = 120
    os._exit(code)
