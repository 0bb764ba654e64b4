"""The heal report's one-line summary: counts in words, never the reason codes."""

from __future__ import annotations

from codex_indexd.heal.detect import REASONS
from codex_indexd.heal.outcome import HealReport, zero_counts


def test_the_summary_names_what_was_found_in_words() -> None:
    report = HealReport(mode="auto", detected=zero_counts() | {"row_missing": 1, "row_stale": 2})
    report.skipped_reason = "no 'codex' binary on PATH"
    text = report.summary()
    assert text == (
        "DB heal: found 1 rollout without a row, 2 rows pointing at moved rollouts; "
        "not healed (no 'codex' binary on PATH)"
    )
    assert not any(reason in text for reason in REASONS)
