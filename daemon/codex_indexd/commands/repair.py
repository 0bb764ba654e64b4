"""`codex-indexd repair`: one reconcile of a Codex home, run by hand.

Default is a non-destructive merge; `--rebuild` replaces the files like the seed script did.
This module is the command's start: the config, the home, and the rollouts listed and their
scan begun (on a large home a second process scans while this one imports the rest of the
command); `commands.repair_home` does the rest.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from codex_indexd.codex.home import CodexHome
from codex_indexd.log import get_logger, set_configure_hook

if TYPE_CHECKING:
    import argparse

    from codex_indexd.codex.scan_queue import StartedScan

log = get_logger("codex_indexd.repair")


def _failed(args: argparse.Namespace, root: Path, error: str, code: int = 1) -> int:
    """Report a repair that could not start: JSON with `error`, or the seed's two lines."""
    if args.json:
        report = {"status": "failed", "error": error, "codex_home": str(root)}
        print(json.dumps(report | {"dry_run": args.dry_run}, indent=2))
    else:
        print(f"status: failed\nerror: {error}")
    return code


def main(args: argparse.Namespace) -> int:
    """Run one repair; print the summary (or JSON, also on failure). Exit 0 on success,
    1 on failure, 2 on a bad config file. `args.early_scan` is the scan the command line
    began (`start_early`), if any: it is used when its home is the one repaired."""

    def configure_logging() -> None:
        from codex_indexd.log import setup as logsetup

        logsetup.configure(level=args.log_level, log_file=False)

    set_configure_hook(configure_logging)
    early: StartedScan | None = getattr(args, "early_scan", None)
    if early is None:
        early = start_early(CodexHome.at(args.codex_home) if args.codex_home else likely_home([]))
    try:
        home = _home_to_repair(args)
        if isinstance(home, int):
            return home
        if early is not None and early.home != home:
            early.discard()
            early = None
        return _start_and_repair(args, home, early)
    finally:
        if early is not None:
            early.discard()


def likely_home(options: Sequence[str]) -> CodexHome:
    """Return the home a `repair` with these (unparsed) options serves unless the config
    file names others: the last `--codex-home` given, else the first path of
    `$CODEX_HOME`, else ~/.codex. A guess: the parsed options decide."""
    given: str | None = None
    for i, option in enumerate(options):
        if option == "--":
            break
        if option == "--codex-home" and i + 1 < len(options):
            given = options[i + 1]
        elif option.startswith("--codex-home="):
            given = option.partition("=")[2]
    if given:
        return CodexHome.at(given)
    first = os.environ.get("CODEX_HOME", "").split(os.pathsep)[0]
    return CodexHome.at(first or None)


def start_early(home: CodexHome) -> StartedScan | None:
    """Begin the scan of `home` (`start_scan`) before the options and the config file are
    read: argparse, the config's reader and platformdirs, the planner and the state DB's
    reader are imported while the child scans. It logs nothing (logging is not set up yet,
    and the home may not be the one repaired): return None where it would log, or where
    the home is unusable; the scan is then begun, and what it meets reported, once the
    home is checked."""
    from codex_indexd.codex.scan_queue import start_scan
    from codex_indexd.commands.home_check import check_home

    if check_home(home.root) is not None:
        return None
    try:
        return start_scan(home, quiet=True)
    except OSError:
        return None


def _home_to_repair(args: argparse.Namespace) -> CodexHome | int:
    """Read the config file (into `args.settings`) and return the home to repair, or the
    exit code of a repair that cannot start (reported): 2 for a bad config file, 1 for a
    home that cannot be used."""
    from codex_indexd.commands.home_check import check_home
    from codex_indexd.config import settings as settings_mod

    try:
        args.settings = settings_mod.load()
    except settings_mod.ConfigError as exc:
        if not args.json:
            print(f"codex-indexd: config error: {exc}", file=sys.stderr)
        return _failed(args, CodexHome.at(args.codex_home).root, f"config error: {exc}", 2)
    home = CodexHome.at(args.codex_home or args.settings.homes[0])
    if args.codex_home is None and len(args.settings.homes) > 1:
        print(
            f"codex-indexd: repairing {home.root}, the first of {len(args.settings.homes)} "
            "configured homes; --codex-home names another",
            file=sys.stderr,
        )
    problem = check_home(home.root, "--codex-home" if args.codex_home else "")
    if problem is not None:
        return _failed(args, home.root, problem.sentence)
    return home


def _start_and_repair(
    args: argparse.Namespace, home: CodexHome, started: StartedScan | None
) -> int:
    """Begin the scan of the rollouts unless `started` did, then import and run the rest of
    the command; an OSError is reported as the repair's failure (exit 1)."""
    from codex_indexd.codex.scan_queue import start_scan
    from codex_indexd.collector import paused_gc

    # A repair makes a few objects per rollout and per thread and keeps nearly all of them
    # to its end: the cyclic collector would only walk them again and again (about 0.2 s of
    # CPU on 10,000 rollouts), and the imports below too. Reference counting still frees
    # everything that is dropped.
    with paused_gc():
        try:
            started = started or start_scan(home)
            from codex_indexd.commands.repair_home import repair_home

            return repair_home(args, home, started)
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            log.error("repair.failed", error=f"{type(exc).__name__}{where}")
            return _failed(args, home.root, f"{exc.strerror or exc}{where}")
        finally:
            if started is not None:
                started.discard()
