"""What Codex's own `config.toml` decides about `history.jsonl` for one home, on top of the
policy our settings give (`config.policies`)."""

from __future__ import annotations

from codex_indexd.codex.home import CodexConfig
from codex_indexd.index.model import Policy
from codex_indexd.records import replace


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
