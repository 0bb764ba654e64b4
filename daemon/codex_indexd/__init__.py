"""codex-indexd: keeps Codex's conversation indexes in step with its rollouts."""

__version__ = "0.1.0"
