"""Persisted heal attempts (ids and name hashes only), so a name that does not stick is not
retried forever across restarts."""

from __future__ import annotations

import json
import os
from pathlib import Path

from codex_indexd import paths
from codex_indexd.write.safety import write_all


def attempts_path(codex_home: Path) -> Path:
    return paths.state_dir() / "heal" / f"{paths.home_key(codex_home)}.json"


def load_attempts(codex_home: Path) -> dict[str, int]:
    try:
        data = json.loads(attempts_path(codex_home).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) else {}


def save_attempts(codex_home: Path, attempts: dict[str, int]) -> None:
    path = attempts_path(codex_home)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(path.name + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        write_all(fd, json.dumps(attempts).encode("utf-8"), crash_points=False)
    finally:
        os.close(fd)
    os.replace(temp, path)
