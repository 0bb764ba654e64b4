"""The buffer scanner finds exactly the facts the old line reader finds (the oracle), on
generated rollouts of every shape, on fuzzed bytes, and when a file is read in two steps."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codex_indexd.codex import scan as scan_mod
from codex_indexd.codex.envelope import quick_skip
from codex_indexd.codex.rollout import RolloutScan
from codex_indexd.codex.rollout_file import scan_file
from codex_indexd.codex.scan import feed_stream
from tests.support import rollout_oracle
from tests.unit.codex.test_fuzz import hostile_bytes

TID = "01a2133b-c369-7d21-8c95-fcf203b4a96c"
NAME = f"rollout-2026-11-25T00-00-00-{TID}.jsonl"
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
chunks = st.sampled_from([8192, 8193, 12_000, 1 << 20])

texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "  ", "\n", "hello\r\n", "# x ## My request for Codex:\nwhy", "\ud800"]),
    st.integers(9000, 30_000).map(lambda n: "long " * (n // 5)),
)
stamps = st.sampled_from(
    ["2026-11-25T15:06:12.000Z", "2026-11-25T15:06:13.123Z", "not a time", "2026-11-25T15:06:14Z"]
)


def make_line(
    ts: str, kind: str, payload: dict[str, Any], *, compact: bool = True, ordinal: int | None = None
) -> bytes:
    """One line; Codex writes compact JSON (and `ordinal` after the timestamp when paginated),
    which the scanner's quick test recognises."""
    separators = (",", ":") if compact else (", ", ": ")
    obj: dict[str, Any] = {"timestamp": ts}
    if ordinal is not None:
        obj["ordinal"] = ordinal
    obj |= {"type": kind, "payload": payload}
    return json.dumps(obj, separators=separators).encode()


@st.composite
def rollout_line(draw: st.DrawFn) -> bytes:
    ts = draw(stamps)
    shape = draw(st.integers(0, 13))
    text = draw(texts)
    compact = draw(st.booleans())
    ordinal = draw(st.sampled_from([None, None, 0, 7, 123456]))

    def envelope(ts: str, kind: str, payload: dict[str, Any]) -> bytes:
        return make_line(ts, kind, payload, compact=compact, ordinal=ordinal)

    if shape == 12:  # a known, never-a-turn payload type, maybe long, maybe with markers
        kind, sub = draw(
            st.sampled_from(
                [
                    ("response_item", "function_call_output"),
                    ("response_item", "reasoning"),
                    ("response_item", "message"),
                    ("event_msg", "token_count"),
                    ("event_msg", "agent_message"),
                    ("event_msg", "task_started"),
                ]
            )
        )
        return envelope(ts, kind, {"type": sub, "message": text, "output": text})
    if shape == 13:  # a quick envelope whose rest is broken and names a user turn
        head = envelope(ts, "response_item", {"type": "function_call_output"})[:-2]
        return head + b',"x":{"type":"event_msg","payload":{"type":"user_message"'
    if shape == 0:
        return envelope(
            ts,
            "session_meta",
            {
                "id": draw(st.sampled_from([TID, TID.upper(), "x"])),
                "timestamp": ts,
                "source": "cli",
            },
        )
    if shape == 1:
        return envelope(
            ts,
            "event_msg",
            {
                "type": "user_message",
                "message": text,
                "images": draw(st.sampled_from([None, [], ["u"]])),
            },
        )
    if shape == 2:
        item = {"type": "UserMessage", "content": [{"type": "text", "text": text}]}
        pad = "p" * draw(st.sampled_from([0, 600, 5000]))
        return envelope(ts, "event_msg", {"type": "item_completed", "pad": pad, "item": item})
    if shape == 3:
        return envelope(ts, "event_msg", {"type": "thread_name_updated", "thread_name": text})
    if shape == 4:  # tool output, often long; or a user message of a newer shape
        kind = draw(st.sampled_from(["function_call_output", "message", "user_input"]))
        content = [{"type": "input_text", "text": text}]
        return envelope(ts, "response_item", {"type": kind, "content": content})
    if shape == 5:
        kind = draw(st.sampled_from(["token_count", "user_turn_v2", "agent_message"]))
        return envelope(ts, "event_msg", {"type": kind, "message": text})
    if shape == 6:
        return b" \t " * draw(st.integers(0, 5000))
    if shape == 7:
        return b"not json " + text.encode("utf-8", "surrogatepass")
    if shape == 8:
        return b'{"type":"message","instructions":"bare"}'
    if shape == 9:  # the marker far from the head: not a candidate for either reader
        return (
            b'{"timestamp":"' + ts.encode() + b'","pad":"' + b"q" * 600 + b'","type":"event_msg"}'
        )
    if shape == 10:
        return draw(st.binary(max_size=50)).replace(b"\n", b"")
    return envelope(ts, "event_msg", {"type": "user_message", "message": "x" * 20_000})


@st.composite
def rollout_bytes(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(rollout_line(), max_size=14))
    ends = draw(
        st.lists(
            st.sampled_from([b"\n", b"\r\n", b"\r\r\n", b"\n\n"]),
            min_size=len(lines),
            max_size=len(lines),
        )
    )
    body = b"".join(line + end for line, end in zip(lines, ends, strict=True))
    return body + draw(st.sampled_from([b"", b'{"timestamp":"2026-11-25T1', b"x" * 9000]))


