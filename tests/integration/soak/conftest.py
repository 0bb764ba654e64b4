from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemons import DaemonProcess


@pytest.fixture
def log_dir(private_dirs: Path) -> Path:
    return private_dirs / "log"


@pytest.fixture
def spawn(tmp_path: Path, log_dir: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start daemon subprocesses (the daemon's own debounce unless `args` set one, no Codex
    app-server, ready once the log says so); whatever still runs at the end is killed."""
    started: list[DaemonProcess] = []

    def start(
        home: Path, *args: str, env: dict[str, str] | None = None, **kw: Any
    ) -> DaemonProcess:
        daemon = DaemonProcess(
            home,
            *args,
            debounce_ms=None,
            env={"CODEX_INDEXD_CODEX_API": "off", **(env or {})},
            log_dir=log_dir,
            output_dir=tmp_path / "run",
            **kw,
        )
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.close()
