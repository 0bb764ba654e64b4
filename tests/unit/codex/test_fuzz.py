"""Hostile input: no exception escapes the readers (hypothesis, 10,000+ examples in all)."""

from __future__ import annotations

import io
import json
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codex_indexd.codex import indexfiles
from codex_indexd.codex.indexfiles import extend_from
from codex_indexd.codex.rollout import RolloutScan
from codex_indexd.index.lines import (
    HistoryFile,
    IndexFile,
    parse_history_bytes,
    parse_index_bytes,
    split_lines,
)
from tests.support.rollout_oracle import iter_complete_lines

pytestmark = __import__("pytest").mark.slow
FUZZ = settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=True),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "payload",
                    "timestamp",
                    "message",
                    "item",
                    "content",
                    "text",
                    "id",
                    "session_id",
                    "ts",
                    "thread_name",
                    "updated_at",
                    "images",
                    "source",
                    "history_mode",
                ]
            ),
            inner,
            max_size=5,
        ),
    ),
    max_leaves=20,
)

interesting = st.sampled_from(
    [
        b'{"timestamp":"2026-11-25T15:06:12.000Z","type":"event_msg","payload":{"type":"user_message","message":',
        b'{"timestamp":"2026-11-25T15:06:12.000Z","type":"session_meta","payload":{"id":',
        b'{"timestamp":"x","type":"event_msg","payload":{"type":"item_completed","item":{"type":"UserMessage","content":',
        b'{"session_id":"a","ts":',
        b'{"id":"01a2133b-c369-7d21-8c95-fcf203b4a96c","thread_name":',
        b"\xef\xbb\xbf",
        b"\x00",
        b"\r\n",
        b"\n",
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        b"1e999999",
        b"\xff\xfe\xc3",
    ]
)
hostile_bytes = st.lists(
    st.one_of(
        st.binary(max_size=64),
        interesting,
        json_value.map(lambda v: json.dumps(v, default=str).encode()),
    ),
    max_size=12,
).map(b"".join)
TID = "01a2133b-c369-7d21-8c95-fcf203b4a96c"


def feed_all(data: bytes) -> RolloutScan:
    scan = RolloutScan.start(__import__("pathlib").Path(f"rollout-2026-11-25T00-00-00-{TID}.jsonl"))
    # No cap that a generated value could exceed: these tests are about what the reader counts.
    for line, _end in iter_complete_lines(io.BytesIO(data).readline, 0, max_line=len(data) + 1):
        if line:
            scan.feed(line)
    return scan


@FUZZ
@given(hostile_bytes)
def test_rollout_reader_never_raises(data: bytes) -> None:
    scan = feed_all(data)
    assert scan.offset <= len(data)
    assert all(isinstance(t.text, str) for t in scan.facts.user_turns)


@FUZZ
@given(st.lists(json_value, max_size=6))
def test_rollout_reader_on_envelopes_of_random_json(values: list[object]) -> None:
    lines = []
    for value in values:
        for kind in ("session_meta", "event_msg"):
            lines.append(
                json.dumps(
                    {
                        "timestamp": "2026-11-25T15:06:12.000Z",
                        "type": kind,
                        "payload": {
                            "type": "user_message",
                            "id": TID,
                            "message": value,
                            "item": value,
                            "images": value,
                        },
                    },
                    default=str,
                )
            )
    scan = feed_all(("\n".join(lines) + "\n").encode())
    assert scan.lines == len(lines)


@FUZZ
@given(hostile_bytes)
def test_index_reader_never_raises(data: bytes) -> None:
    parsed = parse_index_bytes(data)
    assert len(parsed.parsed) == len(split_lines(data)[0])
    assert len(parsed.malformed) == sum(1 for line in parsed.parsed if line is None)
    assert all(line.thread_id in parsed.latest for line in parsed.parsed if line is not None)


@FUZZ
@given(hostile_bytes)
def test_history_reader_never_raises(data: bytes) -> None:
    parsed = parse_history_bytes(data)
    assert b"\n".join(parsed.raw) + (b"\n" if data and parsed.ends_with_newline else b"") == data


@FUZZ
@given(hostile_bytes, st.integers(min_value=1, max_value=64))
def test_streamed_parse_equals_the_whole_file_parse(data: bytes, chunk: int) -> None:
    """`extend_from` reads a chunk at a time (lines longer than a chunk included) and must
    give exactly what parsing the whole bytes gives."""
    whole = parse_history_bytes(data)
    streamed = HistoryFile()
    with mock.patch.object(indexfiles, "READ_CHUNK", chunk):
        assert extend_from(streamed, io.BytesIO(data)) == len(data)
    assert streamed.raw == whole.raw
    assert streamed.parsed == whole.parsed
    assert (streamed.ends_with_newline, streamed.size) == (whole.ends_with_newline, whole.size)
    index = IndexFile()
    with mock.patch.object(indexfiles, "READ_CHUNK", chunk):
        extend_from(index, io.BytesIO(data))
    assert index.parsed == parse_index_bytes(data).parsed
