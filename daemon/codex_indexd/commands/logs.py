"""``codex-indexd logs [-f] [-n N] [--level L] [--event GLOB] [--since 10m|ISO] [--json]``."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol, TextIO

from codex_indexd.log.entries import (
    LEVELS,
    Entry,
    Filter,
    format_entry,
    level_name,
    parse_line,
    parse_since,
)
from codex_indexd.log.follow import Follower, read_lines, rotated_files
from codex_indexd.store.files import log_file as default_log_file


class JournalHint(Protocol):
    """Return where else the daemon's output is (the service manager's journal), or None."""

    def __call__(
        self, *, follow: bool, lines: int | None, since: datetime | None, level: str | None
    ) -> str | None: ...


def _build_parser(log_file: Path) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codex-indexd logs",
        description="Show codex-indexd's JSON log (and its rotations).",
        epilog="examples:\n  codex-indexd logs -n 50 --level warning\n"
        "  codex-indexd logs -f --event 'index.*'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new entries, across log rotation"
    )
    parser.add_argument(
        "-n",
        "--lines",
        type=int,
        metavar="N",
        help="only the last N matching entries (default: all; 10 with -f)",
    )
    parser.add_argument(
        "--level",
        type=level_name,
        choices=tuple(LEVELS),
        metavar="L",
        help="minimum level: debug, info, warning, error, critical",
    )
    parser.add_argument(
        "--event",
        action="append",
        default=[],
        metavar="GLOB",
        help="only events matching GLOB, e.g. 'index.*' (repeatable)",
    )
    parser.add_argument(
        "--since",
        type=parse_since,
        metavar="10m|ISO",
        help="only entries newer than a duration ago or an ISO-8601 time",
    )
    parser.add_argument("--json", action="store_true", help="print the raw JSON lines")
    parser.add_argument("--utc", action="store_true", help="show times in UTC, not local time")
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour output (default: only on a terminal)",
    )
    parser.add_argument(
        "--file",
        type=Path,
        metavar="PATH",
        help="log file to read (default: %(default)s; $CODEX_INDEXD_LOG_DIR moves it)",
        default=log_file,
    )
    parser.add_argument("--interval", type=float, default=0.25, help=argparse.SUPPRESS)
    return parser


def _use_color(choice: str, out: TextIO) -> bool:
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return out.isatty()


def _journal_hint(args: argparse.Namespace, hint: JournalHint | None, err: TextIO) -> None:
    if hint is None:
        return
    text = hint(follow=args.follow, lines=args.lines, since=args.since, level=args.level)
    if text:
        print(text, file=err)


def _emit(entries: Iterable[Entry], args: argparse.Namespace, out: TextIO, color: bool) -> None:
    for entry in entries:
        out.write(
            (entry.raw if args.json else format_entry(entry, color=color, utc=args.utc)) + "\n"
        )
    out.flush()


def _matching(lines: Iterable[str], keep: Filter) -> Iterable[Entry]:
    for line in lines:
        entry = parse_line(line)
        if entry is not None and keep(entry):
            yield entry


def main(
    argv: Sequence[str] | None = None,
    *,
    hint: JournalHint | None = None,
    stop: threading.Event | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    log_file: Path | None = None,
) -> int:
    """Print matching log entries; with ``-f`` keep following until *stop* or Ctrl-C.

    *log_file* defaults to the daemon's log; *hint* says where else its output is (the
    service manager's journal). Returns the exit code."""
    out, err = out or sys.stdout, err or sys.stderr
    args = _build_parser(log_file or default_log_file()).parse_args(argv)
    try:
        return _run(args, hint, stop, out, err)
    except BrokenPipeError:  # `codex-indexd logs | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _run(
    args: argparse.Namespace,
    hint: JournalHint | None,
    stop: threading.Event | None,
    out: TextIO,
    err: TextIO,
) -> int:
    keep = Filter(LEVELS.get(args.level or "", 0), tuple(args.event), args.since)
    color = _use_color(args.color, out)
    base: Path = args.file
    _journal_hint(args, hint, err)
    if not args.follow and not base.exists() and not rotated_files(base):
        print(f"no log file at {base} (has the daemon run yet?)", file=err)
        return 1
    count = args.lines if args.lines is not None else (10 if args.follow else None)
    with Follower(base) as follower:
        backlog: Iterable[str] = [
            *(line for path in rotated_files(base) for line in read_lines(path)),
            *follower.poll(),
        ]
        if not args.follow:
            backlog = [*backlog, *follower.rest()]
        tail: Iterable[Entry] = _matching(backlog, keep)
        if count is not None:
            tail = deque(tail, maxlen=max(count, 0))
        shown = list(tail)
        _emit(shown, args, out, color)
        if not shown and not args.json and not args.follow:
            print("-- No entries --", file=out)
        if args.follow:
            return _follow(follower, keep, args, out, color=color, stop=stop or threading.Event())
    return 0


def _follow(
    follower: Follower,
    keep: Filter,
    args: argparse.Namespace,
    out: TextIO,
    *,
    color: bool,
    stop: threading.Event,
) -> int:
    wait: Callable[[float], bool] = stop.wait
    try:
        while not wait(args.interval):
            _emit(_matching(follower.poll(), keep), args, out, color)
    except KeyboardInterrupt:
        pass
    return 0
