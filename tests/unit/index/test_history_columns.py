"""The daemon's compact `HistoryFile` (columns) holds the same lines as a parse of each line."""

from __future__ import annotations

import json
import random

import pytest

from codex_indexd.index import lines as lines_mod
from codex_indexd.index.lines import HistoryFile, parse_history_line
from codex_indexd.index.model import HistoryLine

SESSIONS = [f"0199a000-0000-7000-8000-00000000000{i}" for i in range(6)]


def _raw_lines(rng: random.Random, count: int) -> list[bytes]:
    out: list[bytes] = []
    for n in range(count):
        roll = rng.random()
        if roll < 0.05:
            out.append(b"{not json")
        elif roll < 0.08:
            out.append(b"")
        else:
            ts = rng.choice([n, 1_750_000_000 + n, -5, 1 << 70])
            body = {"session_id": rng.choice(SESSIONS), "ts": ts, "text": f"t{rng.random()}"}
            out.append(json.dumps(body).encode())
    return out


def _naive(raws: list[bytes]) -> list[HistoryLine | None]:
    return [parse_history_line(raw, keep_text=False) for raw in raws]


def test_compact_lines_match_a_parse_of_each_line() -> None:
    raws = _raw_lines(random.Random(3), 300)
    history = HistoryFile(compact=True)
    history.extend(raws[:100])
    history.extend(raws[100:])
    expected = _naive(raws)
    assert list(history.parsed) == expected
    assert history.parsed == expected and len(history.parsed) == len(raws)
    assert history.parsed[-1] == expected[-1] and history.parsed[5:9] == expected[5:9]
    assert history.raw == []  # compact: no line's bytes are kept
    kept = [line for line in expected if line is not None]
    assert history.first_ts == kept[0].ts and history.max_ts == max(x.ts for x in kept)


def test_lines_for_matches_a_filter_before_and_after_appends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lines_mod, "_UNINDEXED_LINES", 40)
    rng = random.Random(7)
    compact, full = HistoryFile(compact=True), HistoryFile()
    for _ in range(6):  # indexed, then a tail looked through, then indexed again
        batch = _raw_lines(rng, 30)
        compact.extend(batch)
        full.extend(batch)
        wanted = [SESSIONS[2], SESSIONS[0], "absent"]
        expected = [
            line
            for sid in wanted
            for line in _naive(full.raw)
            if line is not None and line.session_id == sid
        ]
        assert compact.lines_for(wanted) == expected
        assert [(x.session_id, x.ts, x.key) for x in full.lines_for(wanted)] == [
            (x.session_id, x.ts, x.key) for x in expected
        ]


def test_missing_lines_reads_compact_columns_as_it_reads_lines() -> None:
    from codex_indexd.index.history import missing_lines

    raws = _raw_lines(random.Random(11), 200)
    compact = HistoryFile(compact=True)
    compact.extend(raws)
    parsed = [line for line in _naive(raws) if line is not None]
    # Wanted: some lines that are there (a second of drift), some that are not.
    desired = [HistoryLine(x.session_id, x.ts + 1, None, x.key) for x in parsed[::3]]
    desired += [HistoryLine(SESSIONS[1], 5, None, 42), HistoryLine("absent", 9, None, 7)]
    from_lines = missing_lines(_naive(raws), desired, 5)
    assert missing_lines(compact.parsed, desired, 5) == from_lines
    assert HistoryLine("absent", 9, None, 7) in from_lines


@pytest.mark.parametrize(
    "raw",
    [
        b'{"session_id": "s", "ts": 1, "text": "a"}',
        b'\xef\xbb\xbf{"session_id": "s", "ts": 1, "text": "a"}',  # a BOM: json.loads drops it
        '{"session_id": "s", "ts": 1, "text": "a"}'.encode("utf-16-le"),
        b'{"session_id": "s", "ts": 1, "text": "\xff"}',  # not UTF-8
        b'{"session_id": "s", "ts": 1, "text": "\\ud800"}',  # a lone surrogate escape
        b"{",
    ],
)
def test_a_line_parses_as_json_loads_parses_it(raw: bytes) -> None:
    try:
        obj = json.loads(raw)
    except ValueError:
        expected = None
    else:
        expected = HistoryLine(obj["session_id"], obj["ts"], obj["text"])
    assert parse_history_line(raw) == expected


def test_packed_turns_read_back_as_given() -> None:
    from codex_indexd.index.model import Turns, UserTurn

    given = [UserTurn(5, None, (1 << 64) - 1, 10), UserTurn(-3, "hi", 0, -1), UserTurn(7, None)]
    turns = Turns(given)
    assert list(turns) == given and turns == given and len(turns) == 3
    assert turns[-1] == given[-1] and turns[1:] == given[1:] and turns.last_ts == 7
    assert list(turns.keyed()) == [(t.ts, t.key, t.text) for t in given]
    assert Turns().last_ts is None and Turns(given[::2]).texts is None
