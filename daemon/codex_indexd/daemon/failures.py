"""Failures of one home's work in the daemon: whatever one phase of one home raises (its start,
a reconcile, a heal, the checkpoint, the status file) is caught, logged once per episode with
its cause, shown in `status`, and retried after a growing delay; the other homes go on.

An episode of a phase starts at its first failure and ends at its first success after it,
which is logged too (`home.recovered`). The log line carries the exception's type, what
`safe_detail` lets through of its message (cut to DETAIL_MAX characters) and where it was
raised: file, line and function, never values.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from codex_indexd.log import get_logger
from codex_indexd.log.redact import DETAIL_MAX, safe_detail
from codex_indexd.records import record

__all__ = ("DETAIL_MAX", "HomeFailures", "safe_detail")
log = get_logger("codex_indexd.worker")
# Delays before the retries of a failing home, in seconds; the last one repeats.
RETRY_DELAYS_S: tuple[float, ...] = (1.0, 2.0, 5.0, 15.0, 60.0)


@record(slots=True)
class Episode:
    """A phase failing since `since` (wall clock, RFC 3339), `count` times so far."""

    error: str
    detail: str
    where: str
    since: str
    count: int = 1


def _where(exc: BaseException) -> str:
    """Return `file:line in function` of the frame that raised `exc`."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "unknown"
    last = frames[-1]
    return f"{Path(last.filename).name}:{last.lineno} in {last.name}"


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class HomeFailures:
    """The open failure episodes of one home, by phase, and when to retry."""

    def __init__(self, home: str, stats: dict[str, Any]) -> None:
        self.home = home
        self.stats = stats  # the worker's status counters: `errors` gets `<phase>_failed`
        self.episodes: dict[str, Episode] = {}
        self.retry_at: float | None = None
        self.rescan = False  # a pass failed: the next one rescans the home in full
        self._failing_before = False

    def failing(self, phase: str | None = None) -> bool:
        """True while `phase` (any phase, without one) has an open episode."""
        return bool(self.episodes) if phase is None else phase in self.episodes

    def attempt(self, now: float) -> bool:
        """Begin a pass over the home at monotonic `now`; return True when it must rescan the
        home in full (a failed reconcile may have lost the events it was handling). A due
        retry time is cleared: a failure of this pass sets the next one."""
        if self.retry_at is not None and self.retry_at <= now:
            self.retry_at = None
        self._failing_before = bool(self.episodes)
        rescan, self.rescan = self.rescan, False
        return rescan

    def unserved(self) -> bool:
        """True while the home's start or reconcile fails: its index files are not kept
        right (a failing heal, checkpoint or status file leaves them right)."""
        return "start" in self.episodes or "reconcile" in self.episodes

    def unsettled(self) -> bool:
        """True when the home failed during or before the pass that `attempt` began: the
        status that pass wrote (if any) does not show how it ended."""
        return self._failing_before or bool(self.episodes)

    @contextmanager
    def guard(self, phase: str) -> Iterator[None]:
        """Run the block as `phase`: an Exception it raises is recorded and swallowed (the
        code after the block runs); a block that raises nothing ends the phase's episode."""
        try:
            yield
        except Exception as exc:
            self.failed(phase, exc)
        else:
            self.succeeded(phase)

    def failed(self, phase: str, exc: Exception) -> None:
        """Record a failure of `phase`: logged when it opens an episode, counted after."""
        detail = safe_detail(exc)
        episode = self.episodes.get(phase)
        if episode is None:
            episode = self.episodes[phase] = Episode(
                type(exc).__name__, detail, _where(exc), _now_iso(), 0
            )
            log.error(
                "home.failed",
                home=self.home,
                phase=phase,
                error=episode.error,
                detail=detail,
                where=episode.where,
                retry="after a delay, then again on every event",
            )
        episode.count += 1
        episode.error, episode.detail, episode.where = type(exc).__name__, detail, _where(exc)
        delays = RETRY_DELAYS_S
        attempt = sum(e.count for e in self.episodes.values())
        self.retry_at = time.monotonic() + delays[min(attempt, len(delays)) - 1]
        self.rescan |= phase in ("start", "reconcile")
        self.stats["errors"][f"{phase}_failed"] = {
            "at": _now_iso(),
            "since": episode.since,
            "count": episode.count,
            "detail": f"{episode.error}: {detail} ({episode.where})",
        }

    def succeeded(self, phase: str) -> None:
        """End the episode of `phase`, if one is open (logged with how often it failed)."""
        episode = self.episodes.pop(phase, None)
        if episode is None:
            return
        self.stats["errors"].pop(f"{phase}_failed", None)
        log.info(
            "home.recovered",
            home=self.home,
            phase=phase,
            failures=episode.count,
            since=episode.since,
        )
        if not self.episodes:
            self.retry_at = None
