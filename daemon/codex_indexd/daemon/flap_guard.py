"""A safety valve against a fight with another writer: when the same lines must be written to
a file again and again, writes to that file pause for a while."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Hashable, Iterable


class FlapGuard:
    """Stops writing a file when the same lines must be written again and again: a fight with
    another writer that keeps removing them. Many different lines (new sessions, new turns)
    are normal activity, however many there are."""

    def __init__(self, limit: int = 3, window_s: float = 600.0, pause_s: float = 600.0) -> None:
        self.limit, self.window_s, self.pause_s = limit, window_s, pause_s
        self._writes: dict[str, deque[tuple[float, int]]] = {}
        self._counts: dict[str, Counter[int]] = {}
        self.paused_until: dict[str, float] = {}

    def allow(self, name: str, now: float) -> bool:
        """True unless writes to `name` are paused at monotonic time `now`."""
        return self.paused_until.get(name, 0.0) <= now

    def record(self, name: str, now: float, keys: Iterable[Hashable]) -> bool:
        """Count a write of the lines `keys`; return False (and pause the file) when one of
        them was written more than `limit` times within the window."""
        writes = self._writes.setdefault(name, deque())
        counts = self._counts.setdefault(name, Counter())
        while writes and writes[0][0] < now - self.window_s:
            _, old = writes.popleft()
            counts[old] -= 1
            if counts[old] <= 0:
                del counts[old]
        flapping = False
        for key in {hash(k) for k in keys}:
            writes.append((now, key))
            counts[key] += 1
            flapping |= counts[key] > self.limit
        if flapping:
            self.paused_until[name] = now + self.pause_s
            writes.clear()
            counts.clear()
            return False
        return True

    def paused(self, now: float) -> list[str]:
        """Return the files whose writes are paused at `now`."""
        return [name for name, until in self.paused_until.items() if until > now]
