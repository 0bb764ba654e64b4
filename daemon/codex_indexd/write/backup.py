"""Timestamped backups (0600) in our state directory, with retention by count and bytes."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from codex_indexd.log import get_logger
from codex_indexd.records import record
from codex_indexd.store.dirs import private_dir

log = get_logger("codex_indexd.backup")


@record(frozen=True, slots=True)
class BackupPolicy:
    enabled: bool = True
    keep_count: int = 20  # per file name
    keep_bytes: int = 256 * 1024 * 1024  # per file name


def visible_dir(directory: Path) -> Path:
    """Return `directory` without leading dots in its last part: a home named `.codex` gets
    `backups/codex-<hash>/`, which file managers and `ls` show."""
    shown = directory.name.lstrip(".")
    return directory.with_name(shown) if shown and shown != directory.name else directory


def write_backup(directory: Path, name: str, data: bytes, policy: BackupPolicy) -> Path | None:
    """Save `data` as `<name>.<UTC stamp>.bak` (0600) under `visible_dir(directory)` and
    prune old ones; return its path."""
    if not policy.enabled or not data:
        return None
    directory = visible_dir(directory)
    private_dir(directory)
    stamp = datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    path = directory / f"{name}.{stamp}.bak"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    prune(directory, name, policy)
    return path


def prune(directory: Path, name: str, policy: BackupPolicy) -> list[Path]:
    """Delete the oldest backups of `name` beyond the count and byte limits; return them."""
    directory = visible_dir(directory)
    backups = sorted(directory.glob(f"{name}.*.bak"), reverse=True)  # newest first
    removed: list[Path] = []
    total = 0
    for index, path in enumerate(backups):
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        total += size
        if index >= policy.keep_count or (index > 0 and total > policy.keep_bytes):
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.info("backup.pruned", count=len(removed), directory=str(directory))
    return removed
