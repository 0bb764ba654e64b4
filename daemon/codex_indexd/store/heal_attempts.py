"""Persisted heal attempts (ids and name hashes only), so a name that does not stick is not
retried forever across restarts."""

from __future__ import annotations

import json
from pathlib import Path

from codex_indexd.store.files import OurFiles
from codex_indexd.write.atomic import write_atomic


def load_attempts(codex_home: Path) -> dict[str, int]:
    """Return the attempts recorded for the home ({} when none or unreadable)."""
    try:
        text = OurFiles.for_home(codex_home).heal_attempts.read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) else {}


def save_attempts(codex_home: Path, attempts: dict[str, int]) -> None:
    """Write the attempts atomically (0600). Raises OSError (UnsafeOwnDir)."""
    write_atomic(OurFiles.for_home(codex_home).heal_attempts, json.dumps(attempts).encode("utf-8"))
