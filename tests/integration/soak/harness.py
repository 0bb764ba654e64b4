"""Helpers for the soak and event-storm tests: the daemon as a subprocess, polling waits,
consistent (locked) snapshots of Codex's index files, the daemon's log, and /proc metrics.

Nothing here sleeps as synchronisation: every wait polls a condition with a timeout.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tests.support.waiting import daemon_command, wait_for

ROOT = Path(__file__).resolve().parents[3]
T = TypeVar("T")


# -- the daemon's log -----------------------------------------------------------------------


def log_path(log_dir: Path) -> Path:
    return log_dir / "codex-indexd.log"


def log_records(log_dir: Path, event: str | None = None) -> list[dict[str, Any]]:
    """Every JSON record of the daemon's log (rotated files first), or those of one event."""
    out: list[dict[str, Any]] = []
    base = log_path(log_dir)
    files = sorted(
        log_dir.glob(base.name + ".*"),
        key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0,
    )
    for path in [*files, base]:
        if not path.exists():
            continue
        for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict) and (event is None or record.get("event") == event):
                out.append(record)
    return out


# -- the daemon as a subprocess ---------------------------------------------------------------


class Daemon:
    """`python -m codex_indexd run --codex-home H [args]`; our dirs come from the environment
    the autouse `private_dirs` fixture set up (CODEX_INDEXD_STATE_DIR and friends)."""

    def __init__(
        self,
        home: Path,
        workdir: Path,
        log_dir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        seams: Sequence[str] = (),
    ) -> None:
        self.home = home
        self.log_dir = log_dir
        workdir.mkdir(parents=True, exist_ok=True)
        n = len(list(workdir.glob("daemon-*.stderr"))) + 1
        self.stderr_path = workdir / f"daemon-{n}.stderr"
        self._ready_before = len(log_records(log_dir, "daemon.ready"))
        full_env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "CODEX_INDEXD_CODEX_API": "off",
            **(env or {}),
        }
        full_env.pop("NOTIFY_SOCKET", None)
        cmd = daemon_command(home, *args, seams=seams)
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"the daemon exited with {self.proc.returncode}: {self.stderr[-3000:]}"
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            self.check_alive()
            return len(log_records(self.log_dir, "daemon.ready")) > self._ready_before

        wait_for(ready, timeout, "daemon.ready in the log", interval=0.1)

    def rss_kb(self) -> int:
        for row in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if row.startswith("VmRSS:"):
                return int(row.split()[1])
        raise AssertionError("no VmRSS")

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def fds(self) -> dict[str, str]:
        out = {}
        for name in os.listdir(f"/proc/{self.pid}/fd"):
            try:
                out[name] = os.readlink(f"/proc/{self.pid}/fd/{name}")
            except OSError:
                continue
        return out

    def terminate(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


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
