"""The live view of a home's rollouts (the daemon's): per-file offsets and facts, kept current
by `refresh` calls over the same reader and `choose_rollout` as `gather`.

Each file is known by `(dev, inode, size, mtime_ns, offset)`. A refresh reads only the
complete lines appended since the offset; a new inode or a shrunk file is reread from 0;
a file that moved (archive/unarchive keeps the inode) is re-keyed without rereading.
"""

from __future__ import annotations

import os
import stat as stat_mode
import sys
from collections.abc import Iterable
from pathlib import Path

from codex_indexd.codex.home import (
    CodexHome,
    is_rollout_name,
    iter_rollout_entries,
    thread_id_from_name,
)
from codex_indexd.codex.ranking import choose_rollout
from codex_indexd.codex.rollout import RolloutScan
from codex_indexd.codex.rollout_fd import open_rollout
from codex_indexd.codex.rollout_file import read_turn, scan_file
from codex_indexd.codex.scan_split import ScanFailure, failure_of
from codex_indexd.engine.file_state import FileState, pack_stat
from codex_indexd.engine.reading import InputWarning, report_scan
from codex_indexd.engine.scan_ahead import DirStats, ScanAhead
from codex_indexd.index.model import HistoryLine, RolloutFacts, own_renames
from codex_indexd.log import get_logger

log = get_logger("codex_indexd.tracker")


