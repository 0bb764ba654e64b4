"""The daemon's per-home status record (JSON in the state dir), read by `codex-indexd status`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from codex_indexd import paths
from codex_indexd.write.safety import write_all


def status_path(codex_home: Path) -> Path:
    return paths.state_dir() / "status" / f"{paths.home_key(codex_home)}.json"


def instance_lock_path(codex_home: Path) -> Path:
    return paths.state_dir() / "locks" / f"{paths.home_key(codex_home)}.lock"


def checkpoint_path(codex_home: Path) -> Path:
    return paths.cache_dir() / f"{paths.home_key(codex_home)}.checkpoint.json"


def write_status(codex_home: Path, record: dict[str, Any]) -> None:
    """Write the record atomically (0600); it holds ids, counts and times, never prompts."""
    path = status_path(codex_home)
    temp = path.with_name(path.name + ".tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    try:
        fd = os.open(temp, flags, 0o600)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(temp, flags, 0o600)
    try:
        write_all(fd, json.dumps(record, indent=1, default=str).encode("utf-8"), crash_points=False)
    finally:
        os.close(fd)
    os.replace(temp, path)


def read_status(codex_home: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(status_path(codex_home).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
