"""Helpers for the soak and event-storm tests: `status --json` in a child, consistent
(locked) snapshots of Codex's index files, and /proc metrics. The daemon itself is started
through `tests.support.daemons`.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.daemons import ROOT


def status_cli(home: Path) -> tuple[int, dict[str, Any]]:
    """Run `python -m codex_indexd status --json --codex-home H`; return (exit code, report)."""
    env = {**os.environ, "CODEX_INDEXD_CODEX_API": "off"}
    done = subprocess.run(
        [sys.executable, "-m", "codex_indexd", "status", "--json", "--codex-home", str(home)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1) and done.stdout.strip(), (
        f"status failed ({done.returncode}): {done.stderr[-3000:]}"
    )
    return done.returncode, json.loads(done.stdout)


# -- Codex's lock protocols, for reading consistent snapshots ----------------------------------


@contextmanager
def flocked(path: Path, *, shared: bool, timeout: float = 10.0) -> Iterator[int]:
    """Open `path` (created when absent) and hold flock on it, polling like Codex (50 ms)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600 if path.name == "history.jsonl" else 0o666)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                    raise
                if time.monotonic() > deadline:
                    raise AssertionError(f"{path} stayed locked for {timeout} s") from exc
                time.sleep(0.05)
        yield fd
    finally:
        os.close(fd)


def read_locked(home: Path) -> tuple[bytes, bytes]:
    """Return (session_index.jsonl, history.jsonl) bytes, each read under its Codex lock, so
    that neither is caught in the middle of a write."""
    index_path, history_path = home / "session_index.jsonl", home / "history.jsonl"
    with flocked(home / "session_index.jsonl.lock", shared=False):
        index = index_path.read_bytes() if index_path.exists() else b""
    if history_path.exists():
        with flocked(history_path, shared=True):
            history = history_path.read_bytes()
    else:
        history = b""
    return index, history


def jsonl_objects(data: bytes) -> list[dict[str, Any]]:
    """Parse every line; lines that do not parse are skipped (use `torn_lines` to find them)."""
    out = []
    for raw in data.splitlines():
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def torn_lines(data: bytes, keys: tuple[str, ...]) -> list[bytes]:
    """Lines that are not a JSON object with `keys`, plus a missing final newline."""
    bad = []
    for raw in data.splitlines():
        try:
            obj = json.loads(raw)
        except ValueError:
            bad.append(raw)
            continue
        if not isinstance(obj, dict) or not all(k in obj for k in keys):
            bad.append(raw)
    if data and not data.endswith(b"\n"):
        bad.append(b"<no final newline>")
    return bad


@dataclass
class Metrics:
    at: float
    rss_kb: int
    fds: int
