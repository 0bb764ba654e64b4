"""`peak`: this process's peak resident size from /proc/self/status."""

from __future__ import annotations

import builtins
import subprocess
import sys
from typing import Any

import pytest

from codex_indexd import peak

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")


# Run in a fresh interpreter: this test process's own peak may already exceed anything a
# test allocates (other tests ran in it first).
_PROBE = """
from codex_indexd import peak
before = peak.peak_kib()
block = bytearray(64 * 1024 * 1024)  # zeroed, so every page is touched
during = peak.peak_kib()
del block
after = peak.peak_kib()
print(before, during, after, peak.peak_mib())
"""


def test_the_peak_rises_with_touched_memory_and_stays() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True
    ).stdout.split()
    before, during, after = (int(v) for v in out[:3])
    assert before > 0
    assert during - before >= 48 * 1024
    # A high-water mark: it stays after the free (the kernel's RSS counters are batched per
    # thread, so it may read a few pages lower than the reading above).
    assert after >= during - 1024
    assert abs(float(out[3]) - after / 1024) <= 0.1


def test_an_unreadable_status_gives_zero_and_no_mib(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError("no /proc here")

    monkeypatch.setattr(builtins, "open", refuse)
    assert peak.peak_kib() == 0
    assert peak.peak_mib() is None
