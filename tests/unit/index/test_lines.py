"""Index and history lines parsed a chunk at a time are parsed as line by line."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from codex_indexd.index.line_fields import (
    canonical_uuid,
    history_fields,
    history_lines,
    json_lines,
    json_object,
)
from codex_indexd.index.lines import HistoryFile, IndexFile, parse_history_bytes, parse_index_bytes

TID = "01a2133b-c369-7d21-8c95-fcf203b4a96c"

# Line pieces that make objects, near-objects, objects spread over two lines, padding, other
# encodings, bytes that are not UTF-8, lone surrogates and escapes.
PIECES = [
    b'{"session_id":"a","ts":1,"text":"x"}',
    b'{"session_id":"b","ts":2,"text":"\\u00e9\\n\\ud83d\\ude00"}',
    b'{"id":"' + TID.encode() + b'","thread_name":"n","updated_at":"2026-01-01T00:00:00Z"}',
    b'{"id":"' + TID.upper().encode() + b'","thread_name":"n","updated_at":"t"}',
    b'{"id":"{' + TID.encode() + b'}","thread_name":"n","updated_at":"t"}',
    b'{"session_id":"a","ts":1,"text":"x"} ',
    b'{"session_id":"a","ts":1,"text":"x"}\r',
    b' {"session_id":"a","ts":1,"text":"x"}',
    b'{"session_id":"a","ts":1,"text":"x"}{"a":1}',
    b'{"session_id":"a","ts":1,"text":"x"},{"a":1}',
    b'{"session_id":"a",',
    b'"ts":1,"text":"x"}',
    b'{"a":"x',
    b'y"}',
    b"{",
    b"}",
    b"",
    b"   ",
    b"[1,2]",
    b"3",
    b'"text"',
    b"garbage",
    b'{"ts":true,"session_id":"a","text":"x"}',
    b'{"ts":1e3,"session_id":"a","text":"x"}',
    b'{"ts":123456789012345678901234567890,"session_id":"a","text":"x"}',
    b'{"conversation_id":"c","ts":1,"text":"x"}',
    b'{"session_id":"a","ts":1,"text":"\xed\xa0\x80"}',  # a lone surrogate, as Codex may write
    b'{"session_id":"a","ts":1,"text":"\xff"}',  # not UTF-8
    b'{"session_id":"a","ts":1,"text":"caf\xc3\xa9"}',
    '{"a":1}'.encode("utf-16-le"),
    b'{\x00"\x00a\x00"\x00:\x001\x00}\x00',
    b'{"a":NaN}',
    b'{"a":1,"a":2}',
    # near the plain pattern of history lines
    b'{"session_id":"s","ts":-0,"text":""}',
    b'{"session_id":"s","ts":-12,"text":"t"}',
    b'{"session_id":"s","ts":012,"text":"t"}',
    b'{"session_id":"s","ts":1.5,"text":"t"}',
    b'{"session_id":"s","ts":9999999999999999999,"text":"t"}',
    b'{"session_id":"s","ts":99999999999999999999,"text":"t"}',
    b'{"session_id":"s","ts":1,"text":"a\\"}',  # unterminated: an escaped quote
    b'{"session_id":"s","ts":1,"text":"a\\\\"}',  # an escaped backslash
    b'{"session_id":"s","ts":1,"text":"a\\"b"}',  # an escaped quote
    b'{"session_id":"s","ts":1,"text":"a"b"}',
    b'{"session_id":"s","ts":1,"text":"tab\\there"}',  # an escaped tab
    b'{"session_id":"s","ts":1,"text":"raw\ttab"}',  # a raw tab: not JSON
    b'{"session_id":"s","ts":1,"text":"raw\x01"}',  # a raw control character
    b'{"session_id":"s\\u0041","ts":1,"text":"t"}',
    b'{"session_id":"s","ts":1,"text":"t","extra":1}',
    b'{"ts":1,"session_id":"s","text":"t"}',
    b'{"session_id":"s","ts":1,"text":"t","text":"u"}',
    b'{"session_id":"s","ts":1,"text":"t"}}',
    b'{"session_id":"s", "ts":1,"text":"t"}',
    b'{"session_id":"s","ts":1,"text":"\xe2\x80\xa8 \xf0\x9f\x98\x80 \x7f"}',
]
lines_st = st.lists(st.sampled_from(PIECES), max_size=12)


def line_by_line(lines: list[bytes]) -> list[dict[str, object] | None]:
    return [json_object(raw) for raw in lines]


def same_objects(got: list[dict[str, object] | None], want: list[dict[str, object] | None]) -> bool:
    """Equal, NaN included (NaN != NaN)."""
    return json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)


@settings(max_examples=400, deadline=None)
@given(lines=lines_st)
def test_json_lines_gives_each_lines_object_as_one_line_alone_does(lines: list[bytes]) -> None:
    data = b"\n".join(lines)
    raws, objects = json_lines(data)
    assert raws == data.split(b"\n")
    assert same_objects(objects, line_by_line(raws))


@settings(max_examples=400, deadline=None)
@given(lines=lines_st)
def test_history_lines_gives_each_lines_fields_as_one_line_alone_does(lines: list[bytes]) -> None:
    data = b"\n".join(lines)
    raws, fields = history_lines(data)
    assert raws == data.split(b"\n")
    assert fields == [history_fields(raw) for raw in raws]
    for got, raw in zip(fields, raws, strict=True):
        want = history_fields(raw)
        assert got is None or want is None or type(got[1]) is type(want[1]) is int


@settings(max_examples=300, deadline=None)
@given(lines=lines_st, newline=st.booleans())
def test_a_parse_from_bytes_is_the_parse_line_by_line(lines: list[bytes], newline: bool) -> None:
    data = b"\n".join(lines) + (b"\n" if newline and lines else b"")
    raws = data.split(b"\n")
    if data.endswith(b"\n"):
        raws.pop()
    elif not data:
        raws = []
    index = parse_index_bytes(data)
    by_line = IndexFile(ends_with_newline=data.endswith(b"\n") or not data, size=len(data))
    by_line.extend(raws)
    assert index == by_line
    for compact in (False, True):
        history = HistoryFile(compact=compact, size=len(data))
        if data:
            history.extend_data(data[:-1] if data.endswith(b"\n") else data)
        lined = HistoryFile(compact=compact, size=len(data))
        lined.extend(raws)
        assert list(history.parsed) == list(lined.parsed)
        assert (history.raw, history.first_raw, history.last_raw) == (
            lined.raw,
            lined.first_raw,
            lined.last_raw,
        )
        assert (history.first_ts, history.max_ts, len(history)) == (
            lined.first_ts,
            lined.max_ts,
            len(lined),
        )
    plain = parse_history_bytes(data)
    assert plain.raw == raws and plain.ends_with_newline == (data.endswith(b"\n") or not data)


@given(st.uuids())
def test_a_canonical_uuid_is_itself_and_others_are_made_canonical(value: object) -> None:
    text = str(value)
    assert canonical_uuid(text) == text
    assert canonical_uuid(text.upper()) == text
    assert canonical_uuid("{" + text + "}") == text
    assert canonical_uuid(text.replace("-", "")) == text
