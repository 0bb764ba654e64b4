"""`codex-indexd run`: the foreground daemon the user service starts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from codex_indexd import settings as settings_mod
from codex_indexd.logs import get_logger

log = get_logger("codex_indexd.run")


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "run", help="watch Codex homes and keep their indexes right (foreground)"
    )
    parser.add_argument(
        "--codex-home",
        type=Path,
        action="append",
        default=None,
        help="a Codex home to watch (repeatable; default: config file, $CODEX_HOME, ~/.codex)",
    )
    parser.add_argument(
        "--debounce-ms", type=int, default=None, help="quiet period before a flush (default 300)"
    )
    parser.add_argument(
        "--poll", action="store_true", default=None, help="poll instead of using inotify/FSEvents"
    )
    parser.add_argument(
        "--once", action="store_true", help="one reconcile of every home, then exit"
    )
    parser.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"])
    parser.set_defaults(handler=main)


def cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "homes": [str(p) for p in args.codex_home] if args.codex_home else None,
        "watch.debounce_ms": args.debounce_ms,
        "watch.poll": True if args.poll else None,
        "log_level": args.log_level,
    }


def main(args: argparse.Namespace) -> int:
    """Run the daemon; exit 0 on SIGTERM/SIGINT, 2 on a bad config, 75 when already running."""
    from codex_indexd import logsetup
    from codex_indexd.runner import EXIT_ALREADY_RUNNING, Daemon, lock_holder_message
    from codex_indexd.write.locks import AlreadyRunning

    overrides = cli_overrides(args)
    try:
        resolved = settings_mod.load(overrides)
    except settings_mod.ConfigError as exc:
        print(f"codex-indexd: config error: {exc}", file=sys.stderr)
        return 2
    from codex_indexd import paths

    try:
        fixed = paths.secure_own_dirs()
    except OSError as exc:  # UnsafeOwnDir says which directory and what to do
        print(f"codex-indexd: {exc}", file=sys.stderr)
        return 2
    logsetup.configure(level=resolved["log_level"])
    for note in fixed:
        log.warning("own_dir.mode_fixed", detail=note)
    daemon = Daemon(resolved, reload=lambda: settings_mod.load(overrides))
    try:
        daemon.acquire_locks()
    except AlreadyRunning as exc:
        print(f"codex-indexd: {lock_holder_message(exc)}", file=sys.stderr)
        log.error("daemon.already_running", pid=exc.pid, lock=str(exc.path))
        return EXIT_ALREADY_RUNNING
    try:
        if args.once:
            return daemon.run_once()
        daemon.install_signals()
        return daemon.run()
    finally:
        daemon.release_locks()
