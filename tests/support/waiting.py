"""Polling with a timeout: never a fixed sleep as synchronisation."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition `wait_for` polled did not hold in time (a test failure, not an error)."""


def wait_for(
    cond: Callable[[], T | None],
    timeout: float = 5.0,
    what: str = "condition",
    interval: float = 0.02,
) -> T:
    """Poll `cond` every `interval` s until it returns something truthy; return that value.

    Raises WaitTimeout (an AssertionError) naming `what` and the last value seen once
    `timeout` s have passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            last = repr(value)
            last = last if len(last) <= 200 else last[:200] + "…"
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what} (last: {last})")
        time.sleep(interval)
