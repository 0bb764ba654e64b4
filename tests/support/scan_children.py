"""Split scans under test: force the split, choose fork or spawn, and see the children."""

from __future__ import annotations

from types import ModuleType

import pytest

from codex_indexd.codex import scan_split


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
