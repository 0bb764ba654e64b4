"""Building blocks for synthetic Codex rollouts: ids, timestamps, text pools, prompts.

Used by `gen_corpus.py`. Everything is driven by an explicit `random.Random` so a corpus is
deterministic for a seed. Large strings are sliced out of pre-built pools instead of being
generated character by character, which keeps generation at hundreds of MB per second.
"""

from __future__ import annotations

import base64
import json
import random
import time
import uuid
from bisect import bisect_left
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

# A few non-ASCII fragments sprinkled into tool output (paths, test marks, CJK logs).
_UNICODE_BITS = ("✓", "✗", "→", "…", "é", "ü", "ß", "日本語", "数据", "Привет", "🚀", "—")

_CODE_LINES = (
    "def {w}_{n}(self, value: int) -> int:",
    "    return self._{w} + value * {n}",
    "class {W}{n}(Base{W}):",
    '    """Handle {w} requests for shard {n}."""',
    "    if not {w}:",
    "        raise ValueError(f'bad {w}: {{{w}!r}}')",
    "import {w}_{n}",
    "from .{w} import {W}, {W}Error",
    "fn {w}_{n}(ctx: &mut Context) -> Result<(), Error> {{",
    "    let {w} = ctx.{w}.get({n}).ok_or(Error::Missing)?;",
    "}}",
    "export function {w}{n}(input: string): Promise<{W}> {{",
    "  const {w} = await fetch(`/api/{w}/{n}`);",
    "# TODO({w}): remove after migration {n}",
)
_LOG_LINES = (
    "tests/test_{w}.py::test_{w}_{n} PASSED                                   [{p:3d}%]",
    "tests/test_{w}.py::test_{w}_{n} FAILED                                   [{p:3d}%]",
    "src/{w}/{w}_{n}.py:{n}:{p}: {w} = compute_{w}({n})",
    "-rw-r--r--  1 dev dev {n:>8} Nov {p:2d} 12:{p:02d} {w}_{n}.rs",
    "drwxr-xr-x  4 dev dev     4096 Nov {p:2d} 09:{p:02d} {w}/",
    "2026-11-{p:02d}T10:{p:02d}:{p:02d}Z INFO {w}: processed {n} items in {p}ms",
    "2026-11-{p:02d}T10:{p:02d}:{p:02d}Z WARN {w}: retry {p} for shard {n}",
    "@@ -{n},{p} +{n},{p} @@ def {w}_{n}():",
    "-    old_{w} = {n}",
    "+    new_{w} = {n} + {p}",
    '{{"{w}": {n}, "ok": true, "elapsed_ms": {p}}}',
    "   Compiling {w}-{n} v0.{p}.0 (/home/dev/work/{w})",
    "warning: unused variable: `{w}_{n}`",
    "  --> src/{w}.rs:{n}:{p}",
)
_WORDS = (
    "index",
    "rollout",
    "session",
    "thread",
    "history",
    "cursor",
    "writer",
    "reader",
    "parser",
    "daemon",
    "watcher",
    "config",
    "schema",
    "buffer",
    "token",
    "cache",
    "queue",
    "lock",
    "record",
    "payload",
    "snapshot",
    "backend",
    "client",
    "server",
    "widget",
    "report",
)

