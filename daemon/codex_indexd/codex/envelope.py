"""The head of a rollout line in Codex's compact JSON envelope: where its fields sit, and
which payload types are never a user turn, a rename or a `session_meta` (such a line is only
counted by the readers, whatever follows)."""

from __future__ import annotations

from codex_indexd.codex.shapes import KNOWN_EVENTS, KNOWN_RESPONSE_ITEMS

TS_PREFIX = b'{"timestamp":"'
TS_LEN = len(TS_PREFIX)
WS = b" \t\n\r\x0b\x0c"
PAYLOAD_TYPE = b'"payload":{"type":"'
# Codex writes `timestamp` as RFC 3339 UTC with milliseconds: 24 characters, so a line in its
# compact envelope has its closing quote at this offset, then `,"type":"` (or, in paginated
# rollouts, `,"ordinal":N,"type":"`).
TS_END = TS_LEN + 24
ORDINAL = b'","ordinal":'
ORDINAL_LEN = len(ORDINAL) + 1  # and at least one digit
# The `,"type":"` after the ordinal's digits ends before this offset.
ORDINAL_TYPE_MAX = TS_END + ORDINAL_LEN + 20 + len(',"type":"')
# Payload types of lines that are never user turns, most frequent first; `message` items are
# the model's input, never the turn itself (that is the `event_msg`).
COMMON_FIRST = (
    "function_call_output",
    "reasoning",
    "token_count",
    "function_call",
    "agent_reasoning",
    "custom_tool_call",
    "custom_tool_call_output",
    "message",
    "agent_message",
)
NEVER_TURN_EVENTS = KNOWN_EVENTS - {"user_message", "thread_name_updated", "item_completed"}
QUICK_TYPES = sorted(
    {("response_item", name) for name in KNOWN_RESPONSE_ITEMS}
    | {("event_msg", name) for name in NEVER_TURN_EVENTS},
    key=lambda kind: (
        COMMON_FIRST.index(kind[1]) if kind[1] in COMMON_FIRST else len(COMMON_FIRST),
        kind,
    ),
)
# `","type":"response_item","payload":{"type":"reasoning"` and the like (from the timestamp's
# closing quote): a line whose envelope starts so is only counted, whatever follows. The same
# rule is applied by `RolloutScan.feed`, so both readers agree on every line.
QUICK_ENVELOPES = tuple(
    f'","type":"{kind}","payload":{{"type":"{name}"'.encode("ascii") for kind, name in QUICK_TYPES
)
QUICK_AFTER_ORDINAL = tuple(envelope[1:] for envelope in QUICK_ENVELOPES)  # from the comma


def quick_skip(buf: bytes | bytearray, s: int = 0) -> bool:
    """Return True when the line starting at `buf[s]` (no newline in its first 160 bytes) is
    in Codex's compact envelope with a payload type that is never a user turn, a rename or a
    session_meta (see QUICK_ENVELOPES): such a line is only counted. The first line of a
    file is never skipped so (callers check)."""
    if not buf.startswith(TS_PREFIX, s):
        return False
    at = s + TS_END
    if buf.startswith(QUICK_ENVELOPES, at):
        return True
    if buf.startswith(ORDINAL, at):
        comma = buf.find(b',"type":"', at + ORDINAL_LEN, s + ORDINAL_TYPE_MAX)
        return comma != -1 and buf.startswith(QUICK_AFTER_ORDINAL, comma)
    return False
