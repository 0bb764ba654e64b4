"""The one rollout reader of a home: every file scanned, one thread per id, what was skipped.

`gather` (one-shot) and the live view (`engine.live`) both keep a thread's rollout with
`choose_rollout` and report what a scan skipped with `report_scan`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from codex_indexd.codex.home import CodexHome, iter_rollout_entries
from codex_indexd.codex.rollout import RolloutScan, choose_rollout
from codex_indexd.codex.rollout_file import scan_file_sized
from codex_indexd.log import get_logger
from codex_indexd.log.redact import safe_detail
from codex_indexd.records import record

log = get_logger("codex_indexd.engine")
Progress = Callable[[int, int | None], None]


@record(slots=True)
class InputWarning:
    """Something skipped while reading, for the report (never holds prompt text)."""

    event: str
    path: str
    detail: str = ""


def report_scan(
    scan: RolloutScan, path: Path | str, size: int, warnings: list[InputWarning]
) -> None:
    """Record what a finished scan skipped."""
    if scan.bare:
        warnings.append(
            InputWarning("rollout.skipped", str(path), "bare 2025 format; Codex ignores it")
        )
    elif not scan.facts.has_meta:
        warnings.append(InputWarning("rollout.skipped", str(path), "no usable session_meta"))
    if scan.malformed:
        warnings.append(
            InputWarning("rollout.malformed_lines", str(path), f"{scan.malformed} lines")
        )
    if scan.too_long:
        warnings.append(InputWarning("rollout.line_too_long", str(path), f"{scan.too_long} lines"))
    if scan.offset < size and not str(path).endswith(".zst"):
        warnings.append(
            InputWarning("rollout.partial_tail", str(path), f"{size - scan.offset} bytes")
        )


# Below this many bytes of rollouts a second process costs more than it saves. Measured on 2
# cores (page cache warm, the quick-envelope scanner, medians of 9): with the other core free
# the split scan takes 16 ms instead of 19 at 32 MiB, 43 instead of 63 at 128 MiB, 66 instead
# of 79 at 256 MiB and 137 instead of 163 at 500 MiB; with the other core busy it is 10-15 ms
# slower at 32-128 MiB (the child's copy-on-write faults and exit), and it always costs about
# 12 ms more CPU.
PARALLEL_SCAN_BYTES = 128 * 1024 * 1024
_CHILD_BATCH = 256  # scans per pickle the forked child sends
ScanResult = tuple[RolloutScan, int] | str  # the scan and the file's size, or why it failed


def scan_rollouts(
    home: CodexHome, warnings: list[InputWarning], progress: Progress | None = None
) -> tuple[dict[str, RolloutScan], int]:
    """Scan every rollout of the home; return usable scans by thread id and the file count."""
    # Paths as strings: a Path object per rollout, all held during the scan, was about
    # 0.5 KiB each.
    found = [(e.path, False) for e in iter_rollout_entries(home.sessions)]
    found += [(e.path, True) for e in iter_rollout_entries(home.archived_sessions)]
    results = _scan_all(found, progress)
    scans: dict[str, RolloutScan] = {}
    for (path, _archived), result in zip(found, results, strict=True):
        if isinstance(result, str):
            warnings.append(InputWarning("rollout.unreadable", str(path), result))
            continue
        scan, size = result
        report_scan(scan, path, size, warnings)
        if scan.usable:
            keep_scan(scans, scan, warnings)
    return scans, len(found)


def _scan_one(path: str, archived: bool) -> ScanResult:
    scan = RolloutScan.start(path, archived=archived)
    try:
        return scan_file_sized(scan, path)
    except OSError as exc:
        return str(exc)
    except Exception as exc:  # a file the reader chokes on is skipped, not the home
        return f"{type(exc).__name__} while parsing: {safe_detail(exc)}"


def _scan_all(found: list[tuple[str, bool]], progress: Progress | None) -> list[ScanResult]:
    """Scan the files in order; a large cold scan is split with one forked child (files
    largest first, each to the lighter side) where the process has no other threads."""
    import threading

    sizes = [_size(path) for path, _ in found]
    if sum(sizes) < PARALLEL_SCAN_BYTES or threading.active_count() > 1 or not hasattr(os, "fork"):
        out: list[ScanResult] = []
        for done, (path, archived) in enumerate(found, 1):
            if progress is not None:
                progress(done, len(found))
            out.append(_scan_one(path, archived))
        return out
    ours: list[int] = []
    theirs: list[int] = []
    load = [0, 0]
    for i in sorted(range(len(found)), key=lambda i: -sizes[i]):
        side = 0 if load[0] <= load[1] else 1
        (ours if side == 0 else theirs).append(i)
        load[side] += sizes[i]
    results: list[ScanResult | None] = [None] * len(found)
    child = _fork_scanner([found[i] for i in theirs])
    for done, i in enumerate(ours, 1):
        if progress is not None:
            progress(done, len(found))
        results[i] = _scan_one(*found[i])
    for i, result in zip(theirs, child(), strict=True):
        results[i] = result
    if progress is not None:
        progress(len(found), len(found))
    return [r if r is not None else "not scanned" for r in results]


def _size(path: str) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def _fork_scanner(work: list[tuple[str, bool]]) -> Callable[[], list[ScanResult]]:
    """Start a child that scans `work`; return a call that waits for its results (falling
    back to scanning here when the child fails)."""
    import pickle

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: scan, send, exit without running the parent's cleanup
        code = 0
        try:
            os.close(read_end)
            results = [_scan_one(path, archived) for path, archived in work]
            # In batches, each its own pickle: unpickling holds every object of a pickle
            # (and each record's state) until its end, so the parent's peak grows with a
            # batch, not with the home.
            with os.fdopen(write_end, "wb") as out:
                for i in range(0, len(results), _CHILD_BATCH):
                    pickle.dump(results[i : i + _CHILD_BATCH], out, 5)
        except BaseException:
            code = 1
        os._exit(code)
    os.close(write_end)

    def collect() -> list[ScanResult]:
        results: list[ScanResult] | None = []
        with os.fdopen(read_end, "rb") as source:
            try:
                # Unpickled as they are read, in frames: no batch is ever held as bytes.
                while results is not None and len(results) < len(work):
                    batch = pickle.load(source)
                    if isinstance(batch, list) and batch:
                        results.extend(batch)
                    else:
                        results = None
            except (pickle.PickleError, EOFError, ValueError, AttributeError, TypeError):
                results = None
        _, status = os.waitpid(pid, 0)
        if status == 0 and results is not None and len(results) == len(work):
            return results
        log.warning("rollout.scan_child_failed", status=status)
        return [_scan_one(path, archived) for path, archived in work]

    return collect


def keep_scan(
    scans: dict[str, RolloutScan], scan: RolloutScan, warnings: list[InputWarning]
) -> None:
    """Add a scan, resolving two files with the same thread id (live first, then more lines)."""
    thread_id = scan.facts.thread_id
    other = scans.get(thread_id)
    if other is None:
        scans[thread_id] = scan
        return
    winner = choose_rollout((scan, other)) or other
    loser = other if winner is scan else scan
    scans[thread_id] = winner
    warnings.append(
        InputWarning(
            "rollout.duplicate_id", loser.facts.path, f"same thread id as {winner.facts.path}"
        )
    )