def observed(scan: RolloutScan) -> tuple[object, ...]:
    return (
        scan.facts,
        scan.offset,
        scan.lines,
        scan.malformed,
        scan.too_long,
        scan.bare,
        scan.usable,
        scan.unknown_user_shapes,
        scan.unknown_shape,
    )


def by_oracle(data: bytes, offset: int = 0, scan: RolloutScan | None = None) -> RolloutScan:
    scan = scan or RolloutScan.start(Path(NAME))
    stream = io.BufferedReader(io.BytesIO(data), buffer_size=1 << 20)
    stream.seek(offset)
    scan.offset = offset
    rollout_oracle._feed_from(scan, stream.readline, Path(NAME))
    return scan


def by_scanner(
    data: bytes, chunk: int, upto: int | None = None, scan: RolloutScan | None = None
) -> RolloutScan:
    scan = scan or RolloutScan.start(Path(NAME))
    stream = io.BytesIO(data[: upto if upto is not None else len(data)])
    stream.seek(scan.offset)
    feed_stream(scan, stream.readinto, chunk=chunk)
    return scan


@SETTINGS
@given(rollout_bytes(), chunks)
def test_same_facts_as_the_old_reader_on_generated_rollouts(data: bytes, chunk: int) -> None:
    assert observed(by_scanner(data, chunk)) == observed(by_oracle(data))


@SETTINGS
@given(hostile_bytes, chunks)
def test_same_facts_as_the_old_reader_on_fuzzed_bytes(data: bytes, chunk: int) -> None:
    assert observed(by_scanner(data, chunk)) == observed(by_oracle(data))


@SETTINGS
@given(rollout_bytes(), chunks, st.floats(0, 1))
def test_reading_in_two_steps_equals_one_read(data: bytes, chunk: int, cut: float) -> None:
    """The daemon reads what was appended since the last complete line."""
    first = by_scanner(data, chunk, upto=int(len(data) * cut))
    assert observed(first) == observed(by_oracle(data[: int(len(data) * cut)]))
    if first.bare:
        return
    both = by_scanner(data, chunk, scan=first)
    assert observed(both) == observed(by_oracle(data))


@pytest.mark.parametrize("size", [0, 100, 9000, 3_000_000])
def test_scan_file_on_disk_equals_the_oracle(tmp_path: Path, size: int) -> None:
    path = tmp_path / NAME
    lines = [make_line("2026-11-25T15:06:12.000Z", "session_meta", {"id": TID})]
    lines.append(make_line("2026-11-25T15:06:13.000Z", "response_item", {"o": "y" * size}))
    lines.append(
        make_line(
            "2026-11-25T15:06:14.000Z",
            "event_msg",
            {"type": "user_message", "message": "z" * size + "end"},
        )
    )
    path.write_bytes(b"\n".join(lines) + b"\n")
    new = scan_file(RolloutScan.start(path), path)
    old = rollout_oracle.scan_file(
        RolloutScan.start(path), path, long_names_above=scan_mod.MAX_HELD_LINE
    )
    assert observed(new) == observed(old)
    assert new.facts.user_turns[0].text == "z" * size + "end"


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(rollout_bytes(), st.floats(0, 1))
def test_scan_file_reads_a_file_and_its_tail_like_the_oracle(data: bytes, cut: float) -> None:
    """scan_file sizes its buffer to what is left to read: a whole small file, then a tail."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / NAME
        path.write_bytes(data[: int(len(data) * cut)])
        first = scan_file(RolloutScan.start(path), path)
        head = by_oracle(data[: int(len(data) * cut)], scan=RolloutScan.start(path))
        assert observed(first) == observed(head)
        if first.bare:
            return
        path.write_bytes(data)
        whole = by_oracle(data, scan=RolloutScan.start(path))
        assert observed(scan_file(first, path)) == observed(whole)


TS24 = "2026-11-25T15:06:12.000Z"


@pytest.mark.parametrize(
    ("line", "quick"),
    [
        (make_line(TS24, "response_item", {"type": "function_call_output"}), True),
        (make_line(TS24, "response_item", {"type": "function_call"}), True),
        (make_line(TS24, "event_msg", {"type": "token_count"}, ordinal=12), True),
        (make_line(TS24, "event_msg", {"type": "user_message", "message": "x"}), False),
        (make_line(TS24, "event_msg", {"type": "item_completed"}, ordinal=3), False),
        (make_line(TS24, "event_msg", {"type": "thread_name_updated"}), False),
        (make_line(TS24, "session_meta", {"id": TID}), False),
        (make_line(TS24, "response_item", {"type": "function_call_outputs"}), False),
        (make_line(TS24, "event_msg", {"type": "token_count"}, compact=False), False),
        (make_line("2026-11-25T15:06:14Z", "event_msg", {"type": "token_count"}), False),
    ],
)
def test_quick_skip_takes_only_known_never_turn_envelopes(line: bytes, quick: bool) -> None:
    assert quick_skip(line) is quick
    assert quick_skip(b"\n" + line, 1) is quick
