"""`codex-indexd config show|path|keys`: the effective configuration and where each value
came from."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from pathlib import Path
from typing import Any

from codex_indexd.commands.words import parse_command_line
from codex_indexd.config import settings as settings_mod
from codex_indexd.store import dirs
from codex_indexd.store.files import backups_root

ACTIONS = ("show", "path")
EPILOG = """\
Precedence: command line, then environment, then the config file, then defaults.
exit status: 0, or 2 on a bad config file (the message names the key and its line).

examples:
  codex-indexd config
  codex-indexd config show --json | jq '."watch.debounce_ms"'
  $EDITOR "$(codex-indexd config path)"
"""


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of `codex-indexd config`."""
    parser = argparse.ArgumentParser(
        prog="codex-indexd config",
        description="Show codex-indexd's effective configuration, or where its file is.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    show = sub.add_parser(
        "show",
        help="print every setting, its value, its environment variable and where it came from "
        "(the default action)",
        description="Print every setting, its value, where it came from (default, "
        "file:LINE, env:NAME, cli) and its environment variable, then our own directories "
        "and the variables that move them.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument(
        "--codex-home",
        type=Path,
        action="append",
        default=None,
        metavar="PATH",
        help="show the configuration as if this home were given on the command line",
    )
    show.add_argument(
        "--json",
        action="store_true",
        help='print {key: {"value": typed value, "source": ..., "env": NAME}} as JSON',
    )
    sub.add_parser(
        "path",
        help="print the config file's path (it may not exist yet)",
        description="Print the config file's path ($CODEX_INDEXD_CONFIG, else platformdirs' "
        "user config directory); it may not exist yet.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    if argv and not argv[0].startswith("-") and argv[0] not in ACTIONS:
        close = difflib.get_close_matches(argv[0], ACTIONS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(f"codex-indexd config: unknown action {argv[0]!r}{hint}", file=sys.stderr)
        return 2
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["show", *argv]  # `config` alone shows the configuration
    args = parse_command_line(parser, argv)
    try:
        cli = (
            {"homes": [str(p) for p in args.codex_home]}
            if getattr(args, "codex_home", None)
            else {}
        )
        resolved = settings_mod.load(cli)
    except settings_mod.ConfigError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"error": str(exc)}))
        print(f"codex-indexd: config error: {exc}", file=sys.stderr)
        return 2
    if args.action == "path":
        print(resolved.file)
        return 0
    if args.json:
        print(json.dumps(as_json(resolved), indent=2))
        return 0
    print_text(resolved)
    return 0


def as_json(resolved: settings_mod.Settings) -> dict[str, Any]:
    """Return every setting with its typed value, source and environment variable."""
    out: dict[str, Any] = {
        spec.key: {
            "value": settings_mod.typed(resolved.value(spec.key)),
            "source": resolved.sources[spec.key],
            "env": spec.env,
            "help": spec.help,
        }
        for spec in settings_mod.SPECS
    }
    out["_files"] = {
        "config_file": str(resolved.file),
        "config_file_exists": bool(resolved.file and resolved.file.exists()),
        "state_dir": str(dirs.state_dir()),
        "cache_dir": str(dirs.cache_dir()),
        "log_dir": str(dirs.log_dir()),
        "backups_dir": str(backups_root()),
        "env": {name: os.environ.get(name) for name, _ in settings_mod.PATH_VARIABLES},
    }
    return out


def print_text(resolved: settings_mod.Settings) -> None:
    from codex_indexd.commands.home_check import check_home

    print(
        f"# config file: {resolved.file}"
        + ("" if resolved.file and resolved.file.exists() else " (absent)")
    )
    print(f"# state dir: {dirs.state_dir()}")
    print(f"# backups: {backups_root()}/<home>/")
    print(f"# cache dir: {dirs.cache_dir()}")
    print(f"# log dir: {dirs.log_dir()}")
    rows = settings_mod.describe(resolved)
    width = max(len(key) for key, _, _ in rows)
    value_width = min(40, max(len(value) for _, value, _ in rows))
    source_width = max(len(source) for _, _, source in rows) + 2
    for spec, (key, value, source) in zip(settings_mod.SPECS, rows, strict=True):
        where = f"({source})"
        print(f"{key:<{width}}  {value:<{value_width}}  {where:<{source_width}}  ${spec.env}")
    for key, where in resolved.shadowed.items():
        print(
            f"# note: {key} at {resolved.file}:{where.removeprefix('file:')} is not used: "
            f"{resolved.sources[key]} sets it"
        )
    for home in resolved.homes:
        problem = check_home(home)
        if problem is not None:
            print(f"# warning: {problem.sentence}")
    print("# environment variables for our own files:")
    for name, what in settings_mod.PATH_VARIABLES:
        setting = os.environ.get(name)
        print(f"#   {name:<24} {what}" + (f" (set: {setting})" if setting else ""))
    print("# environment variables you need not set:")
    for name, what in settings_mod.INTERNAL_VARIABLES:
        print(f"#   {name:<24} {what}")
