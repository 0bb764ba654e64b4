"""Fault injection for crash tests: `CODEX_INDEXD_CRASH_AT=k` kills the process at the k-th step.

Every writer step that matters for crash consistency calls `step(name)`. With the variable
unset this is one dict lookup. `CODEX_INDEXD_CRASH_TRACE=path` appends the step names to a
file so that tests can count the points they can aim at.
"""

from __future__ import annotations

import os

_counter = 0
CHUNK_ENV = "CODEX_INDEXD_CRASH_CHUNK"


def chunk_size() -> int | None:
    """Bytes per write(2) while crash testing (None outside crash tests)."""
    value = os.environ.get(CHUNK_ENV)
    return int(value) if value and value.isdigit() and int(value) > 0 else None


def reset() -> None:
    """Restart the step count (a forked test child starts from zero)."""
    global _counter
    _counter = 0


def step(name: str) -> None:
    """Count one step; `os._exit(86)` when it is the one chosen by the environment."""
    global _counter
    target = os.environ.get("CODEX_INDEXD_CRASH_AT")
    trace = os.environ.get("CODEX_INDEXD_CRASH_TRACE")
    if target is None and trace is None:
        return
    _counter += 1
    if trace:
        with open(trace, "a", encoding="utf-8") as handle:
            handle.write(f"{_counter} {name}\n")
    if target is not None and target.isdigit() and int(target) == _counter:
        os._exit(86)
