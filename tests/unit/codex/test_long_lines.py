"""User turns on lines too long to hold: read back in pieces, they give the facts the whole
line gives (the oracle reads every line whole), names from the text's first characters."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codex_indexd.codex import longline
from codex_indexd.codex import scan as scan_mod
from codex_indexd.codex.longline import safe_cut
from codex_indexd.codex.rollout import RolloutScan
from codex_indexd.codex.rollout_file import read_turn
from codex_indexd.codex.scan import feed_stream
from tests.support import rollout_oracle

TID = "01a2133b-c369-7d21-8c95-fcf203b4a96c"
NAME = f"rollout-2026-11-25T00-00-00-{TID}.jsonl"
HELD = 9000
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(autouse=True)
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines over 9,000 bytes are streamed, strings over 64 bytes left out of the skeleton
    and read back 37 bytes at a time: every cut rule is exercised on small inputs."""
    monkeypatch.setattr(scan_mod, "MAX_HELD_LINE", HELD)
    monkeypatch.setattr(longline, "LONG_STRING", 64)
    monkeypatch.setattr(longline, "PIECE", 37)


alphabet = st.sampled_from(
    ["a", "é", "€", "😀", "\n", "\r", " ", '"', "\\", "\t", "\u2028", "\x01", "\ud800", "\udc00"]
)
texts = st.one_of(
    st.lists(alphabet, max_size=40).map("".join),
    st.sampled_from(["", "   ", "\n\r\n", "# ctx ## My request for Codex:\n  why  "]),
)
long_texts = st.tuples(texts, st.integers(2000, 12_000), texts).map(
    lambda t: t[0] + "x" * t[1] + t[2]
)
stamps = st.sampled_from(["2026-11-25T15:06:12.000Z", "2026-11-25T15:06:13.5Z", "bad"])


def dumps(obj: Any, ascii_only: bool) -> bytes:
    text = json.dumps(obj, ensure_ascii=ascii_only, separators=(",", ":"))
    return text.encode("utf-8", "surrogatepass")


@st.composite
def turn_line(draw: st.DrawFn) -> bytes:
    ts = draw(stamps)
    ascii_only = draw(st.booleans())
    images = draw(st.sampled_from([None, [], ["data:" + "i" * 10_000]]))
    if draw(st.booleans()):
        payload: dict[str, Any] = {
            "type": "user_message",
            "message": draw(st.one_of(long_texts, texts)),
            "images": images,
        }
    else:
        parts = draw(st.lists(st.one_of(long_texts, texts), min_size=1, max_size=3))
        content: list[dict[str, Any]] = [{"type": "text", "text": p} for p in parts]
        if images:
            content.insert(draw(st.integers(0, len(content))), {"type": "image", "url": images[0]})
        payload = {"type": "item_completed", "item": {"type": "UserMessage", "content": content}}
    return dumps({"timestamp": ts, "type": "event_msg", "payload": payload}, ascii_only)


@st.composite
def rollout(draw: st.DrawFn) -> bytes:
    meta = {"timestamp": "2026-11-25T15:06:11.000Z", "type": "session_meta", "payload": {"id": TID}}
    lines = [dumps(meta, True), *draw(st.lists(turn_line(), min_size=1, max_size=5))]
    if draw(st.booleans()):
        lines.insert(
            1, b'{"timestamp":"x","type":"response_item","payload":"' + b"o" * 20_000 + b'"}'
        )
    return b"\n".join(lines) + b"\n"


def oracle(data: bytes, *, keep_text: bool = True) -> RolloutScan:
    scan = RolloutScan.start(Path(NAME))
    scan.keep_text = keep_text
    stream = io.BufferedReader(io.BytesIO(data), buffer_size=1 << 20)
    rollout_oracle._feed_from(
        scan, stream.readline, Path(NAME), max_line=None, long_names_above=HELD
    )
    return scan


