"""The rollout reader across the three format generations (bare, envelope, paginated)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from codex_indexd.codex.home import is_rollout_name, thread_id_from_name
from codex_indexd.codex.rollout import RolloutScan, strip_ide_prefix
from codex_indexd.codex.rollout_file import scan_file
from tests.support.homes import (
    Turn,
    line,
    new_thread,
    record,
    response_message,
    rollout_lines,
    session_meta,
    thread_renamed,
    write_rollout,
)
from tests.support.homes import user_message as user_message_line
from tests.support.rollout_oracle import iter_complete_lines

TID = "01a2133b-c369-7d21-8c95-fcf203b4a96c"
NAME = f"rollout-2026-11-26T00-06-10-{TID}.jsonl"


def scan_text(tmp_path: Path, text: str | bytes, name: str = NAME) -> RolloutScan:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return scan_file(RolloutScan.start(path), path)


def meta(tid: str = TID, **extra: Any) -> str:
    fields = {"source": "cli", **extra}  # `extra` may override the source
    return session_meta(tid, "2026-11-25T15:06:10.700Z", **fields)


def user_message(text: str, ts: str = "2026-11-25T15:06:12.000Z", **extra: Any) -> str:
    return user_message_line(text, ts, **extra)


def test_names_and_ids() -> None:
    assert is_rollout_name(NAME)
    assert is_rollout_name(NAME + ".zst")
    assert not is_rollout_name("." + NAME + ".paginated.tmp")
    assert not is_rollout_name("notes.jsonl")
    assert thread_id_from_name(NAME) == TID
    assert thread_id_from_name("rollout-2026-11-26T00-06-10-nope.jsonl") is None


def test_legacy_user_turns_and_title(tmp_path: Path) -> None:
    text = (
        meta()
        + user_message("First question\n\n")
        + user_message("Second", ts="2026-11-25T15:07:00.000Z")
    )
    scan = scan_text(tmp_path, text)
    assert scan.usable
    facts = scan.facts
    assert facts.first_user_message == "First question"
    assert facts.title == "First question"
    assert [(t.ts, t.text) for t in facts.user_turns] == [
        (1795619172, "First question"),
        (1795619220, "Second"),
    ]
    assert facts.last_timestamp == "2026-11-25T15:07:00.000Z"


def test_paginated_item_completed_user_message(tmp_path: Path) -> None:
    thread = new_thread(1, turns=2, paginated=True)
    path = write_rollout(tmp_path, thread)
    scan = scan_file(RolloutScan.start(path), path)
    assert scan.facts.history_mode == "paginated"
    assert [t.text for t in scan.facts.user_turns] == [t.text for t in thread.turns]
    assert scan.facts.title == thread.turns[0].text


def test_response_item_user_messages_are_never_used(tmp_path: Path) -> None:
    ctx = response_message(
        "<environment_context>x</environment_context>", "2026-11-25T15:06:11.000Z"
    )
    scan = scan_text(tmp_path, meta() + ctx)
    assert scan.usable
    assert scan.facts.first_user_message is None
    assert scan.facts.title is None
    assert scan.facts.user_turns == []


def test_ide_prefix_and_image_placeholder(tmp_path: Path) -> None:
    ide = "# Context from my IDE setup:\n## Open tabs: a.py\n## My request for Codex:\nExplain the prefix stripping\n"
    scan = scan_text(tmp_path, meta() + user_message("", images=["data:x"]) + user_message(ide))
    assert scan.facts.first_user_message == "[Image]"
    assert scan.facts.title == "Explain the prefix stripping"
    # history keeps what the user submitted (only trailing newlines stripped)
    assert scan.facts.user_turns[-1].text == ide.rstrip("\n")
    assert strip_ide_prefix("no marker") == "no marker"


def test_first_matching_session_meta_wins(tmp_path: Path) -> None:
    other = "01a2133b-0000-7000-8000-000000000000"
    text = meta(other, source="exec") + meta(TID, source="vscode") + meta(TID, source="exec")
    scan = scan_text(tmp_path, text)
    assert scan.facts.thread_id == TID
    assert scan.facts.source == "vscode"


def test_bare_2025_file_is_not_usable(tmp_path: Path) -> None:
    text = line({"id": TID, "timestamp": "2025-06-01T17:24:21.123Z", "instructions": None}) + line(
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    )
    scan = scan_text(tmp_path, text)
    assert scan.bare and not scan.usable


def test_partial_last_line_is_never_consumed(tmp_path: Path) -> None:
    full = meta() + user_message("done")
    partial = user_message("half written")[:-20]
    path = tmp_path / NAME
    path.write_text(full + partial)
    scan = scan_file(RolloutScan.start(path), path)
    assert scan.offset == len(full.encode())
    assert [t.text for t in scan.facts.user_turns] == ["done"]
    with path.open("a") as handle:
        handle.write(user_message("half written")[-20:])
    scan = scan_file(scan, path)
    assert [t.text for t in scan.facts.user_turns] == ["done", "half written"]
    assert scan.offset == path.stat().st_size


@pytest.mark.parametrize(
    "bad",
    [
        b"\xff\xfe not utf8 user_message\n",
        b'["event_msg", "user_message"]\n',
        b"42\n",
        b'{"timestamp":"x","type":"event_msg","payload":"user_message"}\n',
        b"{not json user_message\n",
    ],
)
def test_bad_lines_are_skipped(tmp_path: Path, bad: bytes) -> None:
    data = meta().encode() + bad + user_message("kept").encode()
    scan = scan_text(tmp_path, data)
    assert [t.text for t in scan.facts.user_turns] == ["kept"]


def test_long_line_is_skipped_with_bounded_buffer() -> None:
    data = b"a\n" + b"x" * 5000 + b"\nb\n"
    out = list(iter_complete_lines(io.BytesIO(data).readline, 0, max_line=100))
    assert out == [(b"a", 2), (None, 5003), (b"b", 5005)]


def test_thread_name_updated_events(tmp_path: Path) -> None:
    rename = thread_renamed(TID, "Apples", "2026-11-25T16:00:00.000Z")
    scan = scan_text(tmp_path, meta() + rename)
    assert [r.name for r in scan.facts.renames] == ["Apples"]


def test_zst_rollout(tmp_path: Path) -> None:
    zstandard = pytest.importorskip("zstandard")
    thread = new_thread(3, turns=2, paginated=True)
    raw = "".join(rollout_lines(thread)).encode()
    path = tmp_path / f"rollout-2026-11-20T10-03-00-{thread.thread_id}.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(raw))
    scan = scan_file(RolloutScan.start(path), path)
    assert scan.usable and len(scan.facts.user_turns) == 2


def test_multi_part_paginated_text(tmp_path: Path) -> None:
    item = {
        "type": "UserMessage",
        "id": "u",
        "content": [{"type": "text", "text": "ab"}, {"type": "text", "text": "cd"}],
    }
    payload = {"type": "item_completed", "thread_id": TID, "turn_id": "t", "item": item}
    ev = record("2026-11-25T15:06:12.000Z", "event_msg", payload, ordinal=3)
    scan = scan_text(tmp_path, meta(history_mode="paginated") + ev)
    assert scan.facts.user_turns[0].text == "abcd"
    assert json.loads(ev)["payload"]["item"]["type"] == "UserMessage"


def test_turn_with_images_only_in_paginated(tmp_path: Path) -> None:
    thread = new_thread(2, turns=1, paginated=True)
    thread.turns = [Turn("", images=["data:image/png;base64,AAAA"])]
    path = write_rollout(tmp_path, thread)
    scan = scan_file(RolloutScan.start(path), path)
    assert scan.facts.first_user_message == "[Image]"
    assert scan.facts.user_turns == []


def _loads_or_none(line: bytes) -> object:
    """What `json.loads` (NaN and Infinity refused) makes of a line, or None."""

    def reject(name: str) -> Any:
        raise ValueError(name)

    try:
        obj = json.loads(line, parse_constant=reject)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


@pytest.mark.parametrize(
    "line",
    [
        b'{"type":"event_msg","payload":{"type":"user_message","message":"h\\u00e9"}}',
        '{"type":"event_msg","payload":{"message":"\u00e9\u4e2d"}}'.encode(),
        '{"type":"event_msg","payload":{}}'.encode("utf-16-le"),
        '{"a":1}'.encode("utf-32-le"),
        b'{"a":NaN}',
        b'{"a":Infinity}',
        b'{"a":"\xff"}',
        b'{"a":"\xed\xa0\x80"}',
        b'{"a":1} x',
        b"{",
        b"{\x00",
        b'{"a":1}\n',
    ],
)
def test_line_parse_equals_json_loads(line: bytes) -> None:
    """A line is parsed as `json.loads` parses bytes (its encoding found from the first
    bytes), whichever way the reader gets there."""
    scan = RolloutScan.start(Path(NAME))
    assert scan._parse(line) == _loads_or_none(line)
    assert scan.malformed == (0 if _loads_or_none(line) is not None else 1)
