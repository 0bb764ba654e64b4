"""One rule picks the rollout that speaks for a thread when files share its id."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from codex_indexd.codex.ranking import choose_rollout, rollout_rank
from codex_indexd.codex.rollout import RolloutScan
from codex_indexd.engine import InputWarning, keep_scan

TID = "01a2133b-c369-7d21-8c95-fcf203b4a96c"


@st.composite
def scans(draw: st.DrawFn) -> RolloutScan:
    archived = draw(st.booleans())
    folder = "archived_sessions" if archived else "sessions/2026/11/" + draw(st.sampled_from("12"))
    path = Path(f"/h/{folder}/rollout-2026-11-25T00-00-0{draw(st.integers(0, 3))}-{TID}.jsonl")
    scan = RolloutScan.start(path, archived=archived)
    scan.facts.has_meta = draw(st.booleans())
    scan.lines = draw(st.integers(0, 4))
    return scan


@given(st.lists(scans(), max_size=6), st.randoms())
def test_the_choice_is_the_best_usable_one_in_any_order(found: list[RolloutScan], rnd) -> None:
    best = choose_rollout(found)
    usable = [s for s in found if s.usable]
    if not usable:
        assert best is None
        return
    assert best is not None and best.usable
    assert all(rollout_rank(best) >= rollout_rank(s) for s in usable)
    if any(not s.facts.archived for s in usable):
        assert not best.facts.archived
    shuffled = found[:]
    rnd.shuffle(shuffled)
    chosen = choose_rollout(shuffled)
    assert chosen is not None and rollout_rank(chosen) == rollout_rank(best)


@given(st.lists(scans(), max_size=6))
def test_repair_keeps_the_same_one_as_the_rule(found: list[RolloutScan]) -> None:
    kept: dict[str, RolloutScan] = {}
    warnings: list[InputWarning] = []
    for scan in found:
        if scan.usable:
            keep_scan(kept, scan, warnings)
    best = choose_rollout(found)
    assert (kept.get(TID) is None) == (best is None)
    if best is not None:
        assert rollout_rank(kept[TID]) == rollout_rank(best)
        assert len(warnings) == sum(1 for s in found if s.usable) - 1