def scanner(data: bytes, *, keep_text: bool = True) -> RolloutScan:
    scan = RolloutScan.start(Path(NAME))
    scan.keep_text = keep_text

    def pread(offset: int, length: int) -> bytes:
        return data[offset : offset + length]

    feed_stream(scan, io.BytesIO(data).readinto, chunk=8192, pread=pread)
    return scan


def observed(scan: RolloutScan) -> tuple[object, ...]:
    return (scan.facts, scan.offset, scan.lines, scan.malformed, scan.too_long, scan.bare)


@SETTINGS
@given(rollout())
def test_streamed_turns_give_the_facts_of_whole_lines(data: bytes) -> None:
    assert observed(scanner(data)) == observed(oracle(data))


@SETTINGS
@given(rollout())
def test_keys_only_match_the_texts(data: bytes) -> None:
    keyed = scanner(data, keep_text=False)
    whole = oracle(data)
    assert [(t.ts, t.key, t.offset) for t in keyed.facts.user_turns] == [
        (t.ts, t.key, t.offset) for t in whole.facts.user_turns
    ]
    assert all(t.text is None for t in keyed.facts.user_turns)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(rollout())
def test_a_turn_read_back_by_offset_is_the_whole_text(tmp_path_factory: Any, data: bytes) -> None:
    path = tmp_path_factory.mktemp("r") / NAME
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        for turn in oracle(data).facts.user_turns:
            found = read_turn(fd, turn.offset, TID)
            assert found is not None and (found.text, found.key) == (turn.text, turn.key)
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("raw", "cut"),
    [
        (b"abc", 3),
        (b"ab\\", 2),
        (b"ab\\\\", 4),
        (b"ab\\u00", 2),
        (b"ab\\u00e9", 8),
        (b"ab\\ud83d", 2),
        (b"ab\\ud83d\\ude0", 2),
        (b"ab\\ud83d\\ude00", 14),
        ("ab€".encode()[:-1], 2),
        ("ab€".encode(), 2),
    ],
)
def test_safe_cut_never_splits_an_escape_a_pair_or_a_character(raw: bytes, cut: int) -> None:
    assert safe_cut(raw) == cut


def test_a_20mb_turn_is_read_with_bounded_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Key-only (the daemon): memory stays near one read piece; read back or kept (repair),
    the text is built once from its pieces (at most twice its size for a moment)."""
    import tracemalloc

    monkeypatch.setattr(scan_mod, "MAX_HELD_LINE", 1 << 20)  # the product's limits
    monkeypatch.setattr(longline, "LONG_STRING", 1024)
    monkeypatch.setattr(longline, "PIECE", 1 << 20)

    from codex_indexd.codex.rollout_file import scan_file
    from codex_indexd.index.model import text_key

    size = 20 * 1024 * 1024
    path = tmp_path / NAME
    meta = b'{"timestamp":"2026-11-25T15:06:11.000Z","type":"session_meta","payload":{"id":"%s"}}'
    turn = b'{"timestamp":"2026-11-25T15:06:12.000Z","type":"event_msg","payload":'
    turn += b'{"type":"user_message","message":"' + b"z" * size + b'"}}'
    path.write_bytes(meta % TID.encode() + b"\n" + turn + b"\n")
    peaks, keys = {}, {}
    for keep in (False, True):
        tracemalloc.start()
        scan = RolloutScan.start(path)
        scan.keep_text = keep
        scan_file(scan, path)
        peaks[keep] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        keys[keep] = scan.facts.user_turns[0].key
    assert keys[False] == keys[True] == text_key("z" * size)
    assert peaks[False] < 8 * 1024 * 1024, peaks
    assert peaks[True] < 2 * size + 4 * 1024 * 1024, peaks
    assert scan.facts.user_turns[0].text == "z" * size
    fd = os.open(path, os.O_RDONLY)
    try:
        tracemalloc.start()
        found = read_turn(fd, scan.facts.user_turns[0].offset, TID)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    finally:
        os.close(fd)
    assert found is not None and found.text == "z" * size
    assert found.key == scan.facts.user_turns[0].key
    assert peak < 2 * size + 4 * 1024 * 1024
