"""glibc's malloc set up for a process that builds large tables once and keeps them.

glibc serves a block over its mmap threshold (128 KiB at first) from a mapping of its own,
given back to the system when freed, but it raises the threshold to the size of each such
block freed. The daemon's start grows dicts of 50,000 entries step by step, freeing each
smaller table: the threshold climbs, later tables come from the heap, and the freed ones stay
there as holes (about 3 MiB of the warm daemon's RSS at 50,000 rollouts). A fixed threshold
keeps large blocks in their own mappings. Elsewhere (another libc, macOS) nothing changes.
"""

from __future__ import annotations

import os

M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's <malloc.h>
MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value, kept fixed


def fix_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold at its starting value; return True when it was set (False
    without glibc, or when mallopt refuses)."""
    try:
        os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):  # not glibc: the name is unknown here
        return False
    import ctypes  # watchdog's inotify observer imports it on Linux anyway

    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False
