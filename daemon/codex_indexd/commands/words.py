"""Counts and codes as sentences people read: plurals, and what each drift code means.

The codes stay as they are in JSON; text output uses these words."""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# A count of `code` reads "<n> <words>".
DRIFT_WORDS = {
    "index_missing": (
        "thread missing from session_index.jsonl",
        "threads missing from session_index.jsonl",
    ),
    "index_stale_name": (
        "thread with an outdated name in session_index.jsonl",
        "threads with an outdated name in session_index.jsonl",
    ),
    "history_missing": ("prompt missing from history.jsonl", "prompts missing from history.jsonl"),
    "history_out_of_order": (
        "prompt older than history.jsonl's end",
        "prompts older than history.jsonl's end",
    ),
    "name_lost_in_db": ("thread whose name Codex's DB lost", "threads whose name Codex's DB lost"),
    "row_missing": ("rollout without a row in Codex's DB", "rollouts without a row in Codex's DB"),
    "row_stale": (
        "DB row pointing at a rollout that moved",
        "DB rows pointing at rollouts that moved",
    ),
}

# What a list of thread ids under a drift code is, when the code counts something else.
_IDS_LABELS = {
    "history_missing": "threads with prompts missing from history.jsonl",
    "history_out_of_order": "threads with prompts older than history.jsonl's end",
}

# The daemon's error kinds (`status --json` keeps the kind) as the start of a sentence.
ERROR_WORDS = {
    "disk_full": "the disk is full ({detail}); writes are retried when space returns",
    "write_failed": "a write failed: {detail}",
    "unsafe_target": "a write was refused: {detail}",
    "flapping": "another writer keeps undoing our repairs of {detail}",
}


def plural(count: int, one: str, many: str | None = None) -> str:
    """Return "1 thread", "2 threads" (`many` for irregular plurals)."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


def drift_sentence(counts: Mapping[str, int]) -> str:
    """Return drift counts in words, e.g. "2 threads missing from session_index.jsonl,
    1 prompt missing from history.jsonl"; "none" when empty."""
    parts = []
    for code, count in sorted(counts.items()):
        if not count:
            continue
        one, many = DRIFT_WORDS.get(code, (code.replace("_", " "), code.replace("_", " ")))
        parts.append(plural(count, one, many))
    return ", ".join(parts) if parts else "none"


def ids_label(code: str) -> str:
    """Return what a list of thread ids under drift `code` is, e.g. "threads missing from
    session_index.jsonl"."""
    if code in _IDS_LABELS:
        return _IDS_LABELS[code]
    return DRIFT_WORDS.get(code, ("", code.replace("_", " ")))[1]


def error_sentence(kind: str, detail: str | None, at: str | None) -> str:
    """Return a daemon error (`kind` as `status --json` has it) as a sentence."""
    template = ERROR_WORDS.get(kind, kind.replace("_", " ") + ": {detail}")
    return template.format(detail=detail or "?") + (f" (at {at})" if at else "")


def add_codex_homes_argument(parser: Any, verb: str, default: str) -> None:
    """Add the repeatable `--codex-home PATH` option: "a Codex home to `verb` (repeatable;
    default: `default`)"; the paths land in `args.codex_home` (None when not given)."""
    parser.add_argument(
        "--codex-home",
        type=Path,
        action="append",
        default=None,
        metavar="PATH",
        help=f"a Codex home to {verb} (repeatable; default: {default})",
    )


def parse_command_line(parser: argparse.ArgumentParser, args: Sequence[str]) -> argparse.Namespace:
    """Return `parser.parse_args(args)`. On a usage error (SystemExit 2, the usage and the
    error on stderr as always) of a command line that asks for `--json`, also print
    `{"ok": false, "status": "failed", "exit_code": 2, "error": ...}` on stdout: a script that
    parses stdout gets JSON on every path."""
    real, buffer = sys.stderr, io.StringIO()
    sys.stderr = buffer
    try:
        return parser.parse_args(args)
    except SystemExit as exc:
        if exc.code == 2 and "--json" in args:
            import json

            lines = buffer.getvalue().strip().splitlines()
            error = lines[-1].split(": error: ", 1)[-1] if lines else "bad command line"
            payload = {"ok": False, "status": "failed", "exit_code": 2, "error": error}
            print(json.dumps(payload))
        raise
    finally:
        sys.stderr = real
        real.write(buffer.getvalue())
