"""Line shapes the rollout reader knows, and the test for lines of other shapes that seem to
carry user text (a newer Codex may keep turns there: counted, so that `status` can say so)."""

from __future__ import annotations

import re

# Shapes Codex 0.169 and 0.171 write; a user-text marker in a line of any other
# payload type is counted as unknown.
KNOWN_LINE_TYPES = frozenset(
    {
        "session_meta",
        "dynamic_tools_updated",
        "response_item",
        "inter_agent_communication",
        "inter_agent_communication_metadata",
        "compacted",
        "turn_context",
        "token_usage_record",
        "world_state",
        "security_risk_score",
        "event_msg",
        "realtime_item",
        "retained_context",
    }
)
KNOWN_RESPONSE_ITEMS = frozenset(
    {
        "message",
        "reasoning",
        "function_call",
        "function_call_output",
        "custom_tool_call",
        "custom_tool_call_output",
        "local_shell_call",
        "web_search_call",
        "image_generation_call",
        "tool_search_call",
        "tool_search_output",
        "ghost_snapshot",
        "compaction",
        "compaction_summary",
        "other",
    }
)
KNOWN_EVENTS = frozenset(
    {
        "user_message",
        "agent_message",
        "agent_message_delta",
        "agent_message_content_delta",
        "agent_reasoning",
        "agent_reasoning_raw_content",
        "agent_reasoning_section_break",
        "item_started",
        "item_completed",
        "thread_name_updated",
        "thread_goal_updated",
        "task_started",
        "task_complete",
        "turn_started",
        "turn_complete",
        "turn_aborted",
        "token_count",
        "error",
        "warning",
        "stream_error",
        "background_event",
        "deprecation_notice",
        "context_compacted",
        "entered_review_mode",
        "exited_review_mode",
        "undo_started",
        "undo_completed",
        "plan_update",
        "exec_command_begin",
        "exec_command_end",
        "exec_command_output_delta",
        "patch_apply_begin",
        "patch_apply_end",
        "mcp_tool_call_begin",
        "mcp_tool_call_end",
        "web_search_begin",
        "web_search_end",
        "view_image_tool_call",
        "session_configured",
        "shutdown_complete",
    }
)
_SHAPE_RE = re.compile(
    rb'^\{"timestamp":"[^"]*",(?:"ordinal":\d+,)?"type":"([^"\\]{1,64})"'
    rb'(?:,"payload":\{"type":"([^"\\]{1,64})")?'
)


KNOWN_PAYLOAD_TYPES = frozenset(
    name.encode("ascii") for name in KNOWN_RESPONSE_ITEMS | KNOWN_EVENTS
)


def unknown_user_shape(head: bytes) -> str | None:
    """Return the shape (`type/payload.type`, or `type` when the payload has none) of a line
    whose first bytes carry a user-text marker (`"input_text"`, `"message":`) in a shape
    this reader does not know, or None (a known payload type, a known line type without
    one, no marker, or a line not in Codex's compact envelope)."""
    match = _SHAPE_RE.match(head)
    if match is None:
        return None
    kind, sub = match.group(1), match.group(2)
    if sub is not None and sub in KNOWN_PAYLOAD_TYPES:
        return None
    if sub is None and kind.decode("ascii", "replace") in KNOWN_LINE_TYPES:
        return None
    if b'"input_text"' not in head and b'"message":' not in head:
        return None
    name = kind.decode("ascii", "replace")
    return name if sub is None else f"{name}/{sub.decode('ascii', 'replace')}"
