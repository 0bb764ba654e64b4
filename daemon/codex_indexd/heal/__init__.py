"""Heal Codex's own state DB through Codex's app-server.

`detect(facts)` tells what the DB lost (pure); `heal_home(facts, ...)` asks Codex to put it
back and reports what stuck; `heal_once(facts, ...)` does that with the home's record of
tries. `check_codex(...)` says whether healing can run, and why not.

Detection is imported with the package; the healer (subprocess, the app-server client) only
when one of its names is first used, so `repair` and `status` that only detect never load it.
"""

from __future__ import annotations

from codex_indexd.heal.detect import NAME_LOST, REASONS, ROW_MISSING, ROW_STALE, Detection, detect

TYPE_CHECKING = False
if TYPE_CHECKING:
    from codex_indexd.heal.codex_check import TESTED_VERSIONS, CodexCheck, check_codex
    from codex_indexd.heal.heal import MAX_TRIES, heal_home
    from codex_indexd.heal.once import heal_once
    from codex_indexd.heal.outcome import HealReport

_LAZY = {
    "TESTED_VERSIONS": "codex_check",
    "CodexCheck": "codex_check",
    "check_codex": "codex_check",
    "MAX_TRIES": "heal",
    "heal_home": "heal",
    "heal_once": "once",
    "HealReport": "outcome",
}
"""The names imported on first use, and the module of this package each comes from."""

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


def __getattr__(name: str) -> object:
    """Return one of the healer's names, importing its module the first time; raise
    AttributeError for a name the package does not have."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
