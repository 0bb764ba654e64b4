"""RFC 3339 timestamps as Codex writes them, and conversions to epoch values."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_rfc3339(value: str) -> datetime | None:
    """Return the UTC datetime of an RFC 3339 string, or None when it does not parse.

    Codex writes nanoseconds (`…52.872149238Z`); Python keeps microseconds, so extra
    fraction digits are cut before parsing.
    """
    try:  # the common case (Codex's `…:SS.mmmZ`) parses directly on Python ≥ 3.11
        parsed = datetime.fromisoformat(value)
    except ValueError:
        pass
    else:
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    text = value.strip()
    if not text:
        return None
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    dot = text.find(".")
    if dot != -1:
        end = dot + 1
        while end < len(text) and text[end].isdigit():
            end += 1
        if end - dot > 7:
            text = text[: dot + 7] + text[end:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def epoch_seconds(value: str) -> int | None:
    """Return whole epoch seconds (truncated, as the seed does), or None."""
    parsed = parse_rfc3339(value)
    return None if parsed is None else int(parsed.timestamp())


def epoch_ms(value: str) -> int | None:
    """Return epoch milliseconds, or None."""
    parsed = parse_rfc3339(value)
    return None if parsed is None else int(parsed.timestamp() * 1000)


def iso_from_ms(value: int) -> str:
    """Return `YYYY-MM-DDTHH:MM:SS.mmmZ` for epoch milliseconds."""
    parsed = datetime.fromtimestamp(value / 1000, tz=UTC)
    return parsed.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_from_datetime(value: datetime) -> str:
    """Return an ISO string with `Z` and microseconds only when present (as the seed does)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_now() -> str:
    """Return the current UTC time with nanosecond-style precision, like Codex's index lines."""
    now = datetime.now(tz=UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
