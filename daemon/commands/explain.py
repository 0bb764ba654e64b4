"""`codex-indexd explain <thread-id|name>`: why a thread is, or is not, visible in Codex."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from codex_indexd import logs
from codex_indexd.codex.home import CodexHome
from codex_indexd.diagnose import Finding, explain, find_threads, visible, visible_db_only
from codex_indexd.engine import gather

EXIT_VISIBLE, EXIT_HIDDEN, EXIT_UNKNOWN = 0, 1, 2


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "explain",
        help="say why a thread is or is not visible in Codex",
        description="Say why a thread is or is not listed by Codex (read-only). Exit status: "
        "0 when the default thread list ('codex resume') shows every matching thread, "
        "1 when one is hidden, 2 when no thread has that id or name.",
    )
    parser.add_argument("thread", help="a thread id or name")
    parser.add_argument("--codex-home", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.set_defaults(handler=main)


def _as_json(findings: list[Finding]) -> dict[str, Any]:
    return {
        "visible": visible(findings),
        "visible_db_only": visible_db_only(findings),
        "findings": [
            {"code": f.code, "hides": f.hides, "hides_db_only": f.hides_db_only,
             "message": f.message}
            for f in findings
        ],
    }


def _print_text(thread_id: str, findings: list[Finding]) -> None:
    shown = "visible" if visible(findings) else "HIDDEN"
    db_only = "shown" if visible_db_only(findings) else "hidden"
    print(f"thread {thread_id}: {shown} in Codex's default thread list ('codex resume'); "
          f"{db_only} in DB-only lists")
    for finding in findings:
        if finding.hides:
            marker = "✗"
        elif finding.hides_db_only:
            marker = "~"
        else:
            marker = "·"
        print(f"  {marker} [{finding.code}] {finding.message}")


def _quiet_logging() -> None:
    """Only errors, on stderr: explain is read-only and its output is the report."""
    from codex_indexd import logsetup

    logsetup.configure(level="error", log_file=False)


def main(args: argparse.Namespace) -> int:
    """Print the findings; exit 0 when the thread is visible, 1 when hidden, 2 when unknown."""
    logs.set_configure_hook(_quiet_logging)
    facts = gather(CodexHome.at(args.codex_home))
    ids = find_threads(facts, args.thread)
    if not ids:
        message = f"no thread with id or name {args.thread!r} in {facts.home.root}"
        if args.json:
            print(json.dumps({}))  # stdout stays parseable; the words go to stderr
            print(message, file=sys.stderr)
        else:
            print(message)
        return EXIT_UNKNOWN
    results = {tid: explain(facts, tid) for tid in ids}
    if args.json:
        print(json.dumps({tid: _as_json(f) for tid, f in results.items()}, indent=2))
    else:
        for tid, findings in results.items():
            _print_text(tid, findings)
    return EXIT_VISIBLE if all(visible(f) for f in results.values()) else EXIT_HIDDEN
