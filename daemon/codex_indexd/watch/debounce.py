"""Dirty-path bookkeeping between the observer thread and the worker.

Events only mark paths dirty (level-triggered); the worker takes a batch once the burst has
been quiet for `quiet_s`, or at the latest `max_delay_s` after its first event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from codex_indexd.records import field, record


@record(slots=True)
class Batch:
    paths: dict[str, set[str]] = field(default_factory=dict)  # home root → paths
    full: set[str] = field(default_factory=set)  # homes needing a full reconcile
    rewatch: bool = False
    events: int = 0

    def __bool__(self) -> bool:
        return bool(self.paths or self.full or self.rewatch)


class Debouncer:
    """Thread-safe accumulator of dirty paths with quiet-period / max-delay batching."""

    def __init__(self, quiet_s: float, max_delay_s: float) -> None:
        self.quiet_s = quiet_s
        self.max_delay_s = max_delay_s
        self._cond = threading.Condition()
        self._batch = Batch()
        self._first: float | None = None
        self._last: float | None = None
        self._wakeup = False

    def mark(self, home: str, path: str) -> None:
        with self._cond:
            self._batch.paths.setdefault(home, set()).add(path)
            self._touch()

    def request_full(self, home: str) -> None:
        with self._cond:
            self._batch.full.add(home)
            self._touch()

    def request_rewatch(self, home: str) -> None:
        with self._cond:
            self._batch.rewatch = True
            self._batch.full.add(home)
            self._touch()

    def discard_if(self, home: str, path: str, still_ours: Callable[[], bool]) -> None:
        """Forget the pending mark of `path` when `still_ours()` (called under the lock, so a
        write after it marks the path again) says the file is as our own write left it."""
        with self._cond:
            paths = self._batch.paths.get(home)
            if not paths or path not in paths or not still_ours():
                return
            paths.discard(path)
            if not paths:
                del self._batch.paths[home]
            if not self._batch:
                self._first = self._last = None

    def _touch(self) -> None:
        now = time.monotonic()
        if self._first is None:
            self._first = now
        self._last = now
        self._batch.events += 1
        self._cond.notify_all()

    def wake(self) -> None:
        """Make `wait` return now (signals, shutdown)."""
        with self._cond:
            self._wakeup = True
            self._cond.notify_all()

    def due_in(self, now: float) -> float | None:
        """Seconds until the pending batch is due (0 = now), or None when nothing is pending."""
        if self._first is None or self._last is None:
            return None
        return max(0.0, min(self._last + self.quiet_s, self._first + self.max_delay_s) - now)

    def wait(self, timeout_s: float) -> Batch:
        """Wait up to `timeout_s` for a due batch; return it (empty when none is due)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                now = time.monotonic()
                due = self.due_in(now)
                if due == 0.0:
                    batch, self._batch = self._batch, Batch()
                    self._first = self._last = None
                    return batch
                if self._wakeup:
                    self._wakeup = False
                    return Batch()
                remaining = deadline - now
                if remaining <= 0:
                    return Batch()
                self._cond.wait(min(remaining, due) if due is not None else remaining)

    def drain(self) -> Batch:
        """Take whatever is pending, due or not (used at shutdown)."""
        with self._cond:
            batch, self._batch = self._batch, Batch()
            self._first = self._last = None
            return batch
