"""The scan progress of `repair` on a terminal: bytes read (files as the second figure),
drawn after 1 s; a plain line every few seconds on a terminal that reports no size."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import accumulate
from typing import TextIO

from codex_indexd.codex.home import CodexHome, iter_rollout_paths

Progress = Callable[[int, int | None], None]
DELAY_S = 1.0
PLAIN_EVERY_S = 5.0


def _nothing() -> None:
    """The default `before_each_file`: nothing."""


# Runs once per rollout the scan reaches, before its progress is drawn. A test seam: a test
# slows the scan down with it, so the scan outlasts DELAY_S on any machine.
before_each_file: Callable[[], None] = _nothing


def rollout_sizes(home: CodexHome) -> list[int]:
    """Return the size of each rollout, in the order the scan reads them (sessions/, then
    archived_sessions/); 0 for a file that cannot be stat'ed."""
    sizes: list[int] = []
    for root in (home.sessions, home.archived_sessions):
        for path in iter_rollout_paths(root):
            try:
                sizes.append(os.stat(path).st_size)
            except OSError:
                sizes.append(0)
    return sizes


def human_bytes(count: float) -> str:
    """Return `count` bytes as people read them: 512 B, 1.5 MB, 3.0 GB."""
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def terminal_width(stream: TextIO) -> int:
    """Return the terminal's width in columns, 0 when it reports none."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        return 0


class PlainLines:
    """Progress as whole lines (no cursor movement), at most one every PLAIN_EVERY_S."""

    def __init__(self, stream: TextIO, total_bytes: int, files: int) -> None:
        self.stream, self.total_bytes, self.files = stream, total_bytes, files
        self.started = time.monotonic()
        self.last = float("-inf")

    def update(self, done_bytes: int, done_files: int) -> None:
        now = time.monotonic()
        if now - self.started < DELAY_S or now - self.last < PLAIN_EVERY_S:
            return
        self.last = now
        share = 100 * done_bytes / self.total_bytes if self.total_bytes else 100.0
        self.stream.write(
            f"scanning rollouts: {share:.0f}% ({human_bytes(done_bytes)} of "
            f"{human_bytes(self.total_bytes)}, {done_files} of {self.files} files)\n"
        )
        self.stream.flush()

    def close(self) -> None:
        pass


@contextmanager
def progress_bar(home: CodexHome, stream: TextIO | None = None) -> Iterator[Progress | None]:
    """Yield a progress callback for `gather`, drawing on `stream` (stderr) only when it is
    a terminal; None otherwise."""
    out = stream or sys.stderr
    if not out.isatty():
        yield None
        return
    sizes = rollout_sizes(home)
    before = [0, *accumulate(sizes)]  # bytes read before file i (0-based)
    total_bytes = before[-1]
    width = terminal_width(out)
    if width:
        from tqdm import tqdm  # type: ignore[import-untyped]

        bar = tqdm(
            total=total_bytes,
            delay=DELAY_S,
            file=out,
            unit="B",
            unit_scale=True,
            desc="scanning",
            leave=False,
            dynamic_ncols=True,
        )
        files_total = len(sizes)

        def draw(done_bytes: int, done_files: int) -> None:
            bar.set_postfix_str(f"{done_files}/{files_total} rollouts", refresh=False)
            bar.update(done_bytes - bar.n)

        close: Callable[[], None] = bar.close
    else:
        plain = PlainLines(out, total_bytes, len(sizes))
        draw, close = plain.update, plain.close

    def update(done: int, total: int | None) -> None:
        before_each_file()
        # `done` counts the file about to be read: the bytes before it are read
        index = min(max(done - 1, 0), len(sizes))
        draw(before[index], index)

    try:
        yield update
    finally:
        if sizes:
            draw(total_bytes, len(sizes))
        close()
