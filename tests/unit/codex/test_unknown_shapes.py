"""Lines of shapes the reader does not know that carry user text are counted, not read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from codex_indexd.codex.rollout import RolloutScan
from codex_indexd.codex.rollout_file import scan_file
from codex_indexd.codex.shapes import unknown_user_shape

TID = "01a2133b-c369-7d21-8c95-fcf203b4a96c"
NAME = f"rollout-2026-11-26T00-06-10-{TID}.jsonl"
TS = "2026-11-25T15:06:11.000Z"


def envelope(kind: str, payload: Any, *, ordinal: int | None = None) -> bytes:
    obj: dict[str, Any] = {"timestamp": TS}
    if ordinal is not None:
        obj["ordinal"] = ordinal
    obj.update({"type": kind, "payload": payload})
    return json.dumps(obj, separators=(",", ":")).encode()


USER_TEXT = [{"type": "input_text", "text": "hello"}]
KNOWN = [
    envelope("session_meta", {"id": TID, "timestamp": TS}),
    envelope("response_item", {"type": "message", "role": "user", "content": USER_TEXT}),
    envelope("event_msg", {"type": "agent_message", "message": "hi"}),
    envelope("event_msg", {"type": "user_message", "message": "a real turn"}),
    envelope("event_msg", {"type": "token_count", "info": None}),
    envelope("event_msg", {"type": "brand_new_event", "info": "no user text"}),
    envelope("turn_context", {"cwd": "/"}),
    envelope("compacted", {"message": "a summary"}),
]
UNKNOWN = [
    envelope("response_item", {"type": "user_input", "content": USER_TEXT}, ordinal=4),
    envelope("event_msg", {"type": "user_turn_v2", "message": "a turn we cannot read"}),
    envelope("conversation_item", {"type": "text", "message": "x"}),
]


def test_unknown_shapes_with_user_text_are_counted_per_file(tmp_path: Path) -> None:
    path = tmp_path / NAME
    lines = [KNOWN[0], UNKNOWN[0], *KNOWN[1:], *UNKNOWN[1:], UNKNOWN[1]]
    path.write_bytes(b"\n".join(lines) + b"\n")
    scan = scan_file(RolloutScan.start(path), path)
    assert scan.unknown_user_shapes == 4
    assert scan.unknown_shape == "response_item/user_input"
    assert [t.text for t in scan.facts.user_turns] == ["a real turn"]


def test_known_shapes_count_nothing(tmp_path: Path) -> None:
    path = tmp_path / NAME
    path.write_bytes(b"\n".join(KNOWN) + b"\n")
    scan = scan_file(RolloutScan.start(path), path)
    assert (scan.unknown_user_shapes, scan.unknown_shape) == (0, None)


def test_the_shape_is_named() -> None:
    assert [unknown_user_shape(line[:512]) for line in UNKNOWN] == [
        "response_item/user_input",
        "event_msg/user_turn_v2",
        "conversation_item/text",
    ]
    assert all(unknown_user_shape(line[:512]) is None for line in KNOWN)
