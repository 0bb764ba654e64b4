"""A process that appends the way Codex 0.169.0 does (its lock protocols: docs/codex-formats.md).

Usage: python -m tests.support.codex_like HOME COUNT TAG
Appends COUNT history lines (flock on history.jsonl, 10 × 100 ms tries) and COUNT index lines
(flock on session_index.jsonl.lock, 50 ms polling). Prints `lost=N` for appends it gave up on.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sys
import time
import uuid
from pathlib import Path


def try_lock(fd: int, attempts: int, poll: float) -> bool:
    for _ in range(attempts):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                raise
            time.sleep(poll)
    return False


def append_history(home: Path, line: bytes) -> bool:
    fd = os.open(home / "history.jsonl", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        if not try_lock(fd, 10, 0.1):
            return False
        os.lseek(fd, 0, os.SEEK_END)
        os.write(fd, line)
        return True
    finally:
        os.close(fd)


def append_index(home: Path, line: bytes) -> bool:
    lock = os.open(home / "session_index.jsonl.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if not try_lock(lock, 600, 0.05):
            return False
        fd = os.open(home / "session_index.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return True
    finally:
        os.close(lock)


def main(argv: list[str]) -> int:
    home, count, tag = Path(argv[0]), int(argv[1]), argv[2]
    lost = 0
    for i in range(count):
        sid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tag}-{i % 7}"))
        text = f"{tag} prompt {i}"
        h = json.dumps(
            {"session_id": sid, "ts": int(time.time()), "text": text}, separators=(",", ":")
        )
        lost += not append_history(home, h.encode() + b"\n")
        n = json.dumps(
            {"id": sid, "thread_name": f"{tag} name {i}", "updated_at": "2099-01-01T00:00:00Z"},
            separators=(",", ":"),
        )
        lost += not append_index(home, n.encode() + b"\n")
    print(f"lost={lost}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
