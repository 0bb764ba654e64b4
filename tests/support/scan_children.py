"""Split scans under test: force the split, choose fork or spawn, and see the children."""

from __future__ import annotations

import os
import select
from types import ModuleType

import pytest

from codex_indexd.codex import scan_queue, scan_split


def split_children(
    monkeypatch: pytest.MonkeyPatch, user: ModuleType, *, forked: bool
) -> list[scan_split.ScanChild]:
    """Make `scan_split` fork (`forked`) or spawn its child, and record each `ScanChild` the
    module `user` starts; return the list the children are appended to."""
    monkeypatch.setattr(scan_split, "may_fork", lambda: forked)
    children: list[scan_split.ScanChild] = []
    real = scan_split.ScanChild

    def spy(jobs: list[scan_split.ScanJob], keep_text: bool) -> scan_split.ScanChild:
        children.append(real(jobs, keep_text))
        return children[-1]

    monkeypatch.setattr(user, "ScanChild", spy)
    return children


def shared_scans(monkeypatch: pytest.MonkeyPatch, *, forked: bool) -> list[scan_queue.SharedScan]:
    """Make `scan_split` fork (`forked`) or spawn the child of each `SharedScan` that
    `start_scan` makes, and record them (each with a copy of its jobs, which stay there
    after the scan); return the list they are appended to."""
    monkeypatch.setattr(scan_split, "may_fork", lambda: forked)
    made: list[scan_queue.SharedScan] = []
    real = scan_queue.SharedScan

    def spy(
        jobs: list[scan_split.ScanJob], weights: list[int], keep_text: bool, *, quiet: bool = False
    ) -> scan_queue.SharedScan:
        # A copy of the listing: `scan_rollouts` empties the one it reads, and callers look
        # at a scan's jobs afterwards.
        made.append(real(list(jobs), weights, keep_text, quiet=quiet))
        return made[-1]

    monkeypatch.setattr(scan_queue, "SharedScan", spy)
    return made


def wait_until_the_child_sent(shared: scan_queue.SharedScan) -> None:
    """Return once the child of `shared` has sent its first bytes (or exited): it does so
    only when the queue is empty, so this process then takes no ticket."""
    source = shared._source
    assert source is not None, "no child was started"
    select.select([source], [], [])


def has_children() -> bool:
    """True when this process has a child, running or exited and not yet waited for (the
    check waits for none)."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def open_descriptors() -> int:
    """Return how many descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))
