from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemons import DaemonProcess, InProcessDaemon


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start daemon subprocesses; whatever is still running at the end is killed."""
    started: list[DaemonProcess] = []

    def start(home: Path, *args: str, **kw: Any) -> DaemonProcess:
        """A daemon on `home` with a short debounce, reporting to an sd_notify listener."""
        kw.setdefault("debounce_ms", 30)
        kw.setdefault("notify", True)
        kw.setdefault("output_dir", tmp_path)
        proc = DaemonProcess(home, *args, **kw)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.close()


@pytest.fixture
def inproc() -> Iterator[Callable[..., InProcessDaemon]]:
    """Run daemons on threads of the test process; stopped at the end."""
    running: list[InProcessDaemon] = []

    def start(home: Path, *more_homes: Path, **overrides: Any) -> InProcessDaemon:
        daemon = InProcessDaemon(home, *more_homes, **overrides)
        running.append(daemon)
        return daemon

    yield start
    for daemon in running:
        if daemon.thread.is_alive():
            daemon.stop()


@pytest.fixture
def log_dir(private_dirs: Path) -> Path:
    return private_dirs / "log"


@pytest.fixture
def state_dir(private_dirs: Path) -> Path:
    return private_dirs / "state"
