"""The daemon's per-home status record (JSON in the state dir), read by `codex-indexd status`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from codex_indexd.paths import OurFiles
from codex_indexd.write.atomic import write_atomic


def status_path(codex_home: Path) -> Path:
    return OurFiles.for_home(codex_home).status


def instance_lock_path(codex_home: Path) -> Path:
    """The daemon's single-instance lock for the home (keyed by its real path)."""
    return OurFiles.for_home(codex_home).instance_lock


def checkpoint_path(codex_home: Path) -> Path:
    return OurFiles.for_home(codex_home).checkpoint


def write_status(codex_home: Path, record: dict[str, Any]) -> None:
    """Write the record atomically (0600); it holds ids, counts and times, never prompts.
    Raises OSError (UnsafeOwnDir when the status directory is not ours alone)."""
    data = json.dumps(record, indent=1, default=str).encode("utf-8")
    write_atomic(status_path(codex_home), data)


def read_status(codex_home: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(status_path(codex_home).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
