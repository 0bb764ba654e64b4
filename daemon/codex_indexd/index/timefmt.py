"""RFC 3339 timestamps as Codex writes them, and conversions to epoch values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TypeAlias

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
# Below this many epoch milliseconds (year 2039) `datetime.fromtimestamp(ms / 1000)` is exact:
# the float quotient is within 0.12 µs of the true value, which rounds to whole milliseconds
# (the first inexact values are past 2**42).
EXACT_MS = 1 << 41
_DAY_MS = 86_400_000
_TWO_DIGITS = [f"{i:02d}" for i in range(60)]
_MILLIS = [f".{i:03d}Z" for i in range(1000)]
_DAY_HEADS: dict[int, str] = {}  # "YYYY-MM-DDT" by epoch day
_DAY_HEADS_MAX = 4096


# A timestamp as a file wrote it, kept long (a rollout's, an index line's): the string, or
# the int `pack_stamp` packed it into (32 bytes for `…:SS.mmmZ` where the string takes 73).
Stamp: TypeAlias = str | int
# Every int from 0 below this is some packed stamp (a checkpoint's are checked against it).
STAMP_LIMIT = 10**24


def pack_stamp(text: str) -> Stamp:
    """Return `text` packed into an int when it is `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z` in ASCII
    digits (`stamp_text` gives the same string back), else `text` itself.

    The int is the string's digits as one decimal number, times ten, plus the number of
    fraction digits: below 2**60 (a 32-byte int) for milliseconds."""
    size = len(text)
    if (
        not (size == 20 or 22 <= size <= 30)
        or text[-1] != "Z"
        or text[19] != ("." if size > 20 else "Z")
    ):
        return text
    if text[4] != "-" or text[7] != "-" or text[10] != "T" or text[13] != ":" or text[16] != ":":
        return text
    digits = text[:4] + text[5:7] + text[8:10] + text[11:13] + text[14:16] + text[17:19]
    digits += text[20:-1]
    if not (digits.isascii() and digits.isdigit()):
        return text
    return int(digits) * 10 + max(size - 21, 0)


def stamp_text(stamp: Stamp) -> str:
    """Return the string of a stamp (`pack_stamp`'s inverse; a string is returned as is)."""
    if type(stamp) is str:
        return stamp
    assert isinstance(stamp, int)
    number, fraction = divmod(stamp, 10)
    d = f"{number:0{14 + fraction}d}"
    head = f"{d[:4]}-{d[4:6]}-{d[6:8]}T{d[8:10]}:{d[10:12]}:{d[12:14]}"
    return f"{head}.{d[14:]}Z" if fraction else head + "Z"


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


def epoch_us_from_ms(value: int) -> int:
    """Return the epoch microseconds of `datetime.fromtimestamp(value / 1000)` (milliseconds
    as microseconds where that is exact). Raises like `datetime.fromtimestamp`."""
    if 0 <= value < EXACT_MS:
        return value * 1000
    return (datetime.fromtimestamp(value / 1000, tz=UTC) - EPOCH) // ONE_US


def epoch_seconds(value: str) -> int | None:
    """Return whole epoch seconds (truncated, as the seed does), or None."""
    parsed = parse_rfc3339(value)
    return None if parsed is None else int(parsed.timestamp())


def epoch_ms(value: str) -> int | None:
    """Return epoch milliseconds, or None."""
    parsed = parse_rfc3339(value)
    return None if parsed is None else int(parsed.timestamp() * 1000)


def iso_from_ms(value: int) -> str:
    """Return `YYYY-MM-DDTHH:MM:SS.mmmZ` for epoch milliseconds (what `datetime.isoformat`
    writes for `datetime.fromtimestamp(value / 1000)`, milliseconds truncated)."""
    if 0 <= value < EXACT_MS:  # exact: built from the digits (the date once per day)
        day, rest = divmod(value, _DAY_MS)
        head = _DAY_HEADS.get(day)
        if head is None:
            if len(_DAY_HEADS) >= _DAY_HEADS_MAX:
                _DAY_HEADS.clear()
            head = _DAY_HEADS[day] = (EPOCH + timedelta(days=day)).date().isoformat() + "T"
        seconds, millis = divmod(rest, 1000)
        minutes, second = divmod(seconds, 60)
        hour, minute = divmod(minutes, 60)
        two = _TWO_DIGITS
        return head + two[hour] + ":" + two[minute] + ":" + two[second] + _MILLIS[millis]
    parsed = datetime.fromtimestamp(value / 1000, tz=UTC)
    return parsed.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_from_datetime(value: datetime) -> str:
    """Return an ISO string with `Z` and microseconds only when present (as the seed does)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_now() -> str:
    """Return the current UTC time with nanosecond-style precision, like Codex's index lines."""
    now = datetime.now(tz=UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
