"""In-memory model values for unit tests of the planner: rollout facts, DB rows, index and
history files parsed from bytes. Nothing here touches the filesystem."""

from __future__ import annotations

import json
from collections.abc import Iterable

from codex_indexd.index.lines import HistoryFile, IndexFile, parse_history_bytes, parse_index_bytes
from codex_indexd.index.model import HistoryLine, RolloutFacts, ThreadRow, Turns, UserTurn
from codex_indexd.index.timefmt import iso_from_ms

BASE_MS = 1_780_000_000_000
"""An epoch-milliseconds base time (2026) for generated threads."""


def tid(n: int) -> str:
    """A canonical thread id (UUID) for the number `n`."""
    return f"00000000-0000-7000-8000-{n:012x}"


def turn(ts: int, text: str) -> UserTurn:
    """A user turn at epoch seconds `ts`."""
    return UserTurn(ts, text)


def rollout(
    n: int,
    *texts: str,
    at_ms: int | None = None,
    title: str | None = None,
    archived: bool = False,
    source: str | None = "cli",
) -> RolloutFacts:
    """The facts of thread `n`'s rollout: one user turn per text, a second apart, starting
    at `at_ms` (default `BASE_MS + n` seconds); its last line is the last turn's time."""
    start_ms = BASE_MS + n * 1000 if at_ms is None else at_ms
    turns = [UserTurn(start_ms // 1000 + i, text) for i, text in enumerate(texts)]
    last_ms = start_ms + max(len(texts) - 1, 0) * 1000
    return RolloutFacts(
        thread_id=tid(n),
        path=f"/home/sessions/rollout-{tid(n)}.jsonl",
        archived=archived,
        created_at=iso_from_ms(start_ms),
        last_timestamp=iso_from_ms(last_ms),
        source=source,
        first_user_message=texts[0] if texts else None,
        title=title if title is not None else (texts[0] if texts else None),
        user_turns=Turns(turns),
        has_meta=True,
    )


def row(
    n: int,
    *,
    title: str = "",
    first: str = "",
    name: str | None = None,
    updated_ms: int | None = None,
    created_ms: int | None = None,
    archived: bool = False,
) -> ThreadRow:
    """Thread `n`'s row in the state DB."""
    return ThreadRow(
        tid(n),
        f"/home/sessions/rollout-{tid(n)}.jsonl",
        title,
        first,
        name,
        created_ms,
        updated_ms,
        archived,
    )


def by_id(items: Iterable[RolloutFacts]) -> dict[str, RolloutFacts]:
    """Rollout facts keyed by thread id, as the readers return them."""
    return {facts.thread_id: facts for facts in items}


def index_line(thread_id: str, name: str, updated_at: str = "2026-01-01T00:00:00.000Z") -> bytes:
    """A `session_index.jsonl` line as Codex writes it (no newline)."""
    payload = {"id": thread_id, "thread_name": name, "updated_at": updated_at}
    return json.dumps(payload, separators=(",", ":")).encode()


def history_line(session_id: str, ts: int, text: str) -> bytes:
    """A `history.jsonl` line as Codex writes it (no newline)."""
    payload = {"session_id": session_id, "ts": ts, "text": text}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def index_file(*lines: bytes) -> IndexFile:
    """A parsed `session_index.jsonl` holding `lines`."""
    return parse_index_bytes(b"".join(raw + b"\n" for raw in lines))


def history_file(*lines: bytes | HistoryLine) -> HistoryFile:
    """A parsed `history.jsonl` holding `lines` (raw bytes, or lines to encode)."""
    raw = [
        history_line(x.session_id, x.ts, x.text or "") if isinstance(x, HistoryLine) else x
        for x in lines
    ]
    return parse_history_bytes(b"".join(r + b"\n" for r in raw))
