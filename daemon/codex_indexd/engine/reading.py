"""The one rollout reader of a home: every file scanned, one thread per id, what was skipped.

`gather` (one-shot) and the live view (`engine.live`) both keep a thread's rollout with
`choose_rollout` and report what a scan skipped with `report_scan`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from codex_indexd.codex.home import CodexHome, iter_rollout_entries
from codex_indexd.codex.ranking import choose_rollout
from codex_indexd.codex.rollout import RolloutScan
from codex_indexd.codex.scan_split import (
    ScanChild,
    ScanFailure,
    ScanJob,
    ScanResult,
    balance,
    scan_one,
)
from codex_indexd.records import record

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
# 12 ms more CPU. Those figures are of a forked child; a spawned one (where the process has
# other threads) starts about 35 ms later.
PARALLEL_SCAN_BYTES = 128 * 1024 * 1024


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
        if isinstance(result, ScanFailure):
            detail = result.error
            if result.kind == "unparsable":
                detail = f"{result.error} while parsing: {result.detail}"
            warnings.append(InputWarning("rollout.unreadable", str(path), detail))
            continue
        scan, size = result
        report_scan(scan, path, size, warnings)
        if scan.usable:
            keep_scan(scans, scan, warnings)
    return scans, len(found)


def _scan_all(found: list[ScanJob], progress: Progress | None) -> list[ScanResult]:
    """Scan the files in order; a large cold scan is split with one child (`scan_split`)."""
    sizes = [_size(path) for path, _ in found]
    if sum(sizes) < PARALLEL_SCAN_BYTES:
        out: list[ScanResult] = []
        for done, (path, archived) in enumerate(found, 1):
            if progress is not None:
                progress(done, len(found))
            out.append(scan_one(path, archived, True))
        return out
    ours, theirs = balance(sizes)
    results: list[ScanResult | None] = [None] * len(found)
    child = ScanChild([found[i] for i in theirs], keep_text=True)
    for done, i in enumerate(ours, 1):
        if progress is not None:
            progress(done, len(found))
        results[i] = scan_one(*found[i], True)
    for i, result in zip(theirs, child.results(), strict=True):
        results[i] = result
    if progress is not None:
        progress(len(found), len(found))
    return [r if r is not None else ScanFailure("unreadable", "not scanned") for r in results]


def _size(path: str) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


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
