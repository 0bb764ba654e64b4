"""`codex-indexd config show`: the effective configuration and where each value came from."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from codex_indexd import paths
from codex_indexd import settings as settings_mod


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="codex-indexd config")
    sub = parser.add_subparsers(dest="action", required=True)
    show = sub.add_parser("show", help="print the effective configuration")
    show.add_argument("--codex-home", type=Path, action="append", default=None)
    show.add_argument("--json", action="store_true")
    sub.add_parser("path", help="print the config file's path")
    args = parser.parse_args(argv)
    try:
        cli = (
            {"homes": [str(p) for p in args.codex_home]}
            if getattr(args, "codex_home", None)
            else {}
        )
        resolved = settings_mod.load(cli)
    except settings_mod.ConfigError as exc:
        print(f"codex-indexd: config error: {exc}", file=sys.stderr)
        return 2
    if args.action == "path":
        print(resolved.file)
        return 0
    rows = settings_mod.describe(resolved)
    if args.json:
        print(
            json.dumps(
                {key: {"value": value, "source": source} for key, value, source in rows}, indent=2
            )
        )
        return 0
    print(
        f"# config file: {resolved.file}"
        + ("" if resolved.file and resolved.file.exists() else " (absent)")
    )
    print(f"# state dir: {paths.state_dir()}")
    print(f"# cache dir: {paths.cache_dir()}")
    print(f"# log dir: {paths.log_dir()}")
    width = max(len(key) for key, _, _ in rows)
    for key, value, source in rows:
        print(f"{key:<{width}}  {value}  ({source})")
    return 0
