"""Streaming reader for rollout files of all three generations: bare 2025 files (no `type`;
Codex ignores them, so do we), envelope files whose user turns are `event_msg` `user_message`,
and paginated files whose user turns are `event_msg` `item_completed` with a `UserMessage`.

The reader is incremental: `RolloutScan` keeps the facts gathered so far and the byte offset
of the end of the last complete line, so the daemon can feed it only appended bytes. Only
lines that can matter are JSON-parsed; the rest (mostly tool output) are recognised by a
cheap look at their first bytes.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from codex_indexd.codex.envelope import quick_skip
from codex_indexd.codex.home import thread_id_from_name
from codex_indexd.codex.longline import LineSkeleton, LongString, Pread, TurnText, decode
from codex_indexd.codex.scan import MAX_CANDIDATE_BYTES
from codex_indexd.codex.shapes import unknown_user_shape
from codex_indexd.index.model import Rename, RolloutFacts, UserTurn, text_key
from codex_indexd.index.timefmt import epoch_ms, epoch_seconds
from codex_indexd.log import get_logger
from codex_indexd.records import field, record

log = get_logger("codex_indexd.rollout")

MAX_LINE_BYTES = MAX_CANDIDATE_BYTES  # a longer user turn is read in pieces (see longline)
_HEAD = 512  # bytes of a line looked at before deciding to parse it
_ITEM_HEAD = 4096
_IDE_MARKER = "## My request for Codex:"
_TS_PREFIX = b'{"timestamp":"'


def strip_ide_prefix(text: str) -> str:
    """Return what follows Codex's IDE marker, trimmed, or the text itself when absent."""
    marker = text.find(_IDE_MARKER)
    if marker == -1:
        return text
    return text[marker + len(_IDE_MARKER) :].strip()


