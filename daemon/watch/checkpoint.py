"""Persisted tracker state, so that a restart does not reread every rollout.

The checkpoint holds offsets and extracted facts (prompt text included), so it is written
0600 in our cache directory. A different format version, another home or a file that does
not parse is discarded, and the daemon falls back to a full scan.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from codex_indexd.codex.rollout import RolloutScan
from codex_indexd.index.model import Rename, RolloutFacts, UserTurn
from codex_indexd.logs import get_logger
from codex_indexd.watch.tracker import FileState, RolloutTracker
from codex_indexd.write.safety import write_all

log = get_logger("codex_indexd.checkpoint")
FORMAT_VERSION = 3


def _facts_to_json(f: RolloutFacts) -> list[Any]:
    return [
        f.thread_id,
        f.path,
        f.archived,
        f.created_at,
        f.last_timestamp,
        f.source,
        f.history_mode,
        f.first_user_message,
        f.title,
        [[t.ts, t.text] for t in f.user_turns],
        [[r.name, r.updated_at, r.epoch_ms] for r in f.renames],
        f.has_meta,
    ]


def _facts_from_json(row: list[Any]) -> RolloutFacts:
    (tid, path, archived, created, last, source, mode, first, title, turns, renames, has_meta) = row
    return RolloutFacts(
        tid,
        path,
        archived,
        created,
        last,
        sys.intern(source) if isinstance(source, str) else source,
        sys.intern(mode) if isinstance(mode, str) else mode,
        first,
        first if title == first else title,
        [UserTurn(int(ts), str(text)) for ts, text in turns],
        [Rename(str(n), str(u), e) for n, u, e in renames],
        bool(has_meta),
    )


def _check_ints(*values: Any) -> None:
    """Offsets and sizes are compared with stat results later: they must be integers."""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise TypeError("a number field is not an integer")


def save(tracker: RolloutTracker, path: Path) -> None:
    """Write the tracker's state atomically (0600)."""
    files = []
    for key, st in tracker.files.items():
        scan = st.scan
        files.append(
            [
                key,
                st.dev,
                st.ino,
                st.size,
                st.mtime_ns,
                scan.offset,
                scan.lines,
                scan.malformed,
                scan.too_long,
                scan.bare,
                scan.expected_id,
                scan._meta_locked,
                _facts_to_json(scan.facts),
            ]
        )
    payload = json.dumps(
        {"v": FORMAT_VERSION, "home": str(tracker.home.root), "files": files},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(path.name + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        write_all(fd, payload, crash_points=False)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)


def load(tracker: RolloutTracker, path: Path) -> bool:
    """Fill an empty tracker from the checkpoint; return False (and log) when it is unusable."""
    try:
        data = json.loads(path.read_bytes())
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        if data.get("v") != FORMAT_VERSION or data.get("home") != str(tracker.home.root):
            log.info("checkpoint.discarded", path=str(path), reason="format or home changed")
            return False
        for row in data["files"]:
            (
                key,
                dev,
                ino,
                size,
                mtime,
                offset,
                lines,
                malformed,
                too_long,
                bare,
                expected,
                locked,
                facts,
            ) = row
            _check_ints(dev, ino, size, mtime, offset, lines, malformed, too_long)
            if not isinstance(key, str):
                raise TypeError("path is not a string")
            scan = RolloutScan(
                _facts_from_json(facts), offset, lines, malformed, too_long, bare, expected, locked
            )
            tracker.files[key] = FileState(dev, ino, size, mtime, scan)
            tracker._by_inode[(dev, ino)] = key
    except FileNotFoundError:
        return False
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning(
            "checkpoint.discarded", path=str(path), reason=f"unreadable: {type(exc).__name__}"
        )
        tracker.files.clear()
        tracker._by_inode.clear()
        return False
    return True
