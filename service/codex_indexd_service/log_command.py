"""``codex-indexd logs [-f] [-n N] [--level L] [--event GLOB] [--since 10m|ISO] [--json]``."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, TextIO

from codex_indexd_service import UNIT_NAME
from codex_indexd_service.command_runner import Runner
from codex_indexd_service.context import resolve
from codex_indexd_service.logfile import Follower, read_lines, rotated_files
from codex_indexd_service.manager import detect
from codex_indexd_service.systemd import journal_command

__all__ = ("Entry", "Filter", "format_entry", "main", "parse_line", "parse_since")

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_ALIASES = {
    "warn": "warning",
    "exception": "error",
    "fatal": "critical",
    "err": "error",
    "crit": "critical",
}
_JOURNAL_PRIORITY = {
    "debug": "debug",
    "info": "info",
    "warning": "warning",
    "error": "err",
    "critical": "crit",
}
_COLORS = {"debug": "2", "info": "32", "warning": "33", "error": "31", "critical": "1;31"}
_SPAN = re.compile(r"(\d+)\s*(s|sec|m|min|h|d|w)", re.IGNORECASE)
_SPAN_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_HIDDEN = frozenset({"timestamp", "level", "event"})
_PLAIN_VALUE = re.compile(r"[^\s\"'=]+")
EVENT_WIDTH = 28


def _level_name(value: object) -> str:
    name = str(value).lower()
    return _ALIASES.get(name, name)


@dataclass(frozen=True)
class Entry:
    """One parsed log line; *raw* is the line exactly as written."""

    raw: str
    data: dict[str, Any]
    time: datetime | None
    level: str
    event: str


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_line(line: str) -> Entry | None:
    """Parse one JSON log line; None for anything that is not a JSON object."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    return Entry(
        line,
        data,
        _parse_time(data.get("timestamp")),
        _level_name(data.get("level", "")),
        str(data.get("event", "")),
    )


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``10m``, ``2h``, ``1h30m``, ``3d``, ``1w`` before *now*, or an ISO-8601 time.

    A time without offset is local time, as a user would type it.
    """
    now = now or datetime.now(UTC)
    compact = text.strip().replace(" ", "")
    spans = _SPAN.findall(compact)
    if spans and "".join(n + u for n, u in spans).lower() == compact.lower():
        seconds = sum(int(n) * _SPAN_SECONDS[u.lower()] for n, u in spans)
        return now - timedelta(seconds=seconds)
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a duration (10m, 2h, 1d) or ISO-8601 time: {text!r}"
        ) from None
    return parsed if parsed.tzinfo else parsed.astimezone()


@dataclass(frozen=True)
class Filter:
    """Which entries to show: minimum level, event globs (any), not before *since*."""

    min_level: int = 0
    events: tuple[str, ...] = ()
    since: datetime | None = None

    def __call__(self, entry: Entry) -> bool:
        if self.min_level and LEVELS.get(entry.level, 0) < self.min_level:
            return False
        if self.events and not any(fnmatchcase(entry.event, glob) for glob in self.events):
            return False
        return self.since is None or (entry.time is not None and entry.time >= self.since)


def _value(value: object) -> str:
    if isinstance(value, str):
        return value if _PLAIN_VALUE.fullmatch(value) else json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, default=str)


def _paint(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color and code else text


def _traceback_lines(value: object) -> list[str]:
    if isinstance(value, str):
        return value.rstrip("\n").splitlines()
    lines: list[str] = []
    if isinstance(value, list):  # structlog.processors.dict_tracebacks
        for exc in value:
            if isinstance(exc, dict):
                lines += [
                    f'File "{f.get("filename")}", line {f.get("lineno")}, in {f.get("name")}'
                    for f in exc.get("frames", [])
                    if isinstance(f, dict)
                ]
                lines.append(f"{exc.get('exc_type')}: {exc.get('exc_value')}")
    return lines


def format_entry(entry: Entry, *, color: bool = False, utc: bool = False) -> str:
    """One aligned human line (time, level, event, key=value fields), plus any traceback."""
    if entry.time is None:
        stamp = str(entry.data.get("timestamp", "-"))[:23].ljust(23)
    else:
        shown = entry.time.astimezone(UTC if utc else None)
        stamp = shown.strftime("%Y-%m-%d %H:%M:%S.") + f"{shown.microsecond // 1000:03d}"
    level = _paint(f"{entry.level.upper():<8}", _COLORS.get(entry.level, ""), color)
    event = _paint(f"{entry.event:<{EVENT_WIDTH}}", "1", color)
    fields, trace = [], []
    for key, value in entry.data.items():
        if key in _HIDDEN or (key == "logger" and str(value).startswith("codex_indexd")):
            continue
        if key in ("exception", "exc_info") and not isinstance(value, bool):
            trace = _traceback_lines(value)
            continue
        fields.append(f"{_paint(key, '36', color)}={_value(value)}")
    line = " ".join([_paint(stamp, "2", color), level, event, *fields]).rstrip()
    return "\n".join([line, *("    " + t for t in trace)])


def _build_parser(log_file: Path | None) -> argparse.ArgumentParser:
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
        type=_level_name,
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
        required=log_file is None,
    )
    parser.add_argument("--interval", type=float, default=0.25, help=argparse.SUPPRESS)
    return parser


def _use_color(choice: str, out: TextIO) -> bool:
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return out.isatty()


def _journal_hint(args: argparse.Namespace, runner: Runner | None, err: TextIO) -> None:
    if not sys.platform.startswith("linux"):
        return
    found = detect(runner=runner)
    if found.manager != "systemd" and not resolve("systemd").unit_path.exists():
        return
    since = args.since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if args.since else None
    command = journal_command(
        follow=args.follow,
        lines=args.lines,
        since=since,
        priority=_JOURNAL_PRIORITY.get(args.level or ""),
    )
    quoted = " ".join(f'"{a}"' if " " in a else a for a in command)
    print(
        f"hint: {UNIT_NAME} runs under systemd; its stdout/stderr are in the journal:\n"
        f"      {quoted}",
        file=err,
    )


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
    runner: Runner | None = None,
    stop: threading.Event | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    log_file: Path | None = None,
) -> int:
    """Print matching log entries; with ``-f`` keep following until *stop* or Ctrl-C.

    *log_file* is the daemon's log (`codex-indexd logs` passes it); without it ``--file`` is
    required. Returns the exit code."""
    out, err = out or sys.stdout, err or sys.stderr
    args = _build_parser(log_file).parse_args(argv)
    try:
        return _run(args, runner, stop, out, err)
    except BrokenPipeError:  # `codex-indexd logs | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _run(
    args: argparse.Namespace,
    runner: Runner | None,
    stop: threading.Event | None,
    out: TextIO,
    err: TextIO,
) -> int:
    keep = Filter(LEVELS.get(args.level or "", 0), tuple(args.event), args.since)
    color = _use_color(args.color, out)
    base: Path = args.file
    _journal_hint(args, runner, err)
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
