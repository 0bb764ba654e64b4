"""What the live view's full scan uses to read many files fast: `DirStats` (a stat relative
to the directory's descriptor) and `ScanAhead` (the last files to read from their start
scanned by a child process, `codex.scan_split`, while this process reads the others)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable

from codex_indexd.codex.rollout import RolloutScan
from codex_indexd.codex.scan_split import ScanChild, ScanFailure, tail_start
from codex_indexd.log import get_logger

log = get_logger("codex_indexd.tracker")
# The files to read from their start go partly to a child when they weigh this much, each
# file its size plus `FILE_WEIGHT` (a small rollout's scan costs about what 64 KiB more of
# a large one's does): about 4,000 small rollouts. Measured on 2 cores with the other one
# busy (a test run), a full scan of small rollouts, medians of 7, one process / split:
# 74 / 115 ms at 1,000, 142 / 177 at 2,000, 293 / 296 at 4,000, 708 / 655 at 10,000; with
# the other core free the daemon's cold start at 10,000 took 1.04 s / 0.88 s.
SPLIT_SCAN_WEIGHT = 256 * 1024 * 1024
FILE_WEIGHT = 64 * 1024
# The child's share of the weight: this process also stores every file's result. A cold
# full scan of 50,000 small rollouts (2 cores, medians of 3) took 3.59 s in one process,
# 2.45 s with a share of 0.5, 2.35 s with 0.55 and 2.46 s with 0.6.
CHILD_SHARE = 0.55
StatMark = tuple[int, int, int, int]  # dev, inode, size, mtime_ns


class ScanAhead:
    """The child's scans of the last of `fresh` (files with the stat taken before), when
    they weigh enough; `take` hands them out. A context manager: the child is waited for
    (or stopped, its results unread) at the end."""

    def __init__(
        self, fresh: list[tuple[str, os.stat_result]], archived: Callable[[str], bool]
    ) -> None:
        self._marks: dict[str, StatMark] = {}
        self._done: dict[str, RolloutScan | ScanFailure] = {}
        self._child: ScanChild | None = None
        self._started: ScanChild | None = None
        self._files = len(fresh)
        weights = [st.st_size + FILE_WEIGHT for _, st in fresh]
        tail = fresh[tail_start(weights, CHILD_SHARE) :]
        if not tail or sum(weights) < SPLIT_SCAN_WEIGHT:
            return
        self._marks = {k: (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) for k, st in tail}
        jobs = [(key, archived(key)) for key, _ in tail]
        self._child = self._started = ScanChild(jobs, keep_text=False)

    def __enter__(self) -> ScanAhead:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._child is not None:  # none of its files was read: its results are not needed
            self._child.discard()
            self._child = None
        started = self._started
        if started is not None:
            log.info(
                "rollout.scan_split",
                files=self._files,
                child_files=len(started.jobs),
                child_peak_mib=round(started.peak_kib / 1024, 1),
            )
        self._marks, self._done = {}, {}

    def take(self, key: str, st: os.stat_result) -> RolloutScan | ScanFailure | None:
        """Return the child's result for `key` when the child scanned it with the stat it has
        now (None: scan it here), waiting for the child's results the first time. The scan
        shares its strings as one read here does (see `_adopt`)."""
        mark = self._marks.pop(key, None)
        if mark is None:
            return None
        if mark != (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns):
            self._done.pop(key, None)
            return None
        if self._child is not None:
            child, self._child = self._child, None
            for (path, _), result in zip(child.jobs, child.results(), strict=True):
                self._done[path] = result if isinstance(result, ScanFailure) else result[0]
        done = self._done.pop(key, None)
        if isinstance(done, RolloutScan):
            _adopt(done, key)
        return done


def _adopt(scan: RolloutScan, key: str) -> None:
    """Make a scan received from the child share strings as one read here does: the path is
    the tracker's key, the names and texts the interned ones."""
    facts, intern = scan.facts, sys.intern
    facts.path = key
    facts.thread_id = intern(facts.thread_id)
    facts.history_mode = intern(facts.history_mode)
    if scan.expected_id is not None:
        scan.expected_id = intern(scan.expected_id)
    if facts.source is not None:
        facts.source = intern(facts.source)
    if facts.first_user_message is not None:
        facts.first_user_message = intern(facts.first_user_message)
    if facts.title is not None:
        facts.title = intern(facts.title)


_DIR_FD = os.stat in os.supports_dir_fd and hasattr(os, "O_DIRECTORY")


class DirStats:
    """`stat` of directory entries relative to their directory's descriptor, kept open while
    entries of that directory come in (a third cheaper than a stat of the whole path, whose
    every component the kernel looks up again); an entry's own `stat()` when it cannot be
    opened. Follows symbolic links, as `DirEntry.stat()` does."""

    def __init__(self) -> None:
        self._dir: str | None = None
        self._fd = -1

    def __enter__(self) -> DirStats:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._close()

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = -1

    def __call__(self, entry: os.DirEntry[str]) -> os.stat_result:
        """Return the entry's stat. Raises OSError."""
        # The entry's directory as `scandir` was given it, separator kept: a slice, not
        # `os.path.dirname` (a Python function: 40 ms of a warm start at 50,000 rollouts).
        path = entry.path
        directory = path[: len(path) - len(entry.name)]
        if directory != self._dir and _DIR_FD:
            self._close()
            self._dir = directory
            with contextlib.suppress(OSError):
                self._fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if self._fd < 0:
            return entry.stat()
        return os.stat(entry.name, dir_fd=self._fd)
