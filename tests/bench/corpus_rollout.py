"""Writes one synthetic Codex rollout file (legacy G1 envelope or paginated G2).

Line mix per thread (see docs/codex-formats.md): `session_meta`, then per user
turn `task_started`, `turn_context`, injected context `response_item`s (first turn only), the
user prompt as a `response_item` plus the real user-turn event (`event_msg` `user_message` for
legacy, `item_completed` / `UserMessage` for paginated), then reasoning + tool calls whose
outputs carry most of the bytes, an assistant message, `token_count`s and `task_complete`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from tests.bench.corpus_text import (
    TextPools,
    agent_text,
    dumps,
    follow_up_prompt,
    rfc3339_ms,
    short_id,
    uuid_v4,
    uuid_v7,
)

MIN_TOOL_OUTPUT = 1 << 10
MAX_TOOL_OUTPUT = 300 << 10
CONTEXT_WINDOW = 272_000
PLACEHOLDER = "\ue000"  # private-use char: never produced by the pools, kept raw by `dumps`
PLACEHOLDER_BYTES = PLACEHOLDER.encode("utf-8")


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """Everything needed to write one rollout; decided up front by the planner."""

    index: int
    thread_id: str
    paginated: bool
    start_ms: int
    budget: int  # target rollout size in bytes
    user_turns: int
    first_prompt: str
    source: str
    originator: str
    cli_version: str
    cwd: str
    model: str
    max_tool_output: int = MAX_TOOL_OUTPUT  # cap on one tool output's size in bytes


@dataclass(slots=True)
class SessionResult:
    """What was written, for the DB row and the generator's summary."""

    spec: SessionSpec
    nbytes: int = 0
    lines: int = 0
    last_ms: int = 0
    prompts: list[str] = field(default_factory=list)
    tokens: int = 0


