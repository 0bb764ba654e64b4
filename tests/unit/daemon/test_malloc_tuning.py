"""The daemon fixes glibc's mmap threshold: a large block freed leaves no hole in the heap,
so a table built after it is in a mapping of its own. Elsewhere nothing is called."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from codex_indexd.daemon import malloc_tuning


def _glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        return False


GLIBC = _glibc()

# Frees a 4 MiB block (glibc would then raise its threshold to 4 MiB), then allocates a
# 1 MiB one and says whether it has a mapping of its own (the heap does not grow for it).
PROBE = """
import ctypes, sys
from codex_indexd.daemon.malloc_tuning import fix_mmap_threshold
fixed = sys.argv[1] == "fix" and fix_mmap_threshold()
libc = ctypes.CDLL(None)
libc.malloc.restype = libc.sbrk.restype = ctypes.c_void_p
libc.sbrk.argtypes = [ctypes.c_ssize_t]
libc.free(ctypes.c_void_p(libc.malloc(4 << 20)))
heap_end = libc.sbrk(0)
block = libc.malloc(1 << 20)
print(fixed, libc.sbrk(0) == heap_end)
"""


def probe(mode: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_after_a_large_free_a_large_block_still_gets_its_own_mapping() -> None:
    assert probe("no") == "False False"  # glibc's own way: the 1 MiB block grew the heap
    assert probe("fix") == "True True"


def test_without_glibc_nothing_is_called(monkeypatch: pytest.MonkeyPatch) -> None:
    def unknown(name: str) -> str:
        raise ValueError(f"unrecognized configuration name {name}")

    monkeypatch.setattr(os, "confstr", unknown)
    assert malloc_tuning.fix_mmap_threshold() is False
