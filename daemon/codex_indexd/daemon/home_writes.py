"""The daemon's write step for one home: what of a plan may be written now (the flap guard,
texts read back from the rollouts, `[history] max_bytes`), and what a write tells (our own
fingerprints, errors and when to retry, the status counters)."""

from __future__ import annotations

import errno
from datetime import UTC, datetime
from typing import Any

from codex_indexd.codex.home import CodexHome
from codex_indexd.daemon.flap_guard import FlapGuard
from codex_indexd.daemon.own_writes import Fingerprint, IndexCache
from codex_indexd.engine import ApplyResult, Targets, recover
from codex_indexd.engine.live import RolloutTracker
from codex_indexd.index.history import fit_history_cap
from codex_indexd.index.model import HistoryLine
from codex_indexd.index.plan import Plan
from codex_indexd.log import get_logger
from codex_indexd.log.redact import safe_detail
from codex_indexd.records import replace
from codex_indexd.write.journal import journal_left
from codex_indexd.write.locks import LockBusy
from codex_indexd.write.safety import UnsafeTarget

log = get_logger("codex_indexd.worker")
INDEX = "session_index.jsonl"
HISTORY = "history.jsonl"


def now_iso() -> str:
    """Return the UTC time now, to the second, as RFC 3339 with a `Z`."""
    return datetime.now(tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class LeftJournals:
    """Resolves the journals a killed writer (ours, or a `repair`) left in one home.

    A failure is logged once per episode, with what `safe_detail` lets through of its cause;
    the same failure on the passes after it only at debug level, and the first success after
    it at info level (`journal.recovered_while_running`)."""

    def __init__(self, home: CodexHome, targets: Targets) -> None:
        self.home = home
        self.targets = targets
        self.failing = False  # the last attempt failed: an episode is open

    def left(self) -> bool:
        """True when a journal of this home's is on disk."""
        journals = (self.targets.journal, self.targets.index_journal)
        return any(journal_left(path) for path in journals)

    def recover(self, *, only_if_left: bool = True) -> bool:
        """Resolve what is left (with `only_if_left=False`, also our stray temp files, even
        without a journal); return True when a recovery ran to its end (the index files may
        have changed). A failure is logged as above and left for the next call."""
        if only_if_left and not self.left():
            return False
        try:
            outcome = recover(self.home)
        except (OSError, LockBusy, UnsafeTarget) as exc:
            level = log.debug if self.failing else log.error
            level(
                "journal.recovery_failed",
                home=str(self.home.root),
                error=type(exc).__name__,
                detail=safe_detail(exc),
                retry="on every pass until it succeeds",
            )
            self.failing = True
            return False
        if only_if_left or self.failing:
            log.info("journal.recovered_while_running", home=str(self.home.root), outcome=outcome)
        self.failing = False
        return True


class HomeWrites:
    """Prepares and records the daemon's writes to one home's index files."""

    def __init__(
        self,
        home: CodexHome,
        tracker: RolloutTracker,
        files: IndexCache,
        stats: dict[str, Any],
    ) -> None:
        self.home = home
        self.tracker = tracker
        self.files = files
        self.stats = stats
        self.guard = FlapGuard()
        self.own: dict[str, Fingerprint] = {}  # our last write's fingerprint, per file name
        self.retry_at: float | None = None
        self.replan_now = False  # a write found the file changed since its plan
        self.over_cap: set[str] = set()  # threads with turns left out for `max_bytes`
        self._error_episode: dict[str, str] = {}
        self._unread = 0
        self._paused = False

    def prepare(self, plan: Plan, now: float) -> Plan | None:
        """Return the plan to write now (derived from `plan`: files whose writes are paused
        left out, texts read back, history fitted under the cap), or None when nothing of it
        is to be written. `complete` tells afterwards whether that was all of the plan."""
        drift = plan.drift
        self._paused = False
        if drift.index_append and not self.guard.allow(INDEX, now):
            drift = replace(drift, index_append=())
            self._paused = True
        if drift.history_add and not self.guard.allow(HISTORY, now):
            drift = replace(drift, history_add=())
            self._paused = True
        plan = replace(plan, drift=drift)
        plan, self._unread = self._read_back_texts(plan)
        drift = plan.drift
        if drift.history_add:
            history = self.files.history_cache.history
            wanted = drift.history_add
            fitted, over_cap = fit_history_cap(
                wanted,
                history.size,
                history.first_ts,
                plan.policy.history_max_bytes,
                plan.policy.history_ts_tolerance_s,
            )
            plan = replace(plan, drift=replace(drift, history_add=tuple(fitted)))
            plan = replace(plan, drift=replace(plan.drift, history_over_cap=over_cap))
            # Left out for the cap: looked at again after Codex's next trim makes room.
            kept = set(fitted)
            self.over_cap = {line.session_id for line in wanted if line not in kept}
        # Everything left out is over the cap: nothing is missing then.
        return None if plan.drift.empty else plan

    @property
    def complete(self) -> bool:
        """True when the last prepared plan held everything (nothing paused or unread)."""
        return not self._unread and not self._paused

    def _read_back_texts(self, plan: Plan) -> tuple[Plan, int]:
        """Return the plan with the texts of the history lines it found missing filled in
        (the daemon's facts keep only keys), and how many could not be read back (left out
        of this write)."""
        drift = plan.drift
        keyed = {(ln.session_id, ln.ts, ln.key) for ln in drift.history_add if ln.text is None}
        if not keyed:
            return plan, 0
        texts = self.tracker.read_texts(ln for ln in drift.history_add if ln.text is None)

        def filled(line: HistoryLine) -> HistoryLine:
            text = texts.get((line.session_id, line.ts, line.key))
            return line if text is None else replace(line, text=text)

        added = tuple(line for line in map(filled, drift.history_add) if line.text is not None)
        desired = tuple(
            filled(line) if (line.session_id, line.ts, line.key) in keyed else line
            for line in plan.desired_history
        )
        derived = replace(plan, desired_history=desired, drift=replace(drift, history_add=added))
        return derived, len(keyed) - len(texts)

    def finish(self, result: ApplyResult, written: Plan, now: float) -> bool:
        """Record what the writers did with `written`; return True when everything planned
        was written."""
        drift = written.drift
        counts = drift.counts()
        keys: dict[str, list[Any]] = {
            INDEX: [(e.thread_id, e.thread_name) for e in drift.index_append],
            HISTORY: list(drift.history_add),
        }
        for exc in result.errors.values():
            self._on_write_error(exc, now)
        if result.history is not None and result.history.stale:
            # Codex trimmed or someone edited history.jsonl after we parsed it: nothing was
            # written; plan again from the file as it is, now.
            self.files.forget(self.home.history.name)
            self.replan_now = True
        if result.errors:
            self._record_writes(result, now, counts, keys)
            return False
        self._error_episode.clear()
        self.retry_at = None
        self._record_writes(result, now, counts, keys)
        if self.replan_now:
            return False
        return not self._unread and all(until <= now for until in self.guard.paused_until.values())

    def _on_write_error(self, exc: Exception, now: float) -> None:
        """Log a failed write once per episode and schedule a retry."""
        if isinstance(exc, LockBusy):
            self.stats["lock_busy"] += 1
            self.stats["last_lock_busy"] = {"at": now_iso(), "path": str(exc.path)}
            # A warning once per episode (a Codex holding its lock for minutes is retried
            # every 2 s); the retries are logged at debug level.
            path = str(exc.path)
            emit = log.debug if self._error_episode.get("lock_busy") == path else log.warning
            self._error_episode["lock_busy"] = path
            emit("lock.busy", path=path, waited_s=round(exc.waited_s, 2))
            delay = 2.0
        elif isinstance(exc, UnsafeTarget):
            self._error("unsafe_target", str(exc))
            delay = 60.0
        else:
            errno_value = getattr(exc, "errno", None)
            kind = "disk_full" if errno_value in (errno.ENOSPC, errno.EDQUOT) else "write_failed"
            self._error(kind, str(exc))
            delay = 5.0
        self.retry_at = min(self.retry_at or now + delay, now + delay)

    def _record_writes(
        self, result: ApplyResult, now: float, counts: dict[str, int], keys: dict[str, list[Any]]
    ) -> None:
        """Remember our own fingerprints, feed the safety valve, log one line for the batch."""
        added = {"index": 0, "history": 0}
        for name, written in ((INDEX, result.index), (HISTORY, result.history)):
            if written is None or written.fingerprint is None:
                continue
            self.own[name] = written.fingerprint
            if not self.files.verify_own_write(name, written):
                self.own.pop(name, None)  # not an echo of ours: its event is processed
            if written.rewritten:
                self.files.rewritten(name)
            added["index" if name == INDEX else "history"] = written.lines_added
            if not self.guard.record(name, now, keys.get(name, ())):
                log.error(
                    "rewrite_loop_suspected",
                    file=name,
                    home=str(self.home.root),
                    detail="another writer keeps undoing our repairs; pausing writes to this "
                    f"file for {int(self.guard.pause_s)} s",
                )
                self.stats["errors"]["flapping"] = {"at": now_iso(), "file": name}
        if not added["index"] and not added["history"]:
            return
        self.stats["repairs"] += 1
        self.stats["last_repair"] = {
            "at": now_iso(),
            "index_lines_added": added["index"],
            "history_lines_added": added["history"],
            "reasons": counts,
        }
        log.info(
            "index.repaired",
            home=str(self.home.root),
            index_lines_added=added["index"],
            history_lines_added=added["history"],
            **{f"drift_{k}": v for k, v in counts.items()},
        )

    def _error(self, kind: str, detail: str) -> None:
        """Log an error once per episode (not on every retry) and keep it for `status`."""
        if self._error_episode.get(kind) != detail:
            log.error(f"write.{kind}", home=str(self.home.root), detail=detail)
            self._error_episode[kind] = detail
        self.stats["errors"][kind] = {"at": now_iso(), "detail": detail}
