"""Entries of our JSON log: parsed, filtered by level, event and time, and formatted for
people."""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from codex_indexd.records import record

__all__ = ("LEVELS", "Entry", "Filter", "format_entry", "level_name", "parse_line", "parse_since")

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_ALIASES = {
    "warn": "warning",
    "exception": "error",
    "fatal": "critical",
    "err": "error",
    "crit": "critical",
}
_COLORS = {"debug": "2", "info": "32", "warning": "33", "error": "31", "critical": "1;31"}
_SPAN = re.compile(r"(\d+)\s*(s|sec|m|min|h|d|w)", re.IGNORECASE)
_SPAN_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_HIDDEN = frozenset({"timestamp", "level", "event"})
_PLAIN_VALUE = re.compile(r"[^\s\"'=]+")
EVENT_WIDTH = 28


def level_name(value: object) -> str:
    name = str(value).lower()
    return _ALIASES.get(name, name)


@record(frozen=True)
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
        level_name(data.get("level", "")),
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


@record(frozen=True)
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
