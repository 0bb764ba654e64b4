"""`RestoredIds`: the threads the last plans restored, for `status` and the checkpoint."""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Collection, Iterable

# A partial plan that looked at more than this share of the ids rebuilds the list at once
# (each removal from a sorted list moves its tail).
_REBUILD_SHARE = 8


class RestoredIds:
    """A set of thread ids held as a sorted list (the strings themselves are the facts'): a
    set of 50,000 ids would keep a 2 MiB table for what only a count and the checkpoint read."""

    __slots__ = ("_ids",)

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._ids = sorted(set(ids))

    def replace(self, ids: Iterable[str]) -> None:
        """Take the verdict of a full plan: exactly `ids` are restored."""
        self._ids = sorted(set(ids))

    def update(self, looked_at: Collection[str], selected: Collection[str]) -> None:
        """Take the verdict of a partial plan: of the threads it looked at, exactly `selected`
        are restored now; the others keep their state."""
        ids = self._ids
        if (len(looked_at) + len(selected)) * _REBUILD_SHARE > len(ids):
            self._ids = sorted((set(ids) - set(looked_at)) | set(selected))
            return
        for tid in looked_at:
            at = bisect_left(ids, tid)
            if at < len(ids) and ids[at] == tid:
                del ids[at]
        for tid in selected:
            at = bisect_left(ids, tid)
            if at == len(ids) or ids[at] != tid:
                insort(ids, tid)

    def sorted(self) -> list[str]:
        """Return the ids in order (a copy)."""
        return list(self._ids)

    def __len__(self) -> int:
        return len(self._ids)
