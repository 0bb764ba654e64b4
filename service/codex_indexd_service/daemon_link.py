"""What the service commands need to know of the daemon, handed in by the daemon's own CLI:
this package imports nothing of the daemon's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ("DaemonLink",)


@dataclass(frozen=True, slots=True)
class DaemonLink:
    """The daemon's files and its configuration, as far as the service commands use them."""

    log_dir: Path  # the daemon's log directory (a background daemon's output goes there)
    lock_of: Callable[[Path], Path]  # a Codex home's single-instance lock file
    holder_pid: Callable[[Path], int | None]  # the pid holding a lock file, or None
    configured_home: Path | None = None  # the config file's first home (what the daemon watches)
