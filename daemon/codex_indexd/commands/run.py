"""`codex-indexd run`: the foreground daemon the user service starts."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from codex_indexd.config import settings as settings_mod
from codex_indexd.log import get_logger

log = get_logger("codex_indexd.run")
EXIT_USAGE = 2


def cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "homes": [str(p) for p in args.codex_home] if args.codex_home else None,
        "watch.debounce_ms": args.debounce_ms,
        "watch.poll": True if args.poll else None,
        "log_level": args.log_level,
    }


def warn_fixed_homes(resolved: settings_mod.Settings) -> settings_mod.Settings:
    """Log when the config file's `homes` are not used (--codex-home or CODEX_HOME fixed
    them, e.g. in a service installed with one home); return `resolved`."""
    if "homes" in resolved.shadowed:
        log.warning(
            "config.homes_ignored",
            file_line=resolved.shadowed["homes"],
            by=resolved.sources["homes"],
            detail="the homes in the config file are not used: --codex-home or CODEX_HOME "
            "names them; reinstall the service without either to follow the config file",
        )
    return resolved


def main(args: argparse.Namespace) -> int:
    """Run the daemon; exit 0 on SIGTERM/SIGINT, 2 on a bad config, 75 when already running."""
    from codex_indexd.commands.home_check import MISSING
    from codex_indexd.daemon.loop import Daemon
    from codex_indexd.daemon.malloc_tuning import fix_mmap_threshold
    from codex_indexd.daemon.service_env import EXIT_ALREADY_RUNNING, lock_holder_message
    from codex_indexd.log import setup as logsetup
    from codex_indexd.write.locks import AlreadyRunning

    fix_mmap_threshold()  # before the large tables of the start are built
    overrides = cli_overrides(args)
    try:
        resolved = settings_mod.load(overrides)
    except settings_mod.ConfigError as exc:
        print(f"codex-indexd: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from codex_indexd.store import dirs

    try:
        fixed = dirs.secure_own_dirs()
    except OSError as exc:  # UnsafeOwnDir says which directory and what to do
        print(f"codex-indexd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logsetup.configure(level=resolved.log_level)
    for note in fixed:
        log.warning("own_dir.mode_fixed", detail=note)
    warn_fixed_homes(resolved)
    daemon = Daemon(resolved, reload=lambda: warn_fixed_homes(settings_mod.load(overrides)))
    for problem in daemon.check_homes():
        if args.once or problem.code != MISSING:
            print(f"codex-indexd: {problem.sentence}", file=sys.stderr)
    if not daemon.settings.homes:
        print("codex-indexd: no Codex home left to serve; nothing to do.", file=sys.stderr)
        return EXIT_USAGE
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
