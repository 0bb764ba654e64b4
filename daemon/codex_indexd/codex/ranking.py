"""Which of several files with the same thread id speaks for the thread (`repair` and the
daemon alike)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

from codex_indexd.index.model import RolloutFacts


class Ranked(Protocol):
    """What ranks a file among those sharing a thread id: a `RolloutScan`, or the daemon's
    state of a file it has read."""

    @property
    def facts(self) -> RolloutFacts: ...

    @property
    def lines(self) -> int: ...

    @property
    def usable(self) -> bool: ...


_R = TypeVar("_R", bound=Ranked)


def rollout_rank(scan: Ranked) -> tuple[bool, int, str]:
    """Return the sort key of a rollout among files sharing its thread id: a live file over an
    archived one, then the one with more lines, then the greater path (so the choice does not
    depend on the order files were found in)."""
    return (not scan.facts.archived, scan.lines, scan.facts.path)


def choose_rollout(scans: Iterable[_R]) -> _R | None:
    """Return the usable scan that speaks for a thread among files with the same id, or None
    when none is usable. Used by `repair` and the daemon alike."""
    return max((scan for scan in scans if scan.usable), key=rollout_rank, default=None)
