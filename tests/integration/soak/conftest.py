from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import Daemon


@pytest.fixture
def log_dir(private_dirs: Path) -> Path:
    return private_dirs / "log"


@pytest.fixture
def spawn(tmp_path: Path, log_dir: Path) -> Iterator[Callable[..., Daemon]]:
    """Start daemon subprocesses; whatever still runs at the end is killed."""
    started: list[Daemon] = []

    def start(home: Path, *args: str, **kw: Any) -> Daemon:
        daemon = Daemon(home, tmp_path / "run", log_dir, *args, **kw)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.close()
