"""What Codex 0.169 writes, reduced to what the indexes depend on (codex-formats.md §2–§4):
rollout lines in the legacy and paginated formats, renames appended to session_index.jsonl
under `session_index.jsonl.lock`, and history.jsonl appends under flock on the file.

Standard library only: the soak's writer processes import it as a plain module.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

IDE_MARKER = "## My request for Codex:"


def iso(ts: float) -> str:
    return (
        datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


def rollout_file_name(thread_id: str, start: float) -> str:
    stamp = datetime.fromtimestamp(start, tz=UTC).strftime("%Y-%m-%dT%H-%M-%S")
    return f"rollout-{stamp}-{thread_id}.jsonl"


def date_dir(file_name: str) -> str:
    """sessions/YYYY/MM/DD of a rollout, from the time in its name (where Codex puts it back
    on unarchive)."""
    stamp = file_name.removeprefix("rollout-")[:10]
    year, month, day = stamp.split("-")
    return f"sessions/{year}/{month}/{day}"


def title_of(text: str) -> str:
    """The thread title Codex derives from a first user message (IDE context stripped)."""
    marker = text.find(IDE_MARKER)
    if marker != -1:
        text = text[marker + len(IDE_MARKER) :]
    return text.strip()


class Rollout:
    """Lines of one thread, in its format; keeps the paginated ordinal."""

    def __init__(
        self, thread_id: str, *, paginated: bool, source: str = "cli", ordinal: int = 0
    ) -> None:
        self.thread_id = thread_id
        self.paginated = paginated
        self.source = source
        self.ordinal = ordinal

    def _emit(self, ts: float, kind: str, payload: dict[str, Any]) -> str:
        obj: dict[str, Any] = {"timestamp": iso(ts)}
        if self.paginated:
            obj["ordinal"] = self.ordinal
            self.ordinal += 1
        obj["type"] = kind
        obj["payload"] = payload
        return line(obj)

    def head(self, ts: float) -> str:
        meta: dict[str, Any] = {
            "id": self.thread_id,
            "timestamp": iso(ts),
            "cwd": "/work/soak",
            "originator": "codex_cli_rs",
            "cli_version": "0.169.0",
            "source": self.source,
            "model_provider": "mock",
        }
        if self.paginated:
            meta["history_mode"] = "paginated"
        return self._emit(ts, "session_meta", meta) + self._emit(
            ts,
            "response_item",
            {
                "type": "message",
                "role": "user",
                "content": [
                    {
                        "type": "input_text",
                        "text": "<environment_context>\n  <cwd>/work/soak</cwd>\n</environment_context>",
                    }
                ],
            },
        )

    def turn(self, text: str, ts: float, *, tool_bytes: int = 300) -> tuple[str, str]:
        """Return (lines up to and including the user turn, the lines after it)."""
        n = self.ordinal
        first = self._emit(ts, "turn_context", {"cwd": "/work/soak", "model": "mock"})
        first += self._emit(
            ts,
            "response_item",
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]},
        )
        if self.paginated:
            first += self._emit(
                ts,
                "event_msg",
                {
                    "type": "item_completed",
                    "thread_id": self.thread_id,
                    "turn_id": f"t{n}",
                    "item": {
                        "type": "UserMessage",
                        "id": f"u{n}",
                        "content": [{"type": "text", "text": text, "text_elements": []}],
                    },
                },
            )
        else:
            first += self._emit(
                ts,
                "event_msg",
                {
                    "type": "user_message",
                    "message": text,
                    "images": [],
                    "local_images": [],
                    "kind": "plain",
                },
            )
        rest = self._emit(
            ts,
            "response_item",
            {"type": "function_call_output", "call_id": f"c{n}", "output": "x" * tool_bytes},
        )
        rest += self._emit(ts, "event_msg", {"type": "agent_message", "message": "done"})
        return first, rest


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _try_lock(fd: int, attempts: int, poll_s: float) -> bool:
    for attempt in range(attempts):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                raise
            if attempt + 1 < attempts:
                time.sleep(poll_s)
    return False


def history_line(session_id: str, text: str, ts: int) -> str:
    return (
        json.dumps(
            {"session_id": session_id, "ts": ts, "text": text},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        + "\n"
    )


def index_line(thread_id: str, name: str, updated_at: str) -> str:
    return (
        json.dumps(
            {"id": thread_id, "thread_name": name, "updated_at": updated_at},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        + "\n"
    )


def append_history(home: Path, raw: str) -> bool:
    """Codex's history append: flock(LOCK_EX|LOCK_NB) on the file, 10 tries 100 ms apart,
    then one write at the end. False when Codex would have given up (the line is lost)."""
    fd = os.open(home / "history.jsonl", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        if not _try_lock(fd, 10, 0.1):
            return False
        os.lseek(fd, 0, os.SEEK_END)
        write_all(fd, raw.encode("utf-8"))
        return True
    finally:
        os.close(fd)


def append_index(home: Path, raw: str) -> bool:
    """Codex's rename: the sidecar `session_index.jsonl.lock` (polled every 50 ms, ≈30 s),
    then one O_APPEND write of the line."""
    lock = os.open(home / "session_index.jsonl.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if not _try_lock(lock, 600, 0.05):
            return False
        fd = os.open(home / "session_index.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            write_all(fd, raw.encode("utf-8"))
        finally:
            os.close(fd)
        return True
    finally:
        os.close(lock)
