"""History planning: the turns history should hold, what is missing, fitting under max_bytes;
the merge only appends, never loses a line, is idempotent; the rebuild trims as Codex does."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from codex_indexd.index.history import (
    desired_history,
    encode_history_line,
    fit_history_cap,
    line_size,
    missing_lines,
    sort_key,
    split_pending,
    trim_to_max_bytes,
)
from codex_indexd.index.lines import parse_history_bytes
from codex_indexd.index.model import (
    HistoryLine,
    Policy,
    RolloutFacts,
    Turns,
    UserTurn,
    text_key,
)
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
    return current + bytes(decision.data)


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


# -- fitting under `[history] max_bytes` -------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    additions=lines_st,
    file_size=st.integers(0, 1500),
    first_ts=st.none() | st.integers(990, 1110),
    cap=st.none() | st.integers(0, 2500),
    tolerance=st.integers(0, 5),
)
def test_fit_takes_all_that_fits_or_the_newest_of_the_kept_window(
    additions: list[HistoryLine],
    file_size: int,
    first_ts: int | None,
    cap: int | None,
    tolerance: int,
) -> None:
    kept, left_out = fit_history_cap(additions, file_size, first_ts, cap, tolerance)
    ordered = sorted(additions, key=sort_key)
    assert left_out == len(additions) - len(kept)
    remaining = iter(ordered)
    assert all(any(line == o for o in remaining) for line in kept), "a sub-list, in write order"
    total = sum(line_size(line) for line in ordered)
    if cap is None or cap <= 0 or not ordered or total <= cap - file_size:
        assert (kept, left_out) == (ordered, 0), "everything fits: everything is added"
        return
    assert sum(line_size(line) for line in kept) <= max(0, cap - file_size), "never over"
    if first_ts is not None:
        assert all(line.ts >= first_ts - tolerance for line in kept), "no turn Codex trimmed"
    window = [line for line in ordered if first_ts is None or line.ts >= first_ts - tolerance]
    if window and line_size(window[-1]) <= cap - file_size:
        assert kept and kept[-1] == window[-1], "the newest turn that fits is always taken"


def test_fit_with_no_room_left_adds_nothing() -> None:
    lines = [HistoryLine("a", 1000, "x")]
    assert fit_history_cap(lines, 500, None, 400) == ([], 1)


# -- what history should hold --------------------------------------------------------------


def facts_with(thread_id: str, *turns: tuple[int, str], source: str | None = "cli") -> RolloutFacts:
    return RolloutFacts(
        thread_id, "/x", source=source, user_turns=Turns(UserTurn(ts, text) for ts, text in turns)
    )


def test_desired_history_is_sorted_and_drops_exact_duplicates() -> None:
    rollouts = {
        "b": facts_with("b", (20, "two"), (10, "one"), (10, "one")),
        "a": facts_with("a", (10, "zzz"), (10, "aaa")),
    }
    lines = desired_history(["a", "b", "missing"], rollouts, Policy())
    assert [(line.ts, line.session_id, line.text) for line in lines] == [
        (10, "a", "aaa"),
        (10, "a", "zzz"),
        (10, "b", "one"),
        (20, "b", "two"),
    ]


turns_st = st.lists(
    st.tuples(st.integers(0, 6), st.sampled_from(["x", "y", "", "é", "a\nb"])), max_size=8
)


@settings(max_examples=300, deadline=None)
@given(
    threads=st.dictionaries(st.sampled_from(SIDS), turns_st, max_size=3),
    order=st.permutations([*SIDS, "gone"]),
    keys_only=st.booleans(),
    sources=st.sampled_from([None, frozenset({"cli"}), frozenset({""})]),
)
def test_desired_history_is_every_distinct_turn_in_order(
    threads: dict[str, list[tuple[int, str]]],
    order: list[str],
    keys_only: bool,
    sources: frozenset[str] | None,
) -> None:
    """From scratch: the set of `(ts, session, key)` of the chosen threads' turns, sorted by
    `(ts, session, text, key)` (the text counting as empty where the reader kept keys only,
    and dropped)."""
    rollouts = {}
    for tid, turns in threads.items():
        built = [UserTurn(ts, None if keys_only else text, text_key(text)) for ts, text in turns]
        source = "cli" if tid != "c" else None
        rollouts[tid] = RolloutFacts(tid, "/x", source=source, user_turns=Turns(built))
    policy = Policy(history_sources=sources)
    chosen = [
        tid
        for tid in order
        if tid in threads and (sources is None or ("cli" if tid != "c" else "") in sources)
    ]
    want = sorted(
        {
            (ts, tid, "" if keys_only else text, text_key(text))
            for tid in chosen
            for ts, text in threads[tid]
        }
    )
    got = desired_history(order, rollouts, policy)
    assert [(h.ts, h.session_id, h.key) for h in got] == [(ts, t, k) for ts, t, _, k in want]
    if keys_only:
        assert all(h.text is None for h in got)
    else:
        assert [h.text for h in got] == [text for _, _, text, _ in want]


def test_desired_history_keeps_the_chosen_sources_only() -> None:
    rollouts = {
        "a": facts_with("a", (1, "exec"), source="exec"),
        "b": facts_with("b", (2, "cli")),
        "c": facts_with("c", (3, "unknown"), source=None),
    }
    policy = Policy(history_sources=frozenset({"cli", ""}))
    assert [line.text for line in desired_history("abc", rollouts, policy)] == ["cli", "unknown"]


def test_split_pending_holds_back_fresh_turns_but_exec_ones() -> None:
    rollouts = {
        "tui": facts_with("tui", source="vscode"),
        "exec": facts_with("exec", source="exec"),
        "old": facts_with("old"),
    }
    lines = [HistoryLine(sid, 1, "t") for sid in ("tui", "exec", "old", "unknown")]
    assert split_pending(lines, rollouts, frozenset()) == (lines, [])
    ready, pending = split_pending(lines, rollouts, frozenset({"tui", "exec", "unknown"}))
    assert [line.session_id for line in pending] == ["tui"]
    assert [line.session_id for line in ready] == ["exec", "old", "unknown"]


@settings(max_examples=300, deadline=None)
@given(existing=lines_st, desired=lines_st, tolerance=st.integers(0, 5))
def test_missing_lines_are_a_sub_multiset_of_desired(
    existing: list[HistoryLine], desired: list[HistoryLine], tolerance: int
) -> None:
    missing = missing_lines(existing, desired, tolerance)
    remaining = iter(desired)
    assert all(any(line == d for d in remaining) for line in missing), "in desired order"
    assert missing_lines([], desired, tolerance) == desired, "nothing there: all missing"
    assert missing_lines(desired, desired, tolerance) == [], "all there: nothing missing"
    # every desired line is accounted for by an existing line or is reported missing
    accounted = len(desired) - len(missing)
    assert accounted <= len([line for line in existing if line is not None])


def reference_missing_lines(
    existing: list[HistoryLine | None], desired: list[HistoryLine], tolerance_s: int
) -> list[HistoryLine]:
    """The pairing rule spelt out plainly: per `(session_id, key)`, both sides sorted newest
    first, each turn paired with the newest line within the tolerance not yet taken."""
    want: dict[tuple[str, int], list[int]] = {}
    for line in desired:
        want.setdefault((line.session_id, line.key), []).append(line.ts)
    have: dict[tuple[str, int], list[int]] = {}
    for got in existing:
        if got is not None:
            have.setdefault((got.session_id, got.key), []).append(got.ts)
    counts: dict[tuple[str, int, int], int] = {}
    for key, wanted in want.items():
        times = sorted(have.get(key, []), reverse=True)
        i = 0
        for ts in sorted(wanted, reverse=True):
            while i < len(times) and times[i] > ts + tolerance_s:
                i += 1
            if i < len(times) and abs(times[i] - ts) <= tolerance_s:
                i += 1
            else:
                counts[(*key, ts)] = counts.get((*key, ts), 0) + 1
    out = []
    for line in desired:
        if counts.get((line.session_id, line.key, line.ts), 0) > 0:
            counts[(line.session_id, line.key, line.ts)] -= 1
            out.append(line)
    return out


close_lines_st = st.lists(
    st.builds(
        HistoryLine,
        st.sampled_from(SIDS),
        st.integers(1000, 1012),
        st.sampled_from(["x", "y"]),
    ),
    max_size=30,
)


@settings(max_examples=400, deadline=None)
@given(
    existing=st.one_of(lines_st, close_lines_st),
    desired=st.one_of(lines_st, close_lines_st),
    tolerance=st.integers(0, 5),
    compact=st.booleans(),
)
def test_missing_lines_pairs_as_the_plain_rule_does(
    existing: list[HistoryLine], desired: list[HistoryLine], tolerance: int, compact: bool
) -> None:
    """Singletons, repeated turns and repeated lines of one key, from lines or columns."""
    expected = reference_missing_lines(list(existing), desired, tolerance)
    if compact:
        from codex_indexd.index.lines import HistoryFile

        columns = HistoryFile(compact=True)
        columns.extend([encode_history_line(line) for line in existing])
        assert missing_lines(columns.parsed, desired, tolerance) == expected
    else:
        assert missing_lines(existing, desired, tolerance) == expected


# -- the append under the lock -------------------------------------------------------------


def test_an_append_after_a_torn_line_starts_on_a_new_line() -> None:
    current = render([HistoryLine("a", 1000, "x")], []) + b'{"session_id":"a","ts":10'
    seen = parse_history_bytes(current)
    read_at = lambda o, n: current[o : o + n]  # noqa: E731
    planned = [HistoryLine("b", 1001, "ours")]
    decision = history_append(len(current), read_at, planned, Policy(), seen)
    assert decision is not None and decision.lines == 1
    assert bytes(decision.data) == b"\n" + encode_history_line(planned[0]) + b"\n"


def test_an_append_with_nothing_left_to_add_writes_nothing() -> None:
    current = render([HistoryLine("a", 1000, "x")], [])
    seen = parse_history_bytes(current)
    read_at = lambda o, n: current[o : o + n]  # noqa: E731
    decision = history_append(len(current), read_at, [], Policy(), seen)
    assert decision is not None and (bytes(decision.data), decision.lines, decision.over_cap) == (
        b"",
        0,
        0,
    )


def test_a_file_that_shrank_since_the_plan_is_not_appended_to() -> None:
    planned_on = render([HistoryLine("a", 1000 + i, f"p{i}") for i in range(3)], [])
    seen = parse_history_bytes(planned_on)
    now = planned_on[:10]
    read_at = lambda o, n: now[o : o + n]  # noqa: E731
    assert history_append(len(now), read_at, [HistoryLine("b", 1, "x")], Policy(), seen) is None


def test_threads_with_recent_turns_are_those_a_tui_may_still_write_for() -> None:
    from codex_indexd.index.history import threads_with_recent_turns
    from tests.support.facts import BASE_MS, by_id, rollout

    now = BASE_MS // 1000 + 100
    rollouts = by_id(
        [
            rollout(1, "old", at_ms=(now - 60) * 1000),
            rollout(2, "just now", at_ms=(now - 2) * 1000),
            rollout(3, "just now too", at_ms=(now - 2) * 1000, source="exec"),  # no own line
            rollout(4, "older turn", "and a new one", at_ms=(now - 4) * 1000),
            rollout(5),  # no turn at all
        ]
    )
    fresh = threads_with_recent_turns(rollouts, now, 3.0)
    assert fresh == {rollout(2).thread_id, rollout(4).thread_id}
    assert threads_with_recent_turns(rollouts, now + 10, 3.0) == frozenset()
