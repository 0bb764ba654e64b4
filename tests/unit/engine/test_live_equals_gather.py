"""The live view of a home's rollouts equals a one-shot `gather` after any file changes.

Files change the ways Codex (and users) change them: a new rollout, a line appended, a torn
tail completed later, an archive move, a second file with the same thread id, a deletion, a
truncation, a rewrite by rename. The live view sees an event for each changed path (and a
full scan now and then), as the daemon does.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codex_indexd.codex.home import CodexHome, thread_id_from_name
from codex_indexd.engine import gather
from codex_indexd.engine.live import RolloutTracker
from codex_indexd.index.model import RolloutFacts
from codex_indexd.log.lazy import LazyLogger
from tests.support.homes import new_thread, rollout_lines, rollout_name

THREADS = [new_thread(i, turns=3, paginated=i % 2 == 1) for i in range(3)]
CONTENTS = [b"".join(line.encode() for line in rollout_lines(t)) for t in THREADS]


@dataclass
class File:
    """A rollout on disk: the bytes it grows towards, and how many of them are written."""

    target: bytes
    written: int


def _line_end(data: bytes, start: int) -> int:
    """Return the offset just past the line that holds `start` (or the end of `data`)."""
    cut = data.find(b"\n", start)
    return len(data) if cut == -1 else cut + 1


class Home:
    """A temporary Codex home changed step by step; each change names the paths it touched."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[Path, File] = {}
        self.copies = 0

    def _path(self, thread: int, archived: bool, copy: int = 0) -> Path:
        t = THREADS[thread]
        if copy:
            t = replace(t, start=t.start + timedelta(seconds=copy))
        if archived:
            return self.root / "archived_sessions" / rollout_name(t)
        return self.root / "sessions" / t.start.strftime("%Y/%m/%d") / rollout_name(t)

    def _pick(self, n: int) -> Path | None:
        paths = sorted(self.files)
        return paths[n % len(paths)] if paths else None

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as handle:
            handle.write(data)

    def apply(self, op: tuple[Any, ...]) -> list[Path]:
        kind = op[0]
        if kind == "new":
            _, thread, archived, lines = op
            path = self._path(thread, archived)
            if path in self.files:
                return []
            target = CONTENTS[thread]
            written = 0
            for _ in range(lines):
                written = _line_end(target, written)
            self.files[path] = File(target, written)
            self._write(path, target[:written])
            return [path]
        picked = self._pick(op[1])
        if picked is None:
            return []
        path, file = picked, self.files[picked]
        if kind in ("append", "torn"):
            end = _line_end(file.target, file.written)
            if kind == "torn" and end - file.written > 1:
                end = file.written + (end - file.written) // 2
            self._write(path, file.target[file.written : end])
            file.written = end
            return [path]
        if kind == "move":  # archive or unarchive: a rename that keeps the file name
            archived = path.parent.name != "archived_sessions"
            if archived:
                other = self.root / "archived_sessions" / path.name
            else:
                day = path.name[len("rollout-") : len("rollout-2026-11-20")]
                other = self.root / "sessions" / day.replace("-", "/") / path.name
            if other in self.files:
                return []
            other.parent.mkdir(parents=True, exist_ok=True)
            os.rename(path, other)
            self.files[other] = self.files.pop(path)
            return [other, path] if op[2] else [path, other]  # events come in either order
        if kind == "duplicate":  # another file with the same thread id
            self.copies += 1
            thread = next(i for i, t in enumerate(THREADS) if t.thread_id in path.name)
            other = self._path(thread, op[2], copy=self.copies)
            self.files[other] = File(file.target, file.written)
            self._write(other, file.target[: file.written])
            return [other]
        if kind == "delete":
            path.unlink()
            del self.files[path]
            return [path]
        if kind == "truncate":
            file.written = int(file.written * op[2])
            os.truncate(path, file.written)
            return [path]
        if kind == "rewrite":  # a new file renamed over the old one (a new inode)
            _, _, thread, lines = op
            target = CONTENTS[thread]
            written = 0
            for _ in range(lines):
                written = _line_end(target, written)
            temp = path.with_name(".rewrite.tmp")
            temp.write_bytes(target[:written])
            os.replace(temp, path)
            self.files[path] = File(target, written)
            return [path]
        raise AssertionError(kind)


def _names_its_thread(live: RolloutTracker, path: Path) -> bool:
    """True when the file at `path` holds the thread its name names (a moved file is then
    known by that thread's keys and is not read again)."""
    state = live.files.get(str(path))
    return state is not None and state.facts.thread_id == thread_id_from_name(path.name)


def comparable(facts: dict[str, RolloutFacts]) -> dict[str, Any]:
    """Facts by thread, with turns as `(ts, key, offset)`: the live view keeps keys, not
    texts (it reads a text back when it must write it)."""
    return {
        tid: (
            f.path,
            f.archived,
            f.created_at,
            f.last_timestamp,
            f.source,
            f.history_mode,
            f.first_user_message,
            f.title,
            [(t.ts, t.key, t.offset) for t in f.user_turns],
            f.renames,
            f.has_meta,
        )
        for tid, f in facts.items()
    }


THREAD = st.integers(0, len(THREADS) - 1)
PICK = st.integers(0, 20)
OPS = st.one_of(
    st.tuples(st.just("new"), THREAD, st.booleans(), st.integers(0, 12)),
    st.tuples(st.just("append"), PICK),
    st.tuples(st.just("torn"), PICK),
    st.tuples(st.just("move"), PICK, st.booleans()),
    st.tuples(st.just("duplicate"), PICK, st.booleans()),
    st.tuples(st.just("delete"), PICK),
    st.tuples(st.just("truncate"), PICK, st.floats(0, 1)),
    st.tuples(st.just("rewrite"), PICK, THREAD, st.integers(0, 12)),
    st.tuples(st.just("scan"), PICK),
)


class Quiet:
    """A logger that drops every line."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def quiet_loggers(mp: pytest.MonkeyPatch) -> None:
    """Replace our modules' loggers that have not logged yet: a lazy logger resolved here,
    before any command configured logging, would print later tests' lines on stdout."""
    for name, module in list(sys.modules.items()):
        logger = getattr(module, "log", None) if name.startswith("codex_indexd") else None
        if isinstance(logger, LazyLogger):
            mp.setattr(module, "log", Quiet())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, max_size=25))
def test_live_facts_equal_a_fresh_gather(ops: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        quiet_loggers(mp)
        root = Path(tmp)
        (root / "sessions").mkdir()
        home = Home(root)
        codex_home = CodexHome.at(root)
        live = RolloutTracker(codex_home)
        live.full_scan()
        for op in ops:
            if op[0] == "scan":
                live.full_scan()
            else:
                before = live.bytes_read
                paths = home.apply(op)
                for path in paths:
                    live.refresh(path)
                if op[0] == "move" and paths and op[2] and _names_its_thread(live, paths[0]):
                    assert live.bytes_read == before, "a moved file was read again"
            fresh = gather(codex_home)
            assert comparable(live.facts()) == comparable(fresh.rollouts), op
        assert live.full_scan() == gather(codex_home).rollout_files == len(home.files)
