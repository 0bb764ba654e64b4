"""The daemon's per-home status record (JSON in the state dir), read by `codex-indexd status`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from codex_indexd.store.files import OurFiles
from codex_indexd.write.atomic import write_atomic


def write_status(codex_home: Path, record: dict[str, Any]) -> None:
    """Write the record atomically (0600); it holds ids, counts and times, never prompts.
    Raises OSError (UnsafeOwnDir when the status directory is not ours alone)."""
    data = json.dumps(record, indent=1, default=str).encode("utf-8")
    write_atomic(OurFiles.for_home(codex_home).status, data)


def read_status(codex_home: Path) -> dict[str, Any] | None:
    """Return the home's last status record, or None when there is none or it is unreadable."""
    try:
        data = json.loads(OurFiles.for_home(codex_home).status.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def last_repair(codex_home: Path) -> dict[str, Any] | None:
    """Return the last repair in the home's previous status record (kept across restarts)."""
    repair = (read_status(codex_home) or {}).get("last_repair")
    return repair if isinstance(repair, dict) else None
