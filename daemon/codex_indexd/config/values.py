"""Parsers of setting values: each returns the typed value or raises ValueError saying what
was expected."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def boolean(value: Any) -> bool:
    """Only TOML's true/false (and "true"/"false" from the environment)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise ValueError(f"must be true or false, got {value!r}")


def whole(minimum: int, maximum: int, unit: str) -> Callable[[Any], int]:
    """A whole number of `unit` in [minimum, maximum]; no booleans, no fractions."""

    def parse(value: Any) -> int:
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            number = int(value)
        if number is None:
            raise ValueError(f"must be a whole number of {unit}, got {value!r}")
        if not minimum <= number <= maximum:
            raise ValueError(f"must be between {minimum} and {maximum} {unit}, got {number}")
        return number

    return parse


def seconds(minimum: float, maximum: float) -> Callable[[Any], float]:
    """A finite number of seconds in [minimum, maximum] (no nan, inf or booleans)."""

    def parse(value: Any) -> float:
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = None
        if number is None:
            raise ValueError(f"must be a number of seconds, got {value!r}")
        if not math.isfinite(number) or not minimum <= number <= maximum:
            raise ValueError(f"must be between {minimum:g} and {maximum:g} seconds, got {value!r}")
        return number

    return parse


def choice(*options: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in options:
            hint = did_you_mean(str(value), options)
            raise ValueError(f"must be one of {', '.join(options)}, got {value!r}{hint}")
        return str(value)

    return parse


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """Return " (did you mean 'x'?)" for the closest option, or ""."""
    import difflib

    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {value!r}")
    return value


def homes(value: Any) -> list[Path]:
    items = value.split(os.pathsep) if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i for i in items):
        raise ValueError(f"must be a non-empty list of paths, got {value!r}")
    return [Path(item).expanduser().absolute() for item in items]


def sources(value: Any) -> frozenset[str] | None:
    if value == "all":
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValueError(
            f'must be "all" or a list of source names like ["cli", "vscode", "exec"], got {value!r}'
        )
    return frozenset(i.strip() for i in items if i.strip())
