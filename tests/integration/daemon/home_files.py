"""What the daemon tests read and write while a daemon runs: Codex's index files and our
status file (read leniently while a rewrite may be under way), and appends made the way Codex
makes them. The daemon itself is started through `tests.support.daemons`."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from codex_indexd.store.files import OurFiles
from codex_indexd.store.status_file import read_status

# -- reading our files and Codex's ---------------------------------------------------------


def jsonl(path: Path) -> list[dict[str, Any]]:
    """Parse every line of a JSONL file; a line that does not parse fails the test."""
    if not path.exists():
        return []
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), f"{path.name} does not end with a newline"
    return [json.loads(raw) for raw in data.splitlines() if raw.strip()]


def lenient(path: Path) -> list[dict[str, Any]]:
    """The lines that parse. For polling while the daemon may be in the middle of an in-place
    rewrite (a reader can see it truncated); final checks use `jsonl`."""
    out = []
    for raw in raw_lines(path):
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue
    return out


def history_texts(home: Path) -> list[str]:
    return [entry["text"] for entry in lenient(home / "history.jsonl")]


def index_ids(home: Path) -> set[str]:
    return {entry["id"] for entry in lenient(home / "session_index.jsonl")}


def latest_names(home: Path) -> dict[str, str]:
    return {entry["id"]: entry["thread_name"] for entry in jsonl(home / "session_index.jsonl")}


def raw_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines() if path.exists() else []


def contains_in_order(big: list[bytes], small: list[bytes]) -> bool:
    """True when `small` is a subsequence of `big` (every old line kept, in its order)."""
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


def status(home: Path) -> dict[str, Any]:
    return read_status(home) or {}


def status_ident(home: Path) -> tuple[int, int] | None:
    """Identity of the status file; it is replaced (new inode) on every reconcile."""
    try:
        st = os.stat(OurFiles.for_home(home).status)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns)


# -- appending like Codex --------------------------------------------------------------------


def append(path: Path, data: str | bytes) -> None:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, raw)
    finally:
        os.close(fd)


def codex_rename(home: Path, thread_id: str, name: str, updated_at: str) -> None:
    """Append a rename to session_index.jsonl the way Codex does (under the sidecar lock)."""
    lock = os.open(home / "session_index.jsonl.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        fd = os.open(home / "session_index.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            payload = {"id": thread_id, "thread_name": name, "updated_at": updated_at}
            os.write(fd, (json.dumps(payload, separators=(",", ":")) + "\n").encode())
        finally:
            os.close(fd)
    finally:
        os.close(lock)


def codex_history_append(home: Path, session_id: str, text: str, ts: int) -> None:
    """Append a history line the way Codex does (flock on the file itself)."""
    fd = os.open(home / "history.jsonl", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        payload = {"session_id": session_id, "ts": ts, "text": text}
        os.write(fd, (json.dumps(payload, separators=(",", ":")) + "\n").encode())
    finally:
        os.close(fd)