class RolloutWriter:
    """Appends envelope lines to a binary file while tracking clock, ordinal and size."""

    def __init__(self, spec: SessionSpec, pools: TextPools, out: BinaryIO) -> None:
        self.spec = spec
        self.pools = pools
        self.out = out
        self.rng = random.Random(f"rollout:{spec.thread_id}")
        self.clock = spec.start_ms
        self.ordinal = 0
        self.history_sequence = 0
        self.result = SessionResult(spec=spec, last_ms=spec.start_ms)

    def tick(self, low_ms: int, high_ms: int) -> None:
        """Advance the clock by a random, strictly positive amount."""
        self.clock += self.rng.randrange(max(1, low_ms), max(2, high_ms))

    def emit(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        with_meta: bool = False,
        blob: memoryview | None = None,
    ) -> None:
        """Write one complete line in the format of this rollout.

        `blob`, when given, is pre-escaped JSON text spliced in where `PLACEHOLDER` occurs in
        `payload`; this keeps the big tool outputs from being escaped over and over.
        """
        envelope: dict[str, Any] = {"timestamp": rfc3339_ms(self.clock)}
        if self.spec.paginated:
            envelope["ordinal"] = self.ordinal
            self.ordinal += 1
        envelope["type"] = kind
        envelope["payload"] = payload
        if self.spec.paginated and with_meta:
            self.history_sequence += 1
            envelope["metadata"] = {"history_sequence": self.history_sequence}
        data = (dumps(envelope) + "\n").encode("utf-8")
        if blob is None:
            self.out.write(data)
            self.result.nbytes += len(data)
        else:
            head, tail = data.split(PLACEHOLDER_BYTES, 1)
            self.out.write(head)
            self.out.write(blob)
            self.out.write(tail)
            self.result.nbytes += len(head) + len(blob) + len(tail)
        self.result.lines += 1
        self.result.last_ms = self.clock

    def item(self, payload: dict[str, Any], blob: memoryview | None = None) -> None:
        """Emit a `response_item` line."""
        self.emit("response_item", payload, with_meta=True, blob=blob)

    def event(self, payload: dict[str, Any]) -> None:
        """Emit an `event_msg` line."""
        self.emit("event_msg", payload)

    # --- whole-file structure -------------------------------------------------------------

    def write_all(self) -> SessionResult:
        """Write the full rollout, spreading the byte budget over the user turns."""
        self.session_meta()
        turns = self.spec.user_turns
        for turn in range(turns):
            prompt = self.spec.first_prompt if turn == 0 else follow_up_prompt(self.rng)
            share = (self.spec.budget - self.result.nbytes) // (turns - turn)
            self.user_turn(prompt, first=turn == 0, until=self.result.nbytes + share)
            if turn + 1 < turns:
                self.tick(20_000, 900_000)  # the user reads, thinks, types
        return self.result

    def session_meta(self) -> None:
        """The first line: thread identity, origin and (big) base instructions."""
        spec = self.spec
        payload: dict[str, Any] = {
            "id": spec.thread_id,
            "timestamp": rfc3339_ms(self.clock),
            "cwd": spec.cwd,
            "originator": spec.originator,
            "cli_version": spec.cli_version,
            "source": spec.source,
            "model_provider": "openai",
        }
        if spec.paginated:
            payload["session_id"] = spec.thread_id
            payload["thread_source"] = "user"
            payload["history_mode"] = "paginated"
            payload["base_instructions"] = {"text": self.pools.instructions}
            payload["context_window"] = {"tokens": CONTEXT_WINDOW}
        else:
            payload["instructions"] = None
        payload["git"] = {
            "commit_hash": f"{self.rng.getrandbits(160):040x}",
            "branch": self.rng.choice(("main", "develop", "feature/index-repair")),
            "repository_url": "git@github.com:acme/" + spec.cwd.rsplit("/", 1)[-1] + ".git",
        }
        self.emit("session_meta", payload)

    def user_turn(self, prompt: str, *, first: bool, until: int) -> None:
        """One user turn: context, the prompt, tool calls up to `until` bytes, the answer."""
        turn_id = uuid_v7(self.rng, self.clock) if self.spec.paginated else uuid_v4(self.rng)
        self.tick(5, 60)
        self.event(
            {"type": "task_started", "turn_id": turn_id, "model_context_window": CONTEXT_WINDOW}
        )
        self.emit("turn_context", self.turn_context(turn_id))
        if first:
            self.context_items()
        self.tick(1, 20)
        self.item(
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": prompt}]}
        )
        self.tick(1, 10)
        self.user_event(prompt, turn_id)
        self.result.prompts.append(prompt)
        self.token_count()
        self.tool_call(remaining=until - self.result.nbytes)  # at least one per turn
        while self.result.nbytes < until:
            self.tool_call(remaining=until - self.result.nbytes)
        self.answer(turn_id)

    # --- individual lines -----------------------------------------------------------------

    def turn_context(self, turn_id: str) -> dict[str, Any]:
        """The `turn_context` payload (policies, model, cwd)."""
        return {
            "turn_id": turn_id,
            "cwd": self.spec.cwd,
            "approval_policy": "on-request",
            "sandbox_policy": {
                "type": "workspace-write",
                "network_access": False,
                "exclude_tmpdir_env_var": False,
                "exclude_slash_tmp": False,
            },
            "model": self.spec.model,
            "effort": "medium",
            "summary": "auto",
        }

    def context_items(self) -> None:
        """Injected user-role context that must never become a title (AGENTS.md, env)."""
        cwd = self.spec.cwd
        agents = (
            f"# AGENTS.md instructions for {cwd}\n\n<INSTRUCTIONS>\n"
            + self.pools.tool_output(self.rng, 1500)
            + "\n</INSTRUCTIONS>"
        )
        env = (
            f"<environment_context>\n  <cwd>{cwd}</cwd>\n  <approval_policy>on-request"
            "</approval_policy>\n  <sandbox_mode>workspace-write</sandbox_mode>\n"
            "  <network_access>restricted</network_access>\n  <shell>bash</shell>\n"
            "</environment_context>"
        )
        for text in (agents, env):
            self.tick(1, 5)
            self.item(
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": text}],
                }
            )

    def user_event(self, prompt: str, turn_id: str) -> None:
        """The real user-turn event Codex derives titles and history from."""
        if self.spec.paginated:
            self.event(
                {
                    "type": "item_completed",
                    "thread_id": self.spec.thread_id,
                    "turn_id": turn_id,
                    "item": {
                        "type": "UserMessage",
                        "id": uuid_v7(self.rng, self.clock),
                        "content": [{"type": "text", "text": prompt, "text_elements": []}],
                    },
                }
            )
        else:
            self.event(
                {
                    "type": "user_message",
                    "message": prompt,
                    "images": [],
                    "local_images": [],
                    "kind": "plain",
                }
            )

    def token_count(self) -> None:
        """A `token_count` event with cumulative usage and rate limits."""
        self.tick(50, 900)
        last = self.rng.randrange(2_000, 40_000)
        self.result.tokens += last
        usage = {
            "input_tokens": last,
            "cached_input_tokens": last // 2,
            "output_tokens": last // 20,
            "reasoning_output_tokens": last // 40,
            "total_tokens": last + last // 20,
        }
        total = dict(usage, total_tokens=self.result.tokens)
        self.event(
            {
                "type": "token_count",
                "info": {
                    "total_token_usage": total,
                    "last_token_usage": usage,
                    "model_context_window": CONTEXT_WINDOW,
                },
                "rate_limits": {
                    "primary": {
                        "used_percent": self.rng.randrange(0, 100),
                        "window_minutes": 300,
                        "resets_in_seconds": 9000,
                    },
                    "secondary": {
                        "used_percent": self.rng.randrange(0, 100),
                        "window_minutes": 10080,
                    },
                },
            }
        )

    def reasoning(self) -> None:
        """An encrypted reasoning item (a few KB of base64) with a short summary."""
        self.tick(300, 8_000)
        self.item(
            {
                "type": "reasoning",
                "id": short_id(self.rng, "rs"),
                "summary": [
                    {"type": "summary_text", "text": "**Inspecting the failing code path**"}
                ],
                "content": None,
                "encrypted_content": self.pools.opaque(self.rng, self.rng.randrange(800, 8_000)),
            }
        )
        if not self.spec.paginated and self.rng.random() < 0.5:
            self.event({"type": "agent_reasoning", "text": "**Inspecting the failing code path**"})

    def output_size(self, remaining: int) -> int:
        """Tool output size: log-uniform 1 KB to the spec's cap (300 KB by default), some
        tiny, clipped to the budget."""
        if self.rng.random() < 0.2:
            return self.rng.randrange(20, MIN_TOOL_OUTPUT)
        high = max(MIN_TOOL_OUTPUT, self.spec.max_tool_output)
        size = int(math.exp(self.rng.uniform(math.log(MIN_TOOL_OUTPUT), math.log(high))))
        return max(MIN_TOOL_OUTPUT, min(size, remaining))

    def tool_call(self, remaining: int) -> None:
        """Reasoning, one tool call and its (big) output, then a token count."""
        self.reasoning()
        call_id = short_id(self.rng, "call")
        self.tick(100, 3_000)
        if self.rng.random() < 0.15:
            self.item(
                {
                    "type": "custom_tool_call",
                    "status": "completed",
                    "call_id": call_id,
                    "name": "apply_patch",
                    "input": "*** Begin Patch\n*** Update File: src/lib.py\n"
                    + self.pools.tool_output(self.rng, 2_000)
                    + "\n*** End Patch",
                }
            )
            self.tick(50, 2_000)
            self.item(
                {
                    "type": "custom_tool_call_output",
                    "call_id": call_id,
                    "output": dumps(
                        {
                            "output": "Success. Updated the following files:\nM src/lib.py\n",
                            "metadata": {"exit_code": 0},
                        }
                    ),
                }
            )
        else:
            command = f"rg -n {self.rng.choice(('index', 'thread', 'lock'))} src tests"
            args = {
                "command": ["bash", "-lc", command],
                "workdir": self.spec.cwd,
                "timeout_ms": 120_000,
            }
            self.item(
                {
                    "type": "function_call",
                    "name": "shell",
                    "arguments": dumps(args),
                    "call_id": call_id,
                }
            )
            self.tick(50, 30_000)
            output = self.pools.escaped.take(
                self.rng, self.output_size(remaining), twice=not self.spec.paginated
            )
            self.item(
                {"type": "function_call_output", "call_id": call_id, "output": self.output_text()},
                blob=output,
            )
        self.token_count()

    def output_text(self) -> str:
        """Tool output with `PLACEHOLDER` for the text. Legacy: JSON inside the string (so the
        text ends up escaped twice); paginated: a plain-text header followed by the output."""
        seconds = round(self.rng.uniform(0.01, 9.0), 1)
        if self.spec.paginated:
            return f"Exit code: 0\nWall time: {seconds} seconds\nOutput:\n{PLACEHOLDER}"
        return dumps(
            {"output": PLACEHOLDER, "metadata": {"exit_code": 0, "duration_seconds": seconds}}
        )

    def answer(self, turn_id: str) -> None:
        """The assistant's final message for the turn, then `task_complete`."""
        text = agent_text(self.rng, self.pools)
        self.reasoning()
        self.tick(500, 20_000)
        self.item(
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text}],
            }
        )
        if self.spec.paginated:
            self.event(
                {
                    "type": "item_completed",
                    "thread_id": self.spec.thread_id,
                    "turn_id": turn_id,
                    "item": {
                        "type": "AgentMessage",
                        "id": short_id(self.rng, "msg"),
                        "content": [{"type": "Text", "text": text}],
                    },
                }
            )
        else:
            self.event({"type": "agent_message", "message": text})
        self.token_count()
        self.tick(5, 200)
        self.event({"type": "task_complete", "turn_id": turn_id, "last_agent_message": text})


def write_rollout(spec: SessionSpec, pools: TextPools, path: Path) -> SessionResult:
    """Create `path` (and parents) and write the whole rollout for `spec`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb", buffering=1 << 20) as out:
        return RolloutWriter(spec, pools, out).write_all()
