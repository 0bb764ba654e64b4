"""History merge: only appends, never loses a line, idempotent, fits under max_bytes;
the rebuild trims as Codex does."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from codex_indexd.index.files import parse_history_bytes
from codex_indexd.index.history import (
    encode_history_line,
    fit_history_cap,
    line_size,
    missing_lines,
    trim_to_max_bytes,
)
from codex_indexd.index.model import HistoryLine, Policy
from codex_indexd.index.plan import history_append

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


def merge(
    current: bytes, desired: list[HistoryLine], policy: Policy, known: bytes | None = None
) -> bytes:
    """What a merge writes: plan against `known` (default: `current`), append under the lock."""
    seen = parse_history_bytes(current if known is None else known)
    planned = missing_lines(seen.parsed, desired, policy.history_ts_tolerance_s)
    decision = history_append(len(current), lambda o, n: current[o : o + n], planned, policy, seen)
    assert decision is not None
    return current + decision.data


@settings(max_examples=300, deadline=None)
@given(existing=lines_st, desired=lines_st, noise=noise_st, tolerance=st.integers(0, 5))
def test_merge_only_appends_is_idempotent_and_complete(
    existing: list[HistoryLine], desired: list[HistoryLine], noise: list[bytes], tolerance: int
) -> None:
    policy = Policy(history_ts_tolerance_s=tolerance)
    desired_sorted = sorted(set(desired), key=lambda h: (h.ts, h.session_id, h.text))
    before = render(existing, noise)
    after = merge(before, desired_sorted, policy)
    assert after.startswith(before), "a merge appends; it never moves a line Codex wrote"
    assert merge(after, desired_sorted, policy) == after  # a second run changes nothing
    # the added lines are chronological among themselves
    added = parse_history_bytes(after[len(before) :]).parsed
    assert [p.ts for p in added if p] == sorted(p.ts for p in added if p)
    assert missing_lines(parse_history_bytes(after).parsed, desired_sorted, tolerance) == []


@settings(max_examples=300, deadline=None)
@given(
    existing=lines_st,
    desired=lines_st,
    cap=st.integers(1, 2000),
)
def test_under_max_bytes_a_merge_adds_only_what_fits_and_removes_nothing(
    existing: list[HistoryLine], desired: list[HistoryLine], cap: int
) -> None:
    policy = Policy(history_max_bytes=cap)
    before = render(existing, [])
    after = merge(before, sorted(set(desired), key=lambda h: (h.ts, h.session_id, h.text)), policy)
    assert after.startswith(before)
    assert len(after) <= max(cap, len(before)), "our additions never take the file over the cap"
    first = parse_history_bytes(before).first_ts
    added = [line for line in parse_history_bytes(after[len(before) :]).parsed if line]
    ordered = sorted(set(desired), key=lambda h: (h.ts, h.session_id, h.text))
    planned = missing_lines(parse_history_bytes(before).parsed, ordered, 5)
    wanted = sum(line_size(h) for h in planned)
    if len(before) + wanted > cap and first is not None:  # over the cap: the kept window only
        tolerance = Policy().history_ts_tolerance_s
        assert all(line.ts >= first - tolerance for line in added)
    # a second merge adds nothing more: no loop against the cap
    assert (
        merge(after, sorted(set(desired), key=lambda h: (h.ts, h.session_id, h.text)), policy)
        == after
    )


def test_fit_keeps_the_newest_turns_in_the_kept_window() -> None:
    lines = [HistoryLine("a", ts, "t" * 20) for ts in (5, 50, 60, 70)]
    size = line_size(lines[-1])
    everything, left = fit_history_cap(lines, 0, None, 10 * size)
    assert (everything, left) == (lines, 0)
    # two fit; the one older than the file's oldest line (ts 10) never counts
    kept, left = fit_history_cap(lines, 100, 10, 100 + 2 * size)
    assert [line.ts for line in kept] == [60, 70] and left == 2


def test_a_trimmed_file_is_not_appended_to() -> None:
    """Codex's trim rewrote the file after our plan: the append is refused (plan again)."""
    lines = [HistoryLine("a", 1000 + i, f"prompt {i}") for i in range(10)]
    planned_on = render(lines, [])
    seen = parse_history_bytes(planned_on)
    trimmed = render(lines[3:] + [HistoryLine("a", 2000, "new codex line")] * 3, [])
    assert len(trimmed) >= len(planned_on) - 60
    read_at = lambda o, n: trimmed[o : o + n]  # noqa: E731
    add = [HistoryLine("b", 1500, "ours")]
    assert history_append(len(trimmed), read_at, add, Policy(), seen) is None


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


def test_trim_matches_codex_rule() -> None:
    lines = [b"a" * 99] * 5  # 100 bytes each with the newline
    assert trim_to_max_bytes(lines, 500) == lines
    assert trim_to_max_bytes(lines, 450) == lines[-3:]  # down to ≤ 360 → 3 lines
    big = [b"a" * 9, b"b" * 299]
    assert trim_to_max_bytes(big, 250) == [big[-1]]  # newest line always kept
    assert trim_to_max_bytes(lines, None) == lines


@settings(max_examples=300, deadline=None)
@given(existing=lines_st, appended=lines_st, desired=lines_st, noise=noise_st)
def test_lines_appended_since_the_plan_are_matched_again(
    existing: list[HistoryLine],
    appended: list[HistoryLine],
    desired: list[HistoryLine],
    noise: list[bytes],
) -> None:
    """The TUI's own line that came in after our plan is recognised: never doubled."""
    policy = Policy()
    desired_sorted = sorted(set(desired), key=lambda h: (h.ts, h.session_id, h.text))
    prefix = render(existing, noise)
    current = prefix + render(appended, [])
    after = merge(current, desired_sorted, policy, known=prefix)
    assert after.startswith(current)
    assert missing_lines(parse_history_bytes(after).parsed, desired_sorted, 5) == []
    assert after == merge(current, desired_sorted, policy)