_PROMPTS = (
    "Fix the flaky test in `tests/test_{w}.py` — it fails on CI about 1 in {n} runs.",
    "Refactor the {w} module so that the parser and the writer are separate.\n"
    "Keep the public API unchanged.\n- no new dependencies\n- add tests",
    "Erkläre mir bitte, warum `{w}_{n}` bei großen Eingaben so langsam ist.",
    "日本語のコメントを英語に翻訳して、{w} の README を更新してください。",
    "Add a `--{w}` flag to the CLI (default {n}) and document it in the README 🚀",
    "Why does `cargo test -p {w}` hang after {n} tests? Here is the log:\n\n"
    "```\nrunning {n} tests\ntest {w}::tests::smoke ... ok\n```",
    "Write a migration that renames the `{w}` column to `{w}_id`; it must be idempotent.",
    "Résume les changements de la branche `feature/{w}-{n}` en trois points.",
    "Can you make `{w}` thread-safe? Two workers call it concurrently → data race.",
    "Review this diff for bugs:\n\n- old_{w} = {n}\n+ new_{w} = {n} * 2\n\nThanks!",
    "Помоги написать тест для функции {w}_{n}, пожалуйста.",
    "Generate a changelog entry for v0.{n}.0 — mention the {w} fix and the ✓ CI badge.",
)
_FOLLOW_UPS = (
    "Looks good. Now also handle the empty {w} case.",
    "That broke `test_{w}_{n}`; please fix it.",
    "Ok, commit it with a short message.",
    "Can you explain step {n} in more detail?",
    "Also update the docs — the {w} section is outdated.",
    "Run the full test suite again and summarise the failures.",
    "Perfect, merci ! One more thing: rename `{w}` to `{w}_v2`.",
    "Use pathlib instead of os.path in {w}.py.",
)


def dumps(obj: Any) -> str:
    """Serialise like Codex (serde_json): compact separators, raw UTF-8, no ASCII escaping."""
    return _ENCODER.encode(obj)


