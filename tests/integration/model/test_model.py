"""The model-based walk (walk.py) over a real daemon and real `repair` runs.

Default run: two seeded walks, one on an unbounded history (with a large one to probe the
lock hold), one under `[history] max_bytes`. CODEX_INDEXD_SOAK=1 runs thousands of steps;
CODEX_INDEXD_MODEL_SEED / _STEPS replay or lengthen one walk. On failure the seed, every
violation and the step sequence are printed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .walk import KNOWN_OPEN, TIMING_KINDS, Config, Walk, WalkFailure

pytestmark = pytest.mark.slow

SOAK = os.environ.get("CODEX_INDEXD_SOAK") == "1"
SEED = os.environ.get("CODEX_INDEXD_MODEL_SEED")
ENFORCE = SOAK or os.environ.get("CODEX_INDEXD_MODEL_ENFORCE") == "1"
STEPS = int(os.environ.get("CODEX_INDEXD_MODEL_STEPS", "3000" if SOAK else "200"))

CONFIGS = {
    "unbounded": Config(
        seed=1, steps=STEPS, big_history_bytes=8_000_000 if not SOAK else 60_000_000
    ),
    "max_bytes": Config(seed=2, steps=STEPS, max_bytes=8_000),
}


def run_walk(tmp_path: Path, log_dir: Path, config: Config) -> Walk:
    walk = Walk(tmp_path, log_dir, config)
    try:
        walk.run()
    except WalkFailure:
        raise
    except BaseException as exc:
        raise AssertionError(f"{exc}\n{walk.report()}") from exc
    finally:
        walk.close()
        print(walk.report())
    return walk


@pytest.mark.parametrize("name", list(CONFIGS))
def test_walk(tmp_path: Path, private_dirs: Path, name: str) -> None:
    config = CONFIGS[name]
    if SEED is not None:
        config.seed = int(SEED)
    try:
        walk = run_walk(tmp_path, private_dirs / "log", config)
    except WalkFailure as exc:
        new_kinds = {v.kind for v in exc.walk.violations} - set(KNOWN_OPEN)
        if ENFORCE or not new_kinds <= TIMING_KINDS:
            raise
        # The default run (CI, a loaded 2-core machine) reports a violation that scheduling
        # alone can cause (a lock wait, a race window) with its seed and steps and does not fail
        # on it; it is replayed and decided with CODEX_INDEXD_MODEL_ENFORCE=1 (or the soak run).
        pytest.xfail(f"timing-dependent walk violation (replay with its seed): {str(exc)[:2000]}")
    open_kinds = sorted({v.kind for v in walk.violations})
    assert all(kind in KNOWN_OPEN for kind in open_kinds), walk.report()
    if open_kinds:
        pytest.xfail(f"known open: {', '.join(open_kinds)}")  # reported, see KNOWN_OPEN


# One short, fixed scenario per bug the walk found: skipped while its kind is in KNOWN_OPEN,
# enforced (every invariant) once the entry is removed.
SCENARIOS: dict[str, tuple[str, list[str], int | None]] = {
    "tui_turn_not_doubled": ("history_turn_doubled", ["tui_new"] + ["tui_turn"] * 6, None),
    "symlinked_home_single_daemon": ("second_daemon_on_same_home", ["symlink_daemon"], None),
    "max_bytes_window_is_a_fixed_point": (
        "repair_changes_quiet_state",
        ["tui_new", "exec_new"] + ["exec_turn", "tui_turn"] * 15 + ["old_thread", "quiet"],
        3_000,
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_found_scenario(tmp_path: Path, private_dirs: Path, name: str) -> None:
    kind, script, max_bytes = SCENARIOS[name]
    if kind in KNOWN_OPEN:
        pytest.skip(f"KNOWN_OPEN {kind}: {KNOWN_OPEN[kind]}")
    walk = run_walk(
        tmp_path, private_dirs / "log", Config(seed=7, steps=0, max_bytes=max_bytes, script=script)
    )
    assert not walk.violations, walk.report()
