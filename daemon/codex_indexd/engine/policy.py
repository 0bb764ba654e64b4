"""The one policy builder: which threads the settings restore, and what Codex's own
`config.toml` decides about `history.jsonl` for one home."""

from __future__ import annotations

from dataclasses import replace

from codex_indexd import settings as settings_mod
from codex_indexd.codex.home import CodexConfig
from codex_indexd.index.model import Policy


def policy_from_settings(resolved: settings_mod.Settings) -> Policy:
    """Return the daemon's policy (`policy.*` in the config file), before any home's config."""
    return Policy(
        max_threads=resolved["policy.max_threads"],
        include_orphans=resolved["policy.include_orphans"],
        history_sources=resolved["policy.history_sources"],
    )


def home_policy(
    base: Policy, config: CodexConfig, *, ignore_history_max_bytes: bool = False
) -> Policy:
    """Return `base` with what a home's Codex config says: `[history] max_bytes` (unless
    ignored) and whether history is kept at all (`persistence = "none"`)."""
    return replace(
        base,
        history_max_bytes=None if ignore_history_max_bytes else config.history_max_bytes,
        history_enabled=config.history_persistence != "none",
    )
