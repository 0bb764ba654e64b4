"""`paused_gc`: the cyclic garbage collector paused over a block that keeps nearly every
object it makes (a parse, a plan, a start, a whole `repair`). Reference counting still frees
whatever is dropped; the collector's passes over 50,000 rollouts' objects would find nothing
to free and cost a fifth of the work.

The collector's switch is the process's: a block that found it off (another thread's pause)
leaves it off, and the block that turned it off turns it on again.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused_gc"]


@contextmanager
def paused_gc(*, freeze: bool = False) -> Iterator[None]:
    """Pause the collector over the block, then restore its state. With `freeze`, what it
    tracks at the end of the block is moved out of its later passes (`gc.freeze`): for what a
    daemon's start builds and keeps as long as it runs."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if enabled:
            gc.enable()
