"""Heal Codex's own state DB through Codex's app-server.

`detect(facts)` tells what the DB lost (pure); `heal_home(facts, ...)` asks Codex to put it
back and reports what stuck; `heal_once(facts, ...)` does that with the home's record of
tries. `check_codex(...)` says whether healing can run, and why not.
"""

from __future__ import annotations

from codex_indexd.heal.codex_check import TESTED_VERSIONS, CodexCheck, check_codex
from codex_indexd.heal.detect import NAME_LOST, REASONS, ROW_MISSING, ROW_STALE, Detection, detect
from codex_indexd.heal.heal import MAX_TRIES, heal_home
from codex_indexd.heal.once import heal_once
from codex_indexd.heal.outcome import HealReport

__all__ = [
    "MAX_TRIES",
    "NAME_LOST",
    "REASONS",
    "ROW_MISSING",
    "ROW_STALE",
    "TESTED_VERSIONS",
    "CodexCheck",
    "Detection",
    "HealReport",
    "check_codex",
    "detect",
    "heal_home",
    "heal_once",
]
