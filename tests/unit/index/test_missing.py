"""`missing_history`, thread by thread, is what `missing_lines` finds of the desired history
against the whole file, also where a thread's turns repeat a text or a line is close to
none; `HistoryFile.by_session` gives each session's `lines_for`."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codex_indexd.index import lines
from codex_indexd.index.history import desired_history, encode_history_line
from codex_indexd.index.history import missing_lines as reference
from codex_indexd.index.lines import HistoryFile, parse_history_bytes
from codex_indexd.index.missing import missing_history
from codex_indexd.index.model import (
    HistoryLine,
    Policy,
    RolloutFacts,
    Turns,
    UserTurn,
    signed_key,
    text_key,
)

SIDS = ["a", "b", "c", "d"]
TEXTS = ["x", "y", "", "é", "a\nb"]
turns_st = st.lists(st.tuples(st.integers(0, 9), st.sampled_from(TEXTS)), max_size=6)
# A file's lines: parsed ones of known and unknown sessions, and lines that do not parse.
file_st = st.lists(
    st.one_of(
        st.tuples(st.sampled_from([*SIDS, "other"]), st.integers(0, 12), st.sampled_from(TEXTS)),
        st.sampled_from([b"garbage", b"", b'{"session_id":1}']),
    ),
    max_size=14,
)


def _file(rows: list[tuple[str, int, str] | bytes], compact: bool, split: int) -> HistoryFile:
    """The parsed file; lines after `split` appended after `lines_for` indexed it."""
    raws = [r if isinstance(r, bytes) else encode_history_line(HistoryLine(*r)) for r in rows]
    history = HistoryFile(compact=compact)
    history.extend(raws[:split])
    history.lines_for(["a"])  # indexes the lines so far
    history.extend(raws[split:])
    return history


@settings(max_examples=400, deadline=None)
@given(
    threads=st.dictionaries(st.sampled_from(SIDS), turns_st, max_size=4),
    order=st.permutations([*SIDS, "gone"]),
    rows=file_st,
    split=st.integers(0, 14),
    compact=st.booleans(),
    keys_only=st.booleans(),
    tolerance=st.integers(0, 3),
    sources=st.sampled_from([None, frozenset({"cli"})]),
)
def test_missing_history_is_missing_lines_of_the_whole_file(
    *,
    threads: dict[str, list[tuple[int, str]]],
    order: list[str],
    rows: list[tuple[str, int, str] | bytes],
    split: int,
    compact: bool,
    keys_only: bool,
    tolerance: int,
    sources: frozenset[str] | None,
) -> None:
    rollouts = {}
    for tid, turns in threads.items():
        built = [UserTurn(ts, None if keys_only else text, text_key(text)) for ts, text in turns]
        source = "cli" if tid != "c" else None
        rollouts[tid] = RolloutFacts(tid, "/x", source=source, user_turns=Turns(built))
    policy = Policy(history_sources=sources, history_ts_tolerance_s=tolerance)
    history = _file(rows, compact, split)
    desired = desired_history(order, rollouts, policy)
    want = reference(history.parsed, desired, tolerance)
    got = missing_history(order, rollouts, history, policy)
    assert got == want
    assert [line.text for line in got] == [line.text for line in want]


@settings(max_examples=300, deadline=None)
@given(
    rows=file_st,
    split=st.integers(0, 14),
    compact=st.booleans(),
    wanted=st.sets(st.sampled_from([*SIDS, "other", "gone"])),
    walk_ratio=st.sampled_from([0, 32]),
    linear=st.sampled_from([0, 16]),
)
def test_by_session_is_lines_for_of_each_session(
    *,
    rows: list[tuple[str, int, str] | bytes],
    split: int,
    compact: bool,
    wanted: set[str],
    walk_ratio: int,
    linear: int,
) -> None:
    """The same whether it searches the index for each session, walks through it, or
    searches the session column (a compact file not indexed yet)."""
    history = _file(rows, compact, split)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lines, "_WALK_RATIO", walk_ratio)
        patch.setattr(lines, "_LINEAR_SESSIONS", linear)
        got = list(history.by_session(wanted))
    assert [sid for sid, _ in got] == sorted(wanted)
    for sid, keyed in got:
        assert keyed == [(signed_key(ln.key), ln.ts) for ln in history.lines_for([sid])]


def test_an_empty_file_misses_every_desired_line() -> None:
    turns = Turns([UserTurn(5, "x"), UserTurn(3, "y")])
    rollouts = {"a": RolloutFacts("a", "/x", user_turns=turns)}
    got = missing_history(["a"], rollouts, parse_history_bytes(b""), Policy())
    assert [(line.ts, line.text) for line in got] == [(3, "y"), (5, "x")]
