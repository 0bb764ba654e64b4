"""`peak`: this process's peak resident size from /proc/self/status."""

from __future__ import annotations

import builtins
import sys
from typing import Any

import pytest

from codex_indexd import peak

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")


def test_the_peak_rises_with_touched_memory_and_stays() -> None:
    before = peak.peak_kib()
    assert before > 0
    block = bytearray(64 * 1024 * 1024)  # zeroed, so every page is touched
    during = peak.peak_kib()
    del block
    assert during - before >= 48 * 1024
    # A high-water mark: it stays after the free (the kernel's RSS counters are batched per
    # thread, so it may read a few pages lower than the reading above).
    assert peak.peak_kib() >= during - 1024
    mib = peak.peak_mib()
    assert mib is not None and abs(mib - peak.peak_kib() / 1024) <= 0.1


def test_an_unreadable_status_gives_zero_and_no_mib(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError("no /proc here")

    monkeypatch.setattr(builtins, "open", refuse)
    assert peak.peak_kib() == 0
    assert peak.peak_mib() is None