def rfc3339_ms(epoch_ms: int) -> str:
    """Format epoch milliseconds as RFC 3339 UTC with milliseconds and a `Z` suffix."""
    seconds, millis = divmod(epoch_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def local_parts(epoch_ms: int, utc_offset_minutes: int) -> tuple[str, str, str, str]:
    """Return (`YYYY`, `MM`, `DD`, `YYYY-MM-DDThh-mm-ss`) in the writer's local time."""
    local = time.gmtime(epoch_ms // 1000 + utc_offset_minutes * 60)
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S", local)
    return stamp[0:4], stamp[5:7], stamp[8:10], stamp


def uuid_v4(rng: random.Random) -> str:
    """A random (version 4) UUID drawn from `rng`."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def uuid_v7(rng: random.Random, epoch_ms: int) -> str:
    """A time-ordered (version 7) UUID for `epoch_ms`, random bits drawn from `rng`."""
    value = (
        (epoch_ms & ((1 << 48) - 1)) << 80
        | 0x7 << 76
        | rng.getrandbits(12) << 64
        | 0b10 << 62
        | rng.getrandbits(62)
    )
    return str(uuid.UUID(int=value))


def short_id(rng: random.Random, prefix: str) -> str:
    """An OpenAI-style opaque id such as `call_…` or `rs_…`."""
    return f"{prefix}_{rng.getrandbits(96):024x}"


def _fill(template: str, rng: random.Random) -> str:
    """Instantiate one template line with random words and numbers."""
    word = rng.choice(_WORDS)
    return template.format(
        w=word, W=word.capitalize(), n=rng.randrange(1, 5000), p=rng.randrange(0, 100)
    )


@dataclass(frozen=True, slots=True)
class EscapedText:
    """A text pool pre-rendered as UTF-8 JSON string bodies, escaped once and twice.

    JSON escaping works character by character, so a run of whole lines of the pool can be
    copied straight into a serialised line instead of being escaped again for every use.
    `*_ends[i]` is the byte offset just past line `i` (its newline included).
    """

    raw_ends: list[int]
    once: bytes
    once_ends: list[int]
    twice: bytes
    twice_ends: list[int]

    @classmethod
    def of(cls, lines: list[str]) -> EscapedText:
        """Pre-render `lines` (each gets a trailing newline)."""
        raw_ends: list[int] = []
        once: list[bytes] = []
        twice: list[bytes] = []
        for line in lines:
            body = dumps(line + "\n")[1:-1]
            once.append(body.encode("utf-8"))
            twice.append(dumps(body)[1:-1].encode("utf-8"))
            raw_ends.append(len((line + "\n").encode("utf-8")))
        return cls(
            raw_ends=list(accumulate(raw_ends)),
            once=b"".join(once),
            once_ends=list(accumulate(map(len, once))),
            twice=b"".join(twice),
            twice_ends=list(accumulate(map(len, twice))),
        )

    def take(self, rng: random.Random, nbytes: int, *, twice: bool) -> memoryview:
        """Whole lines worth about `nbytes` raw bytes, escaped once (or twice)."""
        total = self.raw_ends[-1]
        nbytes = min(nbytes, total // 2)
        last_start = bisect_left(self.raw_ends, total - nbytes)
        first = rng.randrange(0, max(1, last_start))
        begin = self.raw_ends[first - 1] if first else 0
        stop = bisect_left(self.raw_ends, begin + nbytes, lo=first)
        data, ends = (self.twice, self.twice_ends) if twice else (self.once, self.once_ends)
        low = ends[first - 1] if first else 0
        return memoryview(data)[low : ends[stop]]


@dataclass(frozen=True, slots=True)
class TextPools:
    """Large pre-built strings that rollout lines are sliced from."""

    tool_text: str  # tool output: code, logs, listings, diffs (with some unicode)
    escaped: EscapedText  # the same text, pre-escaped, for the big tool outputs
    b64_text: str  # opaque base64, like `encrypted_content`
    instructions: str  # the (shared) base instructions prose

    def tool_output(self, rng: random.Random, nchars: int) -> str:
        """A slice of roughly `nchars` characters starting at a line boundary."""
        limit = len(self.tool_text) - nchars - 1
        start = rng.randrange(0, max(1, limit))
        newline = self.tool_text.find("\n", start, start + 400)
        if newline != -1:
            start = newline + 1
        return self.tool_text[start : start + nchars]

    def opaque(self, rng: random.Random, nchars: int) -> str:
        """A base64 slice of `nchars` characters (multiple of 4 to look real)."""
        nchars -= nchars % 4
        start = rng.randrange(0, max(1, len(self.b64_text) - nchars)) & ~3
        return self.b64_text[start : start + nchars]


def build_pools(rng: random.Random, tool_chars: int = 4 << 20) -> TextPools:
    """Build the text pools once per corpus (well under a second for 4 Mi characters)."""
    templates = _CODE_LINES + _LOG_LINES
    parts: list[str] = []
    size = 0
    while size < tool_chars:
        line = _fill(rng.choice(templates), rng)
        if rng.random() < 0.03:
            line += " " + rng.choice(_UNICODE_BITS)
        if rng.random() < 0.02:
            line += '\t"quoted \\ path"'
        parts.append(line)
        size += len(line) + 1
    tool_text = "\n".join(parts) + "\n"
    b64_text = base64.b64encode(rng.randbytes(768 << 10)).decode("ascii")
    prose = [
        "You are Codex, a coding agent running in a terminal. Follow the user's instructions.",
        "Prefer small, reviewable changes; run the tests you touch; never push without asking.",
        "When you use the shell, quote paths, avoid interactive commands, and keep output short.",
    ]
    instructions = "\n\n".join(
        rng.choice(prose) + " " + _fill(rng.choice(_CODE_LINES), rng) for _ in range(120)
    )
    return TextPools(
        tool_text=tool_text,
        escaped=EscapedText.of(parts),
        b64_text=b64_text,
        instructions=instructions,
    )


def first_prompt(rng: random.Random) -> str:
    """The opening prompt of a thread: unicode, sometimes multi-line, made unique-ish."""
    return _fill(rng.choice(_PROMPTS), rng) + f" (ticket #{rng.randrange(100, 99999)})"


def follow_up_prompt(rng: random.Random) -> str:
    """A later prompt of the same thread."""
    return _fill(rng.choice(_FOLLOW_UPS), rng)


def agent_text(rng: random.Random, pools: TextPools) -> str:
    """A short assistant answer with a code excerpt."""
    word = rng.choice(_WORDS)
    excerpt = pools.tool_output(rng, rng.randrange(80, 900))
    return (
        f"I updated `{word}` and ran the tests — all green ✓.\n\n"
        f"Key change:\n```\n{excerpt}\n```\nLet me know if you want more."
    )
