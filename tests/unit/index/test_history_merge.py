"""History merge: never loses a line, idempotent, keeps order; trimming as Codex does."""

from __future__ import annotations

import json

from codex_indexd.codex.indexfiles import parse_history_bytes
from codex_indexd.index.history import (
    encode_history_line,
    merge_lines,
    missing_lines,
    trim_to_max_bytes,
)
from codex_indexd.index.model import HistoryLine, Policy
from codex_indexd.index.plan import merged_history_bytes
from hypothesis import given, settings
from hypothesis import strategies as st

SIDS = ["a", "b", "c"]
lines_st = st.lists(
    st.builds(
        HistoryLine,
        st.sampled_from(SIDS),
        st.integers(1000, 1100),
        st.sampled_from(["x", "y", "z\n", "é"]),
    ),
    max_size=25,
)
noise_st = st.lists(st.sampled_from([b"garbage", b"", b"[1,2]", b'{"session_id":1}']), max_size=3)


def render(lines: list[HistoryLine], noise: list[bytes]) -> bytes:
    raw = [encode_history_line(line) for line in sorted(lines, key=lambda h: h.ts)] + noise
    return b"".join(r + b"\n" for r in raw)


@settings(max_examples=300, deadline=None)
@given(existing=lines_st, desired=lines_st, noise=noise_st, tolerance=st.integers(0, 5))
def test_merge_never_loses_is_idempotent_and_ordered(
    existing: list[HistoryLine], desired: list[HistoryLine], noise: list[bytes], tolerance: int
) -> None:
    policy = Policy(history_ts_tolerance_s=tolerance)
    desired_sorted = sorted(set(desired), key=lambda h: (h.ts, h.session_id, h.text))
    before = render(existing, noise)
    after = merged_history_bytes(before, desired_sorted, policy)
    old_lines, new_lines = before.split(b"\n")[:-1], after.split(b"\n")[:-1]
    # every old line is still there, in the same relative order
    it = iter(new_lines)
    assert all(any(candidate == old for candidate in it) for old in old_lines)
    # a second run changes nothing
    assert merged_history_bytes(after, desired_sorted, policy) == after
    # parsed lines stay chronological when they were
    times = [p.ts for p in parse_history_bytes(after).parsed if p is not None]
    assert times == sorted(times)
    # every desired turn is now accounted for
    assert missing_lines(parse_history_bytes(after).parsed, desired_sorted, tolerance) == []


def test_tolerance_prevents_duplicates_of_codex_lines() -> None:
    existing = [HistoryLine("a", 1000, "hello")]
    assert missing_lines(existing, [HistoryLine("a", 1003, "hello")], 5) == []
    assert missing_lines(existing, [HistoryLine("a", 1010, "hello")], 5) == [
        HistoryLine("a", 1010, "hello")
    ]
    # multiset: two identical prompts need two lines
    assert (
        len(
            missing_lines(
                existing, [HistoryLine("a", 1000, "hello"), HistoryLine("a", 1001, "hello")], 5
            )
        )
        == 1
    )


def test_insert_keeps_chronology_and_reports_it() -> None:
    raw = [encode_history_line(HistoryLine("a", t, "m")) for t in (10, 30)]
    parsed = [HistoryLine("a", 10, "m"), HistoryLine("a", 30, "m")]
    merged, inserted = merge_lines(
        raw, parsed, [HistoryLine("b", 20, "n"), HistoryLine("b", 40, "n")]
    )
    assert [json.loads(x)["ts"] for x in merged] == [10, 20, 30, 40]
    assert inserted
    _, inserted = merge_lines(raw, parsed, [HistoryLine("b", 40, "n")])
    assert not inserted


def test_trim_matches_codex_rule() -> None:
    lines = [b"a" * 99] * 5  # 100 bytes each with the newline
    assert trim_to_max_bytes(lines, 500) == lines
    assert trim_to_max_bytes(lines, 450) == lines[-3:]  # down to ≤ 360 → 3 lines
    big = [b"a" * 9, b"b" * 299]
    assert trim_to_max_bytes(big, 250) == [big[-1]]  # newest line always kept
    assert trim_to_max_bytes(lines, None) == lines


@settings(max_examples=300, deadline=None)
@given(existing=lines_st, appended=lines_st, desired=lines_st, noise=noise_st)
def test_known_prefix_fast_path_matches_a_full_parse(
    existing: list[HistoryLine],
    appended: list[HistoryLine],
    desired: list[HistoryLine],
    noise: list[bytes],
) -> None:
    policy = Policy()
    desired_sorted = sorted(set(desired), key=lambda h: (h.ts, h.session_id, h.text))
    prefix = render(existing, noise)
    current = prefix + render(appended, [])
    known = parse_history_bytes(prefix)
    assert merged_history_bytes(current, desired_sorted, policy, known) == merged_history_bytes(
        current, desired_sorted, policy
    )