class RolloutTracker:
    """Rollout facts of one home, kept current by `refresh` calls."""

    def __init__(self, home: CodexHome) -> None:
        self.home = home
        self._archived_prefix = os.path.join(str(home.archived_sessions), "")
        self.files: dict[str, FileState] = {}
        self.changed_threads: set[str] = set()
        # Threads whose file appeared, vanished, moved or was replaced (not just appended to):
        # their DB row may have changed without a newer `updated_at_ms` (an archive).
        self.relocated: set[str] = set()
        self.bytes_read = 0
        self._facts: dict[str, RolloutFacts] | None = None  # built on first use, then patched
        # A thread's file keys: the key itself when it has one file (the usual case: no tuple
        # per thread, 4 MiB at 50,000), a tuple when it has several. See `_keys_of`.
        self._keys_by_tid: dict[str, str | tuple[str, ...]] = {}
        self._stale_tids: set[str] = set()
        self.version = 0  # bumped on every change, so unchanged state is not saved again
        self._refused: dict[str, tuple[int, int, int]] = {}  # non-regular files, logged once
        self._ahead: ScanAhead | None = None  # a child's scans, during a full scan

    def _is_archived(self, path: Path | str) -> bool:
        """True when `path` is below `archived_sessions/` (`Path.relative_to` compares the
        same normalised parts; a string test costs no Path objects, 50,000 at a cold start)."""
        return str(path).startswith(self._archived_prefix)

    def _forget(self, key: str) -> FileState | None:
        state = self.files.pop(key, None)
        if state is not None:
            self.version += 1
            tid = state.facts.thread_id
            if tid:
                self.changed_threads.add(tid)
                self._stale_tids.add(tid)
                self._set_keys(tid, tuple(k for k in self._keys_of(tid) if k != key))
        return state

    def _keys_of(self, tid: str) -> tuple[str, ...]:
        """Return the keys of the files that hold thread `tid` (empty when none)."""
        keys = self._keys_by_tid.get(tid, ())
        return (keys,) if isinstance(keys, str) else keys

    def _set_keys(self, tid: str, keys: tuple[str, ...]) -> None:
        """Record the keys of the files that hold thread `tid` (none: forget the thread)."""
        if not keys:
            self._keys_by_tid.pop(tid, None)
        else:
            self._keys_by_tid[tid] = keys[0] if len(keys) == 1 else keys

    def _store(self, key: str, state: FileState) -> None:
        self.version += 1
        self.files[key] = state
        tid = state.facts.thread_id
        if tid:
            self.changed_threads.add(tid)
            self._stale_tids.add(tid)
            keys = self._keys_of(tid)
            if key not in keys:
                self._set_keys(tid, (*keys, key))

    def refresh(self, path: Path) -> bool:
        """Bring one path up to date (it may have appeared, grown, moved or vanished).

        Returns True when its facts may have changed. Never raises for I/O trouble: it is
        logged and the file is skipped until the next event.
        """
        key = sys.intern(str(path))  # shared with the facts' path
        before = self.files.get(key)
        changed = self._refresh(path, key)
        if before is not None and key.endswith(".jsonl") and not os.path.lexists(key):
            # Replaced by its compressed twin: the same thread, read from the new file now.
            twin = key + ".zst"
            if os.path.lexists(twin):
                changed |= self._refresh(Path(twin), sys.intern(twin))
        after = self.files.get(key)
        if changed and (before is None or after is None or before.ino != after.ino):
            for state in (before, after):
                if state is not None and state.facts.thread_id:
                    self.relocated.add(state.facts.thread_id)
        return changed

    def _refresh(self, path: Path, key: str) -> bool:
        if not is_rollout_name(path.name) or (
            path.name.endswith(".zst") and Path(key[:-4]).exists()
        ):
            return self._forget(key) is not None
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return self._forget(key) is not None
        except OSError as exc:
            log.warning("rollout.unreadable", path=key, error=str(exc))
            return False
        state = self.files.get(key)
        moved = False
        if state is None:
            moved_from = self._moved_from(key, path.name, st)
            if moved_from is not None and not os.path.exists(moved_from):
                state = self._forget(moved_from)
                if state is not None:  # archive / unarchive: same inode, same bytes
                    state.facts.path = key
                    state.facts.archived = self._is_archived(path)
                    self._store(key, state)
                    moved = True
        if state is not None and state.same_inode(st):
            if state.same_file(pack_stat(st)):
                return moved  # a move alone changes the facts (archived or not)
            if st.st_size >= state.offset and not path.name.endswith(".zst"):
                own_renames(state.facts)  # the reader may append one
                return self._read(key, path, st, state.resume())
        done = self._ahead.take(key, st) if self._ahead is not None else None
        if done is not None:  # the child's scan of this file, from the same stat
            return self._read(key, path, st, None, done)
        scan = RolloutScan.start(path, archived=self._is_archived(path))
        scan.facts.path = key
        scan.keep_text = False  # texts are read back by `read_texts` when needed
        return self._read(key, path, st, scan)

    def _read(
        self,
        key: str,
        path: Path,
        st: os.stat_result,
        scan: RolloutScan | None,
        done: RolloutScan | ScanFailure | None = None,
    ) -> bool:
        """Read `path` on from `scan` (or take `done`, a scan of it from 0), then store it;
        return True when read."""
        before = scan.offset if scan is not None else 0
        if scan is not None:
            try:
                done = scan_file(scan, path)
            except Exception as exc:  # a file the reader chokes on is skipped, not the home
                done = failure_of(exc)
        if not isinstance(done, RolloutScan):
            if done is not None:
                self._refuse(key, st, done)
            return False
        scan = done
        self._refused.pop(key, None)
        self.bytes_read += scan.offset - before
        if before == 0:
            warnings: list[InputWarning] = []
            report_scan(scan, path, st.st_size, warnings)
            for warning in warnings:
                if warning.event != "rollout.partial_tail":  # normal while Codex writes
                    log.warning(warning.event, path=warning.path, detail=warning.detail)
        self._forget(key)
        self._store(key, FileState.of(scan, st))
        return True

    def _refuse(self, key: str, st: os.stat_result, failure: ScanFailure) -> None:
        """Log why a file was not read: once per file (and size, when unparsable)."""
        if failure.kind == "unreadable":
            log.warning("rollout.unreadable", path=key, error=failure.error)
            return
        regular = failure.kind == "not_regular"
        mark = (st.st_dev, st.st_ino, st.st_mode if regular else st.st_size)
        if self._refused.get(key) == mark:
            return
        self._refused[key] = mark
        if regular:
            log.warning("rollout.not_regular", path=key, error=failure.error)
        else:
            log.warning(
                "rollout.unparsable",
                path=key,
                error=failure.error,
                detail=failure.detail,
                skipped="this file until it changes; every other file is read",
            )

    def full_scan(self) -> int:
        """Refresh every rollout of the home and forget vanished ones; return the file count."""
        seen: set[str] = set()
        files, add = self.files, seen.add
        pending: list[str] = []  # to refresh, in the walk's order
        fresh: list[tuple[str, os.stat_result]] = []  # of those, the ones read from 0
        with DirStats() as stat:
            for root in (self.home.sessions, self.home.archived_sessions):
                for entry in iter_rollout_entries(root):
                    key = entry.path
                    add(key)
                    state = files.get(key)
                    try:
                        st = stat(entry)
                    except OSError:
                        pending.append(key)  # `refresh` says why
                        continue
                    if state is not None and state.nums.startswith(pack_stat(st)):
                        continue  # the common case: known, unchanged
                    pending.append(key)
                    if self._reads_from_start(key, state, st):
                        fresh.append((key, st))
        with ScanAhead(fresh, self._is_archived) as ahead:
            self._ahead = ahead
            try:
                for key in pending:
                    self.refresh(Path(key))
            finally:
                self._ahead = None
        for key in [k for k in files if k not in seen]:
            gone = self._forget(key)
            if gone is not None and gone.facts.thread_id:
                self.relocated.add(gone.facts.thread_id)
        return len(seen)

    def _moved_from(self, key: str, name: str, st: os.stat_result) -> str | None:
        """Return the known file that `key` may have been moved from: another path of the
        same name (Codex archives and unarchives by a rename that keeps the name) holding the
        thread its name names, on the same inode. Found through the thread's keys (the facts
        are built first when they were not yet), not a map by inode: 3.8 MiB at 50,000 files.
        A file whose name names no thread, or another thread than its `session_meta`, is
        read again as a new file when it moves."""
        if self._facts is None and self.files:
            self.facts()  # builds `_keys_by_tid`
        if not self._keys_by_tid:  # a cold start: no file known, no regex per file
            return None
        tid = thread_id_from_name(name)
        if not tid:
            return None
        for old in self._keys_of(tid):
            known = self.files.get(old)
            if (
                old != key
                and known is not None
                and os.path.basename(old) == name
                and known.same_inode(st)
            ):
                return old
        return None

    def _reads_from_start(self, key: str, state: FileState | None, st: os.stat_result) -> bool:
        """True when `refresh` will read this regular file from its start: new (not a known
        inode, which may have moved here), replaced, shrunk or compressed (and no twin)."""
        if not stat_mode.S_ISREG(st.st_mode):
            return False
        if key.endswith(".zst"):
            return not os.path.lexists(key[:-4])
        if state is None:
            return self._moved_from(key, os.path.basename(key), st) is None
        return not state.same_inode(st) or st.st_size < state.offset

    def facts(self) -> dict[str, RolloutFacts]:
        """Return usable facts by thread id (a live file wins over an archived duplicate).

        The dict is kept between calls and only the threads touched since are recomputed;
        callers must not change it.
        """
        if self._facts is None:
            by_tid: dict[str, str | tuple[str, ...]] = {}
            for key, state in self.files.items():
                tid = state.facts.thread_id
                if not tid:
                    continue
                keys = by_tid.setdefault(tid, key)
                if keys is not key:
                    by_tid[tid] = (keys, key) if isinstance(keys, str) else (*keys, key)
            self._keys_by_tid = by_tid
            self._facts = {}
            self._stale_tids = set(by_tid)
        files, facts = self.files, self._facts
        for tid in self._stale_tids:
            found = self._keys_by_tid.get(tid)
            if isinstance(found, str):  # one file (the usual case): no ranking
                one = files.get(found)
                best = one if one is not None and one.usable else None
            else:
                states = (files.get(key) for key in found or ())
                best = choose_rollout(state for state in states if state is not None)
            if best is None:
                facts.pop(tid, None)
            else:
                facts[tid] = best.facts
        self._stale_tids = set()
        return facts

    def read_texts(self, lines: Iterable[HistoryLine]) -> dict[tuple[str, int, int], str]:
        """Read back the texts of history lines planned from turns kept as keys; return them
        by `(session_id, ts, key)`. A turn whose line no longer holds it (the file changed
        since) is left out and logged."""
        by_session: dict[str, list[HistoryLine]] = {}
        for line in lines:
            by_session.setdefault(line.session_id, []).append(line)
        facts = self.facts()
        texts: dict[tuple[str, int, int], str] = {}
        for session_id, wanted in by_session.items():
            rollout = facts.get(session_id)
            state = self.files.get(rollout.path) if rollout is not None else None
            if rollout is None or state is None:
                continue
            turns = {(t.ts, t.key): t for t in rollout.user_turns if t.offset >= 0}
            try:
                if rollout.path.endswith(".zst"):
                    found_turns = _turns_with_text(Path(rollout.path), rollout.archived)
                    for line in wanted:
                        turn = turns.get((line.ts, line.key))
                        text = found_turns.get((line.ts, line.key))
                        if turn is not None and text is not None:
                            texts[(session_id, turn.ts, turn.key)] = text
                    continue
                fd, _size = open_rollout(Path(rollout.path))
                try:
                    for line in wanted:
                        turn = turns.get((line.ts, line.key))
                        if turn is None:
                            continue
                        found = read_turn(fd, turn.offset, state.expected_id)
                        if found is None or found.text is None or found.key != turn.key:
                            log.warning("rollout.turn_moved", path=rollout.path, offset=turn.offset)
                            continue
                        texts[(session_id, turn.ts, turn.key)] = found.text
                finally:
                    os.close(fd)
            except OSError as exc:
                log.warning("rollout.unreadable", path=rollout.path, error=str(exc))
        return texts


def _turns_with_text(path: Path, archived: bool) -> dict[tuple[int, int], str]:
    """Return the texts of a compressed rollout's turns by `(ts, key)` (a fresh full read:
    offsets into a compressed file cannot be read back one line at a time). Raises OSError."""
    scan = scan_file(RolloutScan.start(path, archived=archived), path)
    return {(t.ts, t.key): t.text for t in scan.facts.user_turns if t.text is not None}
