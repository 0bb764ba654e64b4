"""`codex-indexd explain <thread-id|name>`: why a thread is, or is not, visible in Codex."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from codex_indexd import logs
from codex_indexd.codex.home import CodexHome
from codex_indexd.diagnose import Finding, explain, find_threads, opens, visible, visible_in_scan
from codex_indexd.engine import gather

EXIT_VISIBLE, EXIT_HIDDEN, EXIT_UNKNOWN = 0, 1, 2


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "explain",
        help="say why a thread is or is not visible in Codex",
        description="Say why a thread is or is not listed by Codex (read-only). Exit status: "
        "0 when 'codex resume' shows every matching thread and Codex can open it, 1 when one "
        "is hidden or broken, 2 when no thread has that id or name.",
    )
    parser.add_argument("thread", help="a thread id or name")
    parser.add_argument("--codex-home", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.set_defaults(handler=main)


def _usable(findings: list[Finding]) -> bool:
    """`codex resume` shows the thread and Codex can open it."""
    return visible(findings) and opens(findings)


def _as_json(findings: list[Finding]) -> dict[str, Any]:
    return {
        "visible": visible(findings),
        "visible_in_scan": visible_in_scan(findings),
        "opens": opens(findings),
        "findings": [
            {
                "code": f.code,
                "hides": f.hides,
                "hides_in_scan": f.hides_in_scan,
                "breaks": f.breaks,
                "message": f.message,
            }
            for f in findings
        ],
    }


def _print_text(thread_id: str, findings: list[Finding]) -> None:
    if not visible(findings):
        state = "HIDDEN from 'codex resume'"
    elif not opens(findings):
        state = "listed by 'codex resume' but Codex cannot open it"
    else:
        state = "visible in 'codex resume'"
    scan = "shows" if visible_in_scan(findings) else "skips"
    print(f"thread {thread_id}: {state} (a scanning thread/list {scan} it)")
    for finding in findings:
        if finding.hides or finding.breaks:
            marker = "✗"
        elif finding.hides_in_scan:
            marker = "~"
        else:
            marker = "·"
        print(f"  {marker} [{finding.code}] {finding.message}")


def _quiet_logging() -> None:
    """Only errors, on stderr: explain is read-only and its output is the report."""
    from codex_indexd import logsetup

    logsetup.configure(level="error", log_file=False)


def main(args: argparse.Namespace) -> int:
    """Print the findings; exit 0 when every match is visible and opens, 1 when one is hidden
    or broken, 2 when nothing matches."""
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
    return EXIT_VISIBLE if all(_usable(f) for f in results.values()) else EXIT_HIDDEN
