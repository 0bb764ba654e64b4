"""Polling with a timeout (never a fixed sleep as synchronisation), and a daemon subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
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


def wait_for(
    cond: Callable[[], T], timeout: float = 5.0, what: str = "condition", interval: float = 0.02
) -> T:
    """Poll `cond` until it returns something truthy; return it. Fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


SEAMED_CLI = ROOT / "tests" / "support" / "seamed_cli.py"


def cli_command(*args: str, seams: Sequence[str] = ()) -> list[str]:
    """The command line of `codex-indexd ARGS` with this interpreter; with `seams`
    (`inotify-errno=ENOSPC`, see tests/support/seamed_cli.py) through the wrapper that sets
    those test seams first."""
    if seams:
        return [sys.executable, str(SEAMED_CLI), *seams, "--", *args]
    return [sys.executable, "-m", "codex_indexd", *args]


def daemon_command(home: Path, *args: str, seams: Sequence[str] = ()) -> list[str]:
    """The command line of `codex-indexd run` on `home`, with this interpreter."""
    return cli_command("run", "--codex-home", str(home), *args, seams=seams)


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
