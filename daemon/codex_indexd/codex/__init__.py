"""Readers for Codex's files: where things are, rollouts, the state DB, the two index files."""
