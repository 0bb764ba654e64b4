"""Log lines as entries: parsing (bad lines skipped), `--since` values, the human format."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codex_indexd.log.entries import Entry, format_entry, parse_line, parse_since

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def test_since_durations() -> None:
    assert parse_since("10m", NOW) == NOW - timedelta(minutes=10)
    assert parse_since("1h30m", NOW) == NOW - timedelta(minutes=90)
    assert parse_since("2d", NOW) == NOW - timedelta(days=2)
    assert parse_since("45s", NOW) == NOW - timedelta(seconds=45)
    assert parse_since("2026-11-25T10:00:00Z") == datetime(2026, 11, 25, 10, tzinfo=UTC)
    assert parse_since("2026-11-25T10:00:00").tzinfo is not None  # local time
    with pytest.raises(Exception, match="not a duration"):
        parse_since("yesterday-ish")


def test_format_shows_foreign_loggers_and_tracebacks() -> None:
    entry = parse_line(
        json.dumps(
            {
                "timestamp": "2026-11-25T12:00:00Z",
                "level": "warning",
                "event": "overflow",
                "logger": "watchdog.observers.inotify_c",
                "exception": "Traceback\n  boom\nValueError",
            }
        )
    )
    assert entry is not None
    text = format_entry(entry, utc=True)
    assert "logger=watchdog.observers.inotify_c" in text
    assert text.splitlines()[1:] == ["    Traceback", "      boom", "    ValueError"]


@given(
    st.dictionaries(
        st.text(),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
            lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
            max_leaves=5,
        ),
    )
)
def test_format_never_fails_on_any_json_object(data: dict[str, Any]) -> None:
    entry = parse_line(json.dumps(data))
    assert isinstance(entry, Entry)
    format_entry(entry)


@pytest.mark.parametrize("raw", ["", "not json", "[1]", '"s"', "{broken", "null"])
def test_bad_lines_are_skipped(raw: str) -> None:
    assert parse_line(raw) is None
