"""`codex-indexd explain <thread-id|name>`: why a thread is, or is not, visible in Codex."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from codex_indexd import logs
from codex_indexd.codex.home import CodexHome
from codex_indexd.diagnose import explain, find_threads, visible
from codex_indexd.engine import gather


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("explain", help="say why a thread is or is not visible in Codex")
    parser.add_argument("thread", help="a thread id or name")
    parser.add_argument("--codex-home", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Print the findings; exit 0 when the thread is visible, 1 when hidden, 2 when unknown."""
    logs.set_configure_hook(lambda: __import__("codex_indexd.logsetup").logsetup.configure(level="error", log_file=False))
    facts = gather(CodexHome.at(args.codex_home))
    ids = find_threads(facts, args.thread)
    if not ids:
        print(f"no thread with id or name {args.thread!r} in {facts.home.root}")
        return 2
    results = {tid: explain(facts, tid) for tid in ids}
    if args.json:
        print(json.dumps({tid: {"visible": visible(f), "findings": [{"code": x.code, "hides": x.hides,
                                                                       "message": x.message} for x in f]}
                          for tid, f in results.items()}, indent=2))
    else:
        for tid, findings in results.items():
            print(f"thread {tid}: {'visible' if visible(findings) else 'HIDDEN'} in Codex's default lists")
            for finding in findings:
                marker = "✗" if finding.hides else "·"
                print(f"  {marker} [{finding.code}] {finding.message}")
    return 0 if all(visible(f) for f in results.values()) else 1
