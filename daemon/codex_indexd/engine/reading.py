"""The one rollout reader of a home: every file scanned, one thread per id, what was skipped.

`gather` (one-shot) and the live view (`engine.live`) both keep a thread's rollout with
`choose_rollout` and report what a scan skipped with `report_scan`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from codex_indexd.codex.home import CodexHome, iter_rollout_paths
from codex_indexd.codex.rollout import RolloutScan, choose_rollout
from codex_indexd.codex.rollout_file import scan_file
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


def report_scan(scan: RolloutScan, path: Path, size: int, warnings: list[InputWarning]) -> None:
    """Log and record what a finished scan skipped."""
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
    if scan.offset < size and not path.name.endswith(".zst"):
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
ScanResult = tuple[RolloutScan, int] | str  # the scan and the file's size, or why it failed


def scan_rollouts(
    home: CodexHome, warnings: list[InputWarning], progress: Progress | None = None
) -> tuple[dict[str, RolloutScan], int]:
    """Scan every rollout of the home; return usable scans by thread id and the file count."""
    found: list[tuple[Path, bool]] = [(p, False) for p in iter_rollout_paths(home.sessions)]
    found += [(p, True) for p in iter_rollout_paths(home.archived_sessions)]
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


def _scan_one(path: Path, archived: bool) -> ScanResult:
    scan = RolloutScan.start(path, archived=archived)
    try:
        scan = scan_file(scan, path)
        return scan, path.stat().st_size
    except OSError as exc:
        return str(exc)
    except Exception as exc:  # a file the reader chokes on is skipped, not the home
        return f"{type(exc).__name__} while parsing: {safe_detail(exc)}"


def _scan_all(found: list[tuple[Path, bool]], progress: Progress | None) -> list[ScanResult]:
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


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0


def _fork_scanner(work: list[tuple[Path, bool]]) -> Callable[[], list[ScanResult]]:
    """Start a child that scans `work`; return a call that waits for its results (falling
    back to scanning here when the child fails)."""
    import pickle

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: scan, send, exit without running the parent's cleanup
        code = 0
        try:
            os.close(read_end)
            data = pickle.dumps([_scan_one(path, archived) for path, archived in work])
            with os.fdopen(write_end, "wb") as out:
                out.write(data)
        except BaseException:
            code = 1
        os._exit(code)
    os.close(write_end)

    def collect() -> list[ScanResult]:
        with os.fdopen(read_end, "rb") as source:
            data = source.read()
        _, status = os.waitpid(pid, 0)
        if status == 0:
            try:
                results: list[ScanResult] = pickle.loads(data)
                if len(results) == len(work):
                    return results
            except (pickle.PickleError, EOFError, ValueError):
                pass
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
