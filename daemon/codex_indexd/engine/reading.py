"""The one rollout reader of a home: every file scanned, one thread per id, what was skipped.

`gather` (one-shot) and the live view (`engine.live`) both keep a thread's rollout with
`choose_rollout` and report what a scan skipped with `report_scan`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from codex_indexd.codex.home import CodexHome
from codex_indexd.codex.ranking import choose_rollout
from codex_indexd.codex.rollout import RolloutScan
from codex_indexd.codex.scan_queue import StartedScan, start_scan
from codex_indexd.codex.scan_split import ScanFailure
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


def scan_rollouts(
    home: CodexHome,
    warnings: list[InputWarning],
    progress: Progress | None = None,
    started: StartedScan | None = None,
) -> tuple[dict[str, RolloutScan], int]:
    """Scan every rollout of the home (those `started` listed, else `start_scan`'s); return
    usable scans by thread id and the file count. A `started` scan is left to its maker to
    discard; its listing is emptied once read (the paths live on in the facts)."""
    own = started is None
    started = started or start_scan(home)
    found = started.found
    try:
        results = started.results(progress)
    finally:
        if own:
            started.discard()
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
    count = len(found)
    found.clear()  # a tuple per rollout, held to the end of a `repair` otherwise
    return scans, count


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
