"""Polling with a timeout (never a fixed sleep as synchronisation), and a daemon subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = (ROOT, ROOT / "daemon", ROOT / "service")
"""The checkout (for ``tests.*``) and the two source roots of the import packages."""
T = TypeVar("T")


def source_pythonpath() -> str:
    """A PYTHONPATH that makes a child interpreter import this checkout's packages and tests."""
    extra = os.environ.get("PYTHONPATH")
    return os.pathsep.join([*(str(p) for p in SOURCE_ROOTS), *([extra] if extra else [])])


class WaitTimeout(AssertionError):
    """A condition `wait_for` polled did not hold in time (a test failure, not an error)."""


def wait_for(
    cond: Callable[[], T | None],
    timeout: float = 5.0,
    what: str = "condition",
    interval: float = 0.02,
) -> T:
    """Poll `cond` every `interval` s until it returns something truthy; return that value.

    Raises WaitTimeout (an AssertionError) naming `what` and the last value seen once
    `timeout` s have passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            last = repr(value)
            last = last if len(last) <= 200 else last[:200] + "…"
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what} (last: {last})")
        time.sleep(interval)


def daemon_command(home: Path, *args: str) -> list[str]:
    """The command line of `codex-indexd run` on `home`, with this interpreter."""
    return [sys.executable, "-m", "codex_indexd", "run", "--codex-home", str(home), *args]


def start_daemon(
    home: Path, *, debounce_ms: int = 50, extra_env: Mapping[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start `codex-indexd run` on `home` in a subprocess (our dirs come from the environment)."""
    env = {**os.environ, "PYTHONPATH": source_pythonpath(), **(extra_env or {})}
    return subprocess.Popen(
        daemon_command(home, "--debounce-ms", str(debounce_ms)),
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