@record(slots=True)
class RolloutScan:
    """Reader state for one rollout: facts so far, and where the next read starts."""

    facts: RolloutFacts
    offset: int = 0
    lines: int = 0
    malformed: int = 0
    too_long: int = 0
    bare: bool = False
    expected_id: str | None = None
    _meta_locked: bool = field(default=False)
    # False in the daemon: turns keep their text's key and their line's offset, not the text.
    keep_text: bool = True
    line_start: int = 0  # offset of the line being fed
    _pread: Pread | None = field(default=None, repr=False, compare=False)
    # Lines of a shape this reader does not know that seem to carry user text (a newer
    # Codex may keep turns there), and the first such shape, e.g. "event_msg/user_turn_v2".
    unknown_user_shapes: int = 0
    unknown_shape: str | None = None

    @classmethod
    def start(cls, path: Path | str, *, archived: bool = False) -> RolloutScan:
        """Return an empty scan for `path` (the thread id is taken from its name)."""
        expected = thread_id_from_name(os.path.basename(path))
        facts = RolloutFacts(thread_id=expected or "", path=str(path), archived=archived)
        return cls(facts=facts, expected_id=expected)

    @property
    def usable(self) -> bool:
        """True when the file had a `session_meta` Codex would accept."""
        return self.facts.has_meta and not self.bare and bool(self.facts.thread_id)

    def feed(self, line: bytes) -> None:
        """Update the facts with one complete line (without its newline)."""
        self.lines += 1
        if line.startswith(_TS_PREFIX):
            end = line.find(b'"', len(_TS_PREFIX))
            if end != -1:
                self.facts.last_timestamp = line[len(_TS_PREFIX) : end].decode("ascii", "replace")
        if not line.startswith(b"{"):
            if line.strip():
                self.malformed += 1  # not a JSON object: Codex skips it too
            return
        if self.lines > 1 and quick_skip(line):
            return  # Codex's envelope with a payload type that is never a turn
        head = line[:_HEAD]
        if self.lines == 1 and b'"type"' not in head and b'"instructions"' in head:
            self.bare = True
            return
        if b'"session_meta"' in head:
            self._on_session_meta(line)
        elif b'"event_msg"' in head and _may_be_user_event(head, line):
            self._on_event(line)
        elif b'"input_text"' in head or b'"message":' in head:
            self.note_shape(head)

    def feed_long(
        self, head: bytes, skeleton: LineSkeleton, pread: Pread, *, blank: bool = False
    ) -> None:
        """Update the facts with one candidate line too long to hold, as `feed` would with
        the whole line: from its first bytes and its skeleton, its long strings read back
        through `pread`. `blank` says the line is only whitespace."""
        short = head[:_HEAD]
        is_object = head.startswith(b"{")
        bare = self.lines == 0 and b'"type"' not in short and b'"instructions"' in short
        is_meta = b'"session_meta"' in short
        relevant = (
            is_object
            and not bare
            and (is_meta or (b'"event_msg"' in short and _may_be_user_event(short, head)))
        )
        obj: dict[str, Any] | None = None
        if relevant:
            parsed = _LONG_KEY if skeleton.failed else self._parse_long(skeleton, pread)
            if parsed is _LONG_KEY:
                self.too_long += 1  # a shape the skeleton cannot describe: skipped
                self.note_skipped_turn(head)
                return
            obj = parsed if isinstance(parsed, dict) else None
        self.lines += 1
        if head.startswith(_TS_PREFIX):
            end = head.find(b'"', len(_TS_PREFIX))
            if end != -1:
                self.facts.last_timestamp = head[len(_TS_PREFIX) : end].decode("ascii", "replace")
        if not is_object:
            if not blank:
                self.malformed += 1  # not a JSON object: Codex skips it too
            return
        if bare:
            self.bare = True
            return
        if obj is None:
            return
        self._pread = pread
        try:
            if is_meta:
                self._on_session_meta_obj(obj)
            else:
                self._on_event_obj(obj)
        finally:
            self._pread = None

    def _parse_long(self, skeleton: LineSkeleton, pread: Pread) -> object:
        """Return the line's object, None (counted as malformed) as `_parse` would, or
        _LONG_KEY when a long string is an object key."""
        try:
            obj = skeleton.parse(_reject_constant)
            skeleton.check_strings(pread)
        except ValueError:
            if skeleton.has_long_key():
                return _LONG_KEY
            self.malformed += 1
            return None
        except OSError:
            self.malformed += 1
            return None
        if not isinstance(obj, dict):
            self.malformed += 1
            return None
        return obj

    def _parse(self, line: bytes) -> dict[str, Any] | None:
        """Return the line's object, or None (counted as malformed) where Codex's own parser
        would reject it too: invalid JSON or UTF-8, NaN/Infinity, or a lone surrogate."""
        try:
            if line[1:2] != b"\x00":  # (`feed` passes lines that start with "{")
                # What `json.loads` does with bytes it finds to be UTF-8 (by their first two
                # bytes), with one decoder for every line instead of one made per call.
                obj = _DECODER.decode(line.decode("utf-8", "surrogatepass"))
            else:
                obj = json.loads(line, parse_constant=_reject_constant)
            if _SURROGATE_ESCAPE.search(line) is not None:
                json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except ValueError:  # includes UnicodeDecodeError and UnicodeEncodeError
            self.malformed += 1
            return None
        if not isinstance(obj, dict):
            self.malformed += 1
            return None
        return obj

    def note_shape(self, head: bytes) -> None:
        """Look at the first bytes of a line that is not a candidate but holds a user-text
        marker (`"input_text"` or `"message":`): count it when its shape is unknown."""
        shape = unknown_user_shape(head)
        if shape is not None:
            self.unknown_user_shapes += 1
            self.facts.unknown_user_shapes += 1
            if self.unknown_shape is None:
                self.unknown_shape = self.facts.unknown_shape = shape

    def note_skipped_turn(self, head: bytes) -> None:
        """A user-turn line too long to hold was skipped: name the thread by the start of its
        text (from the line's first bytes) when it has no first message yet, so that it still
        gets its index line. The turn itself gets no history line."""
        if self.facts.first_user_message is not None:
            return
        prefix = _message_prefix(head)
        if prefix:
            self.facts.first_user_message = self.facts.title = prefix

    def _on_session_meta(self, line: bytes) -> None:
        obj = self._parse(line)
        if obj is not None:
            self._on_session_meta_obj(obj)

    def _on_session_meta_obj(self, obj: dict[str, Any]) -> None:
        if obj.get("type") != "session_meta" or self._meta_locked:
            return
        payload = obj.get("payload")
        if not isinstance(payload, dict):
            return
        meta_id = payload.get("id")
        if not isinstance(meta_id, str) or not meta_id:
            return
        if self.expected_id is not None and meta_id.lower() != self.expected_id:
            return  # a forked-from or appended foreign session_meta
        facts = self.facts
        self._meta_locked = True
        facts.has_meta = True
        facts.thread_id = self.expected_id or sys.intern(meta_id)
        created = payload.get("timestamp")
        if isinstance(created, str):
            facts.created_at = created
        source = payload.get("source")
        if isinstance(source, str):
            facts.source = sys.intern(source)
        elif isinstance(source, dict):
            facts.source = json.dumps(source, separators=(",", ":"))
        mode = payload.get("history_mode")
        if isinstance(mode, str):
            facts.history_mode = sys.intern(mode)

    def _on_event(self, line: bytes) -> None:
        obj = self._parse(line)
        if obj is not None:
            self._on_event_obj(obj)

    def _on_event_obj(self, obj: dict[str, Any]) -> None:
        if obj.get("type") != "event_msg":
            return
        payload = obj.get("payload")
        if not isinstance(payload, dict):
            return
        ts_raw = obj.get("timestamp")
        ts_text = ts_raw if isinstance(ts_raw, str) else None
        kind = payload.get("type")
        if kind == "user_message":
            message = payload.get("message")
            has_media = bool(payload.get("images")) or bool(payload.get("local_images"))
            if isinstance(message, LongString):
                self._on_long_user_turn([message], has_media, ts_text)
            else:
                self._on_user_turn(message if isinstance(message, str) else "", has_media, ts_text)
        elif kind == "item_completed":
            item = payload.get("item")
            if isinstance(item, dict) and item.get("type") == "UserMessage":
                parts, has_media = _user_message_item_parts(item)
                if any(isinstance(part, LongString) for part in parts):
                    self._on_long_user_turn(parts, has_media, ts_text)
                else:
                    self._on_user_turn("".join(map(str, parts)), has_media, ts_text)
        elif kind == "thread_name_updated":
            name = payload.get("thread_name")
            if isinstance(name, str) and name.strip() and ts_text is not None:
                self.facts.renames.append(Rename(name, ts_text, epoch_ms(ts_text)))

    def _on_user_turn(self, text: str, has_media: bool, ts_text: str | None) -> None:
        facts = self.facts
        stripped = strip_ide_prefix(text).strip()
        derived = stripped or ("[Image]" if has_media else "")
        if derived and facts.first_user_message is None:
            # Interned: the DB row's title and first message are usually the same text.
            facts.first_user_message = sys.intern(derived)
        if stripped and facts.title is None:
            facts.title = sys.intern(stripped)
        history_text = text.rstrip("\r\n")
        # Codex's composer trims what is typed and never submits blank text: no history line.
        if history_text.strip() and ts_text is not None:
            ts = epoch_seconds(ts_text)
            if ts is None:
                return
            if self.keep_text:
                if history_text == facts.first_user_message:
                    history_text = facts.first_user_message  # one object for both
                facts.user_turns.append(UserTurn(ts, history_text, offset=self.line_start))
            else:
                key = text_key(history_text)
                facts.user_turns.append(UserTurn(ts, None, key, self.line_start))

    def _on_long_user_turn(
        self, parts: list[str | LongString], has_media: bool, ts_text: str | None
    ) -> None:
        """`_on_user_turn` for a text read back in pieces: the key and the blank test cover
        the whole text, the title and first message come from its first PREFIX_CHARS
        characters, and the text itself is held only when `keep_text`."""
        pread = self._pread
        assert pread is not None
        collected = TurnText(keep=self.keep_text)
        try:
            for part in parts:
                if isinstance(part, str):
                    collected.add(part)
                else:
                    for piece in decode(pread, part):
                        collected.add(piece)
        except (ValueError, OSError):
            self.malformed += 1
            return
        facts = self.facts
        stripped = strip_ide_prefix(collected.prefix).strip()
        derived = stripped or ("[Image]" if has_media else "")
        if derived and facts.first_user_message is None:
            facts.first_user_message = sys.intern(derived)
        if stripped and facts.title is None:
            facts.title = sys.intern(stripped)
        if not collected.nonblank or ts_text is None:
            return
        ts = epoch_seconds(ts_text)
        if ts is None:
            return
        text = collected.text()
        facts.user_turns.append(UserTurn(ts, text, collected.key, self.line_start))


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONG_KEY = object()
_MESSAGE_KEYS = (b'"message":"', b'"text":"')


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _message_prefix(head: bytes) -> str:
    """Return the decodable start of the first message text in a line's first bytes."""
    for key in _MESSAGE_KEYS:
        at = head.find(key)
        if at == -1:
            continue
        raw = head[at + len(key) :]
        for cut in range(len(raw), max(len(raw) - 12, -1), -1):
            try:
                text = json.loads(b'"' + raw[:cut] + b'"')
                text.encode("utf-8")
            except ValueError:
                continue
            first = strip_ide_prefix(text).strip()
            return sys.intern(first) if first else ""
    return ""


def _may_be_user_event(head: bytes, line: bytes) -> bool:
    """Cheap pre-check: could this `event_msg` line be a user turn or a rename?"""
    if b'"user_message"' in head or b'"thread_name_updated"' in head:
        return True
    return b'"item_completed"' in head and b'"UserMessage"' in line[:_ITEM_HEAD]


def _user_message_item_parts(item: dict[str, Any]) -> tuple[list[str | LongString], bool]:
    """Return the text parts of a paginated `UserMessage` item, in order (their
    concatenation is the turn's text), and media presence."""
    parts: list[str | LongString] = []
    has_media = False
    content = item.get("content")
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text" and isinstance(part.get("text"), str | LongString):
                parts.append(part["text"])
            elif part.get("type") in {"image", "local_image", "localImage"}:
                has_media = True
    return parts, has_media
