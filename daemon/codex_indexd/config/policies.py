"""The policies the settings give: which threads are restored, how backups are kept."""

from __future__ import annotations

from codex_indexd.config.settings import Settings
from codex_indexd.index.model import Policy
from codex_indexd.write.backup import BackupPolicy


def policy_from_settings(resolved: Settings) -> Policy:
    """Return the restore policy of `[policy]`."""
    return Policy(
        max_threads=resolved.policy.max_threads,
        include_orphans=resolved.policy.include_orphans,
        history_sources=resolved.policy.history_sources,
    )


def backup_from_settings(resolved: Settings) -> BackupPolicy:
    """Return the backup policy of `[backups]` (none kept: no backups at all)."""
    return BackupPolicy(
        enabled=resolved.backups.keep_count > 0,
        keep_count=resolved.backups.keep_count,
        keep_bytes=resolved.backups.keep_mb * 1024 * 1024,
    )
