"""The fields of one `session_index.jsonl` or `history.jsonl` line (pure), read the way
`json.loads` reads it, and of many lines at once: a chunk decoded once, each line that is one
JSON object read by the decoder's scanner alone."""

from __future__ import annotations

import json
import re
import sys
from json.scanner import make_scanner

from codex_indexd.index.model import HistoryLine, IndexLine, text_key

_DECODER = json.JSONDecoder()
# The decoder's own scanner (C), without its wrappers; typeshed types its context oddly.
_SCAN_ONCE = make_scanner(_DECODER)  # type: ignore[arg-type]
# Canonical already: what `canonical_uuid` returns unchanged.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def json_object(raw: bytes) -> dict[str, object] | None:
    """Return the JSON object one line holds, or None when it holds anything else."""
    try:
        if raw[:1] == b"{" and raw[1:2] != b"\x00":
            # What `json.loads` does with bytes it finds to be UTF-8 (by their first two bytes),
            # without the detection and the wrappers.
            obj = _DECODER.decode(raw.decode("utf-8", "surrogatepass"))
        else:
            obj = json.loads(raw)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def json_lines(data: bytes) -> tuple[list[bytes], list[dict[str, object] | None]]:
    """Return `data.split(b"\\n")` and each line's `json_object`.

    The chunk is decoded once, and a line that is one object from its first character to its
    last is parsed by the decoder's scanner alone (what `json.loads` does for it, less the
    per-line decode and wrappers); any other line, and every line of a chunk that is not
    UTF-8, goes through `json_object`."""
    raws = data.split(b"\n")
    try:
        texts = data.decode("utf-8", "surrogatepass").split("\n")
    except UnicodeDecodeError:
        return raws, [json_object(raw) for raw in raws]
    return raws, [_line_object(raw, text) for raw, text in zip(raws, texts, strict=True)]


def _line_object(raw: bytes, text: str) -> dict[str, object] | None:
    """Return `json_object(raw)`, given `text`, the line decoded (see `json_lines`)."""
    if text[:1] == "{" and text[1:2] != "\x00":
        try:
            obj, end = _SCAN_ONCE(text, 0)
        except (StopIteration, ValueError):
            return None
        if end == len(text):
            return obj  # type: ignore[no-any-return]  # a dict: the text starts with "{"
    return json_object(raw)


def history_lines(data: bytes) -> tuple[list[bytes], list[tuple[str, int, str] | None]]:
    """Return `data.split(b"\\n")` and each line's `history_fields`, read as `json_lines`
    reads them. (A pattern for the lines as Codex writes them was slower than the scanner.)"""
    raws, objects = json_lines(data)
    return raws, [history_fields_of(obj) for obj in objects]


def canonical_uuid(text: str) -> str:
    """Return `str(uuid.UUID(text))`: the lower-case 8-4-4-4-12 form of a UUID string (braces,
    `urn:`/`uuid:` and hyphens anywhere accepted, as `uuid.UUID` accepts them). Raises
    ValueError for anything `uuid.UUID` refuses. The same steps as `uuid.UUID`; importing
    `uuid` would cost about 1.7 ms (it imports `platform`)."""
    if _CANONICAL_UUID.fullmatch(text):
        return text
    digits = text.replace("urn:", "").replace("uuid:", "").strip("{}").replace("-", "")
    if len(digits) != 32:
        raise ValueError("badly formed hexadecimal UUID string")
    value = int(digits, 16)
    if not 0 <= value < 1 << 128:
        raise ValueError("int is out of range (need a 128-bit value)")
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def parse_index_line(raw: bytes) -> IndexLine | None:
    """Return the line's fields when Codex would accept it (all three present, id a UUID)."""
    return index_line_of(json_object(raw))


def index_line_of(obj: dict[str, object] | None) -> IndexLine | None:
    """Return the fields of an index line's JSON object (see `parse_index_line`)."""
    if obj is None:
        return None
    thread_id, name, updated = obj.get("id"), obj.get("thread_name"), obj.get("updated_at")
    if not (isinstance(thread_id, str) and isinstance(name, str) and isinstance(updated, str)):
        return None
    try:
        canonical = canonical_uuid(thread_id)
    except ValueError:
        return None
    # Interned: a name is usually the thread's title, which the DB and rollout facts hold.
    return IndexLine(sys.intern(canonical), sys.intern(name), updated)


def history_fields(raw: bytes) -> tuple[str, int, str] | None:
    """Return a history line's session (interned), `ts` and text, or None when it does not
    parse; `conversation_id` is accepted for `session_id`."""
    return history_fields_of(json_object(raw))


def history_fields_of(obj: dict[str, object] | None) -> tuple[str, int, str] | None:
    """Return the fields of a history line's JSON object (see `history_fields`)."""
    if obj is None:
        return None
    session_id = obj.get("session_id", obj.get("conversation_id"))
    ts, text = obj.get("ts"), obj.get("text")
    if not isinstance(session_id, str) or not isinstance(text, str):
        return None
    if not isinstance(ts, int) or isinstance(ts, bool):
        return None
    return sys.intern(session_id), ts, text


def parse_history_line(raw: bytes, *, keep_text: bool = True) -> HistoryLine | None:
    """Return the fields of a history line (the text only as its key unless `keep_text`);
    `conversation_id` is accepted for `session_id`."""
    fields = history_fields(raw)
    if fields is None:
        return None
    session_id, ts, text = fields
    if keep_text:
        return HistoryLine(session_id, ts, text)
    return HistoryLine(session_id, ts, None, text_key(text))
