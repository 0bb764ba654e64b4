"""The restore and backup policies follow the typed settings."""

from __future__ import annotations

from pathlib import Path

from codex_indexd.config import settings
from codex_indexd.config.policies import backup_from_settings, policy_from_settings


def test_policies_follow_the_settings(tmp_path: Path) -> None:
    cli = {
        "homes": [str(tmp_path)],
        "policy.max_threads": 7,
        "policy.history_sources": ["cli"],
        "backups.keep_count": 0,
        "backups.keep_mb": 2,
    }
    resolved = settings.load(cli, path=tmp_path / "none.toml", environ={})
    policy = policy_from_settings(resolved)
    assert (policy.max_threads, policy.include_orphans) == (7, True)
    assert policy.history_sources == frozenset({"cli"})
    backup = backup_from_settings(resolved)
    assert (backup.enabled, backup.keep_count, backup.keep_bytes) == (False, 0, 2 * 1024 * 1024)
