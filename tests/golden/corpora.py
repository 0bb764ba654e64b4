"""The homes the byte-identity tests run the old script and `repair --rebuild` on.

Everything in them is deterministic (ids, times, texts), so the old script's output on them
can be committed (tests/golden/<case>/) and compared against from a plain clone.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.homes import build_home, new_thread, write_rollout

GOLDEN = Path(__file__).resolve().parent
SEED = GOLDEN.parents[2] / "shared" / "seed" / "refresh_codex_history.py"
OUTPUTS = ("session_index.jsonl", "history.jsonl")

# case name -> the options given to both the old script and `repair --rebuild`
CASES: dict[str, list[str]] = {
    "legacy-default": [],
    "legacy-max-threads-3": ["--max-threads", "3"],
    "legacy-max-threads-0": ["--max-threads", "0"],
    "legacy-only-history": ["--only", "history"],
    "legacy-only-session-index": ["--only", "session-index"],
    "orphans-included": ["--include-orphans"],
}


# files compared per case: with orphans the old script names an orphan after its injected
# context (a bug we do not copy), so only history.jsonl is compared there
COMPARED: dict[str, tuple[str, ...]] = {case: OUTPUTS for case in CASES} | {
    "orphans-included": ("history.jsonl",)
}


def legacy_home(root: Path) -> Path:
    """Seven threads with DB rows (one archived), one orphan rollout, [history] max_bytes."""
    threads = [new_thread(i, turns=3) for i in range(8)]
    threads[6].archived = True
    home = build_home(root, threads[:7])
    write_rollout(home, threads[7])  # an orphan: rollout without a DB row
    (home / "config.toml").write_text("[history]\nmax_bytes = 1500\n")
    return home


def orphans_home(root: Path) -> Path:
    """Two threads with DB rows and one orphan rollout."""
    threads = [new_thread(i, turns=2) for i in range(3)]
    home = build_home(root, threads[:2])
    write_rollout(home, threads[2])
    return home


def build_case(case: str, root: Path) -> Path:
    """Build the home of `case` at `root`; return it."""
    return orphans_home(root) if case.startswith("orphans") else legacy_home(root)
