"""The one heal runner of `repair --heal-db` and the daemon: heal a home's DB through Codex
with the home's persisted record of tries, and keep the record."""

from __future__ import annotations

from codex_indexd.engine import HomeFacts
from codex_indexd.heal.heal import heal_home
from codex_indexd.heal.outcome import HealReport
from codex_indexd.store.heal_attempts import load_attempts, save_attempts


def heal_once(facts: HomeFacts, *, mode: str, binary: str | None) -> HealReport:
    """Return the report of one heal of `facts.home` (see `heal_home`); the tries it made are
    saved for the next run. Raises OSError when the record cannot be saved."""
    attempts = load_attempts(facts.home.root)
    report = heal_home(facts, mode=mode, binary=binary, attempts=attempts)
    save_attempts(facts.home.root, report.attempts)
    return report
