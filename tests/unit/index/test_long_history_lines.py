"""A very long turn's history line: encoded piece by piece, byte for byte what the one-shot
encoding gives, sized and written without ever being encoded whole."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codex_indexd.index import history
from codex_indexd.index.history import EncodedLines, encode_history_line, line_size
from codex_indexd.index.lines import HistoryFile
from codex_indexd.index.model import HistoryLine, Policy
from codex_indexd.index.plan import history_append
from codex_indexd.write.history_writer import append_history

MB = 1_000_000
# Characters JSON escapes, several UTF-8 lengths, an astral character.
ALPHABET = st.sampled_from(['"', "\\", "\n", "\t", "\x00", "\x1f", "a", "é", "€", "😀", " "])


@settings(max_examples=60, deadline=None)
@given(st.lists(ALPHABET, min_size=0, max_size=80).map("".join), st.integers(1, 9))
def test_pieces_make_the_same_bytes_as_one_encoding(text: str, piece: int) -> None:
    line = HistoryLine("sid-é", 1_700_000_000, text)
    old = history.ENCODE_PIECE
    history.ENCODE_PIECE = piece  # slices cut everywhere, between any two characters
    try:
        whole = json.dumps(
            {"session_id": "sid-é", "ts": 1_700_000_000, "text": text},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        encoded = EncodedLines.of([line, line], lead=b"\n")
        assert bytes(encoded) == b"\n" + whole + b"\n" + whole + b"\n"
        assert len(encoded) == len(bytes(encoded))
        assert line_size(line) == len(whole) + 1
    finally:
        history.ENCODE_PIECE = old


def test_a_lone_surrogate_is_refused_in_pieces_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "ENCODE_PIECE", 4)
    line = HistoryLine("s", 1, "long text with a lone \ud800 surrogate in it")
    with pytest.raises(UnicodeEncodeError):
        line_size(line)
    with pytest.raises(UnicodeEncodeError):
        EncodedLines.of([line])


def traced_peak(run: object) -> int:
    """The bytes `run()` allocated at its peak, over what was allocated before."""
    assert callable(run)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        run()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("unit", ["abcdefghij", 'say "hi" \\ then\nünïcödé\t'])
def test_sizing_and_encoding_never_hold_the_line_whole(unit: str) -> None:
    text = unit * (8 * MB // len(unit))
    line = HistoryLine("s", 1, text)
    encoded = EncodedLines.of([line])
    assert len(encoded) == len(encode_history_line(line)) + 1
    assert traced_peak(lambda: line_size(line)) < MB  # sized, never encoded whole

    def consume() -> None:
        assert sum(len(piece) for piece in encoded) == len(encoded)

    assert traced_peak(consume) < 5 * MB  # a few pieces at a time, never the 8 MB line


def test_an_append_of_a_long_line_never_holds_it_encoded(tmp_path: Path) -> None:
    """Planned, journaled before the lock, planned again under it, written: the encoded line
    is never held whole (the journal and the file get it piece by piece)."""
    path, journal = tmp_path / "history.jsonl", tmp_path / "journal" / "history.journal"
    path.write_bytes(b"")
    journal.parent.mkdir(mode=0o700)
    line = HistoryLine("s", 1, "abcdefghij" * (MB // 10) * 8)
    size = line_size(line)
    known = HistoryFile()
    policy = Policy()

    def decide(file_size: int, read_at: object) -> object:
        return history_append(file_size, read_at, [line], policy, known)  # type: ignore[arg-type]

    peak = traced_peak(lambda: append_history(path, journal, decide))  # type: ignore[arg-type]
    assert path.stat().st_size == size
    assert path.read_bytes() == encode_history_line(line) + b"\n"
    # Written in pieces of about 1 MiB; the line encoded whole would add 8 MB.
    assert peak < 4 * MB, f"peak {peak / MB:.1f} MB for a {size / MB:.1f} MB line"
