"""The rollout line reader as it was before the buffer scanner: `readline` on a buffered file,
every line copied, lines over 8 MiB skipped. Kept only as the oracle of the equivalence tests;
the per-line logic (`RolloutScan.feed`) is the product's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from codex_indexd.codex.rollout import RolloutScan

MAX_LINE_BYTES = 8 * 1024 * 1024
READ_BUFFER = 1 << 20


def iter_complete_lines(
    readline: Callable[[int], bytes], offset: int, *, max_line: int = MAX_LINE_BYTES
) -> Iterator[tuple[bytes | None, int]]:
    """Yield `(line, end_offset)` for each complete line read through `readline`.

    `offset` is where the stream is positioned. A line longer than `max_line` yields `None`
    and is skipped without being buffered. A trailing line without a newline is never
    yielded, so the `end_offset` of the last item is where the next read must start.
    """
    position = offset
    while True:
        line = readline(max_line + 1)
        if not line:
            return
        if line.endswith(b"\n"):
            position += len(line)
            yield line[:-1].rstrip(b"\r"), position
            continue
        if len(line) <= max_line:
            return  # partial last line: being written, or torn by a crash
        skipped = len(line)
        while True:
            rest = readline(READ_BUFFER)
            if not rest:
                return  # the long line is not finished yet
            skipped += len(rest)
            if rest.endswith(b"\n"):
                break
        position += skipped
        yield None, position


def scan_file(scan: RolloutScan, path: Path) -> RolloutScan:
    """Feed `scan` with the complete lines of `path` after `scan.offset`; return the scan.

    Compressed rollouts are read whole into a fresh scan. Raises OSError when the file
    cannot be opened or read.
    """
    with path.open("rb", buffering=READ_BUFFER) as handle:
        handle.seek(scan.offset)
        _feed_from(scan, handle.readline, path)
    return scan


def _feed_from(scan: RolloutScan, readline: Callable[[int], bytes], path: Path) -> None:
    for line, end in iter_complete_lines(readline, scan.offset):
        scan.line_start, scan.offset = scan.offset, end
        if line is None:
            scan.too_long += 1
            continue
        if line:
            scan.feed(line)
        if scan.bare:
            return
