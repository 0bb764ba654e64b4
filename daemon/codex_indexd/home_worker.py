"""One Codex home inside the daemon: incremental facts, reconcile, own-write detection,
a safety valve against flapping, and the status record."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from typing import Any

from codex_indexd.codex.home import CodexHome
from codex_indexd.codex.indexfiles import (
    HistoryFile,
    IndexFile,
    NotRegularFile,
    extend_from,
    file_fingerprint,
    open_index_file,
    still_prefix,
)
from codex_indexd.engine import ApplyResult, HomeFacts, Targets, apply_plan, recover
from codex_indexd.index.history import fit_history_cap
from codex_indexd.index.model import Drift, HistoryLine, Policy, ThreadRow
from codex_indexd.index.plan import Plan, make_plan
from codex_indexd.index.select import Selection
from codex_indexd.log import get_logger
from codex_indexd.store.files import OurFiles
from codex_indexd.store.status import write_status
from codex_indexd.watch import checkpoint
from codex_indexd.watch.checkpoint import Verified
from codex_indexd.watch.threads import ThreadTable
from codex_indexd.watch.tracker import RolloutTracker
from codex_indexd.write.backup import BackupPolicy
from codex_indexd.write.index_writer import WriteResult
from codex_indexd.write.journal import journal_left
from codex_indexd.write.locks import LockBusy
from codex_indexd.write.safety import UnsafeTarget

log = get_logger("codex_indexd.worker")
Fingerprint = tuple[int, int, int, int]
# Codex holds the index lock for milliseconds; a longer wait means a stuck writer, and the
# daemon retries later rather than sitting in the lock (it must answer SIGTERM within 2 s).
DAEMON_INDEX_LOCK_TIMEOUT_S = 1.5
# The TUI writes its history line 0-0.5 s after the rollout's user turn: a turn the daemon
# saw arrive less than this ago is left for the TUI's own line.
TUI_LINE_GRACE_S = 0.7
HEAL_INTERVAL_S = 300.0  # at most this often without a trigger (DB replaced, rows dropped)


_ROW_FIELDS = attrgetter(*ThreadRow.__slots__)


def row_digest(row: ThreadRow) -> int:
    """Return a digest of every field of a DB row that is stable across processes."""
    encoded = repr(_ROW_FIELDS(row)).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(encoded, digest_size=8).digest(), "big")


def policy_key(policy: Policy) -> str:
    """Return a stable text for everything in `policy` that changes a plan."""
    sources = None if policy.history_sources is None else sorted(policy.history_sources)
    return json.dumps(
        [
            policy.max_threads,
            policy.include_orphans,
            policy.only.value,
            policy.history_max_bytes,
            policy.history_enabled,
            sources,
            policy.history_ts_tolerance_s,
        ]
    )


def now_iso() -> str:
    return datetime.now(tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


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


@dataclass(slots=True)
class _Cached:
    fingerprint: Fingerprint | None = None
    loaded: bool = False
    index: IndexFile = field(default_factory=IndexFile)
    history: HistoryFile = field(default_factory=lambda: HistoryFile(compact=True))


class HomeWorker:
    """Keeps one home's indexes right. All methods run on the daemon's worker thread."""

    def __init__(self, home: CodexHome, policy: Policy, backup: BackupPolicy) -> None:
        self.home = home
        self.policy = policy
        self.backup = backup
        self.tracker = RolloutTracker(home)
        self.table = ThreadTable(home)
        self.guard = FlapGuard()
        self._index = _Cached()
        self._history = _Cached()
        self.own: dict[str, Fingerprint] = {}
        self.stats: dict[str, Any] = {
            "started_at": now_iso(),
            "repairs": 0,
            "errors": {},
            "lock_busy": 0,
        }
        self.retry_at: float | None = None
        self.recheck_at: float | None = None  # held-back TUI turns are due again then
        self._replan_now = False  # a write found the file changed since its plan
        self._seen_at: dict[str, float] = {}  # thread -> when its rollout last changed (monotonic)
        self._targets = Targets.for_home(home)  # our journals and backups for this home
        self._over_cap: set[str] = set()  # threads with turns left out for `max_bytes`
        self.current_drift: dict[str, int] = {}  # drift left after the last reconcile
        self._error_episode: dict[str, str] = {}
        self.extra_status: Callable[[], dict[str, Any]] | None = None  # set by the daemon
        self.heal_mode = "auto"
        self.heal_binary: str | None = None
        self._heal_seen_replaced = 0
        self._heal_seen_rows = 0
        self._heal_last = -HEAL_INTERVAL_S
        # Incremental planning: after a plan that left no drift, only threads whose facts
        # changed can drift, so the next plan looks at those alone.
        self._need_full_plan = True
        self._dirty: set[str] = set()
        self._restored_ids: set[str] = set()
        # Per index file, the fingerprint of the content the last plan saw (or of our own
        # write after it): while both files still match and nothing is dirty, no plan is due.
        self._verified_fp: dict[str, Fingerprint | None] = {}
        self._planned_policy = ""
        self._saved_version = -1
        self._saved_verified: Verified | None = None
        self._activity = 0  # bumped by take() and reconcile(): the verified record may change
        self._saved_activity = 0
        self.resumed = False  # the start reused a verified record instead of a full plan

    # -- facts -------------------------------------------------------------------------
    def start(self) -> None:
        """Recover from a crash, load the checkpoint, then stat every rollout."""
        try:
            recover(self.home)
        except (OSError, LockBusy, UnsafeTarget) as exc:
            log.error("journal.recovery_failed", home=str(self.home.root), error=str(exc))
        loaded, verified = checkpoint.load(
            self.tracker, OurFiles.for_home(self.home.root).checkpoint
        )
        self._saved_version = self.tracker.version if loaded else -1
        self._saved_verified = verified
        started = time.monotonic()
        count = self.tracker.full_scan()
        self.table.refresh(force=True)
        self.resumed = verified is not None and self._resume(verified)
        log.info(
            "home.loaded",
            home=str(self.home.root),
            rollouts=count,
            from_checkpoint=loaded,
            resumed=self.resumed,
            dirty=len(self._dirty) if self.resumed else None,
            bytes_read=self.tracker.bytes_read,
            seconds=round(time.monotonic() - started, 3),
        )

    def _resume(self, verified: Verified) -> bool:
        """Take up where a verified record left off: only threads whose rollout or DB row
        changed since are planned. Return False (a full plan is due) when the policy, the DB
        file or either index file differs from what the record saw."""
        if verified.policy != policy_key(self._policy()) or self.table.error is not None:
            return False
        if verified.db_path != (str(self.table.db_path) if self.table.db_path else None):
            return False
        if (
            file_fingerprint(self.home.session_index) != verified.index_fp
            or file_fingerprint(self.home.history) != verified.history_fp
        ):
            return False
        rows = self.table.rows or {}
        digests = verified.row_digests
        changed = {tid for tid, row in rows.items() if digests.get(tid) != row_digest(row)}
        changed.update(tid for tid in digests if tid not in rows)
        self._collect_changes()
        self._dirty |= changed
        self._need_full_plan = False
        self._restored_ids = set(verified.restored)
        self._planned_policy = verified.policy
        self._verified_fp = {
            self.home.session_index.name: verified.index_fp,
            self.home.history.name: verified.history_fp,
        }
        return True

    def verified_record(self) -> Verified | None:
        """Return what the last plan verified, or None while anything may still drift."""
        if self._need_full_plan or self._dirty or self.current_drift or self.retry_at is not None:
            return None
        table = self.table
        if self.tracker.changed_threads or table.changed_ids or table.all_changed or table.error:
            return None
        names = (self.home.session_index.name, self.home.history.name)
        if not all(name in self._verified_fp for name in names):
            return None
        return Verified(
            policy_key(self._policy()),
            self._verified_fp[names[0]],
            self._verified_fp[names[1]],
            str(table.db_path) if table.db_path else None,
            {tid: row_digest(row) for tid, row in (table.rows or {}).items()},
            sorted(self._restored_ids),
        )

    def save_checkpoint(self) -> None:
        """Persist the tracker and the verified record, unless neither changed since the last
        save or load."""
        if self.tracker.version == self._saved_version and self._activity == self._saved_activity:
            return
        verified = self.verified_record()
        if self.tracker.version == self._saved_version and verified == self._saved_verified:
            self._saved_activity = self._activity
            return
        try:
            checkpoint.save(self.tracker, OurFiles.for_home(self.home.root).checkpoint, verified)
            self._saved_version, self._saved_verified = self.tracker.version, verified
            self._saved_activity = self._activity
        except (OSError, ValueError) as exc:  # a full disk; a value JSON cannot hold
            log.warning("checkpoint.save_failed", error=str(exc))

    def take(self, paths: set[str], full: bool) -> bool:
        """Fold a batch of dirty paths into the facts; return True when a reconcile is due."""
        self._activity += 1
        if full:
            self.tracker.full_scan()
            self.table.refresh(force=True)
            self.tracker.relocated.clear()
            self._need_full_plan = True
            self._collect_changes(from_events=True)  # a new day directory, a rescan: live
            return True
        due = False
        db_touched = False
        force_db = False
        for raw in paths:
            path = Path(raw)
            name = path.name
            if name.startswith("rollout-"):
                due |= self.tracker.refresh(path)
            elif name in ("session_index.jsonl", "history.jsonl"):
                # Due unless the file is exactly what a plan verified (our own write after
                # it, typically): a deletion, a truncation or an edit right after our write
                # all differ, after a restart too.
                fingerprint = file_fingerprint(path)
                foreign = name not in self._verified_fp or fingerprint != self._verified_fp[name]
                due |= foreign
                # A Codex rename bumps `updated_at_ms` by 1 ms only, which the incremental DB
                # query cannot see; the index line it appends is our cue to re-read all rows.
                force_db |= foreign and name == "session_index.jsonl"
            else:
                db_touched = True
        if db_touched or force_db:
            due |= self.table.refresh(force=force_db)
        if self.tracker.relocated:
            due |= self.table.refresh_ids(self.tracker.relocated)
            self.tracker.relocated.clear()
        self._collect_changes(from_events=True)
        return due

    def _fresh_threads(self) -> frozenset[str]:
        """Return the threads whose rollout changed less than TUI_LINE_GRACE_S ago."""
        now = time.monotonic()
        for tid in [t for t, at in self._seen_at.items() if now - at >= TUI_LINE_GRACE_S]:
            del self._seen_at[tid]
        return frozenset(self._seen_at)

    def _collect_changes(self, *, from_events: bool = False) -> None:
        """Move what the tracker and the DB view saw change into the dirty set; rollouts that
        changed by an event (not a start-up or full scan) are fresh for a moment."""
        if from_events:
            now = time.monotonic()
            for tid in self.tracker.changed_threads:
                self._seen_at[tid] = now
        self._dirty |= self.tracker.changed_threads
        self.tracker.changed_threads.clear()
        self._dirty |= self.table.changed_ids
        self.table.changed_ids.clear()
        if self.table.all_changed:
            self._need_full_plan = True
            self.table.all_changed = False

    def _load_index(self, *, planning: bool = False) -> IndexFile:
        return self._load(
            self.home.session_index, self._index, is_index=True, planning=planning
        ).index

    def _load_history(self, *, planning: bool = False) -> HistoryFile:
        return self._load(
            self.home.history, self._history, is_index=False, planning=planning
        ).history

    def _load(self, path: Path, cache: _Cached, *, is_index: bool, planning: bool) -> _Cached:
        """Bring the cached parse of `path` up to date. Only a load for a plan (`planning`)
        records the content as verified: a load at another moment may see a change that no
        plan has looked at yet, which must stay due."""
        fp = file_fingerprint(path)
        if cache.loaded and fp == cache.fingerprint:
            return cache
        # Content a plan verified (our own write after it, typically) dirties nothing.
        verified = path.name in self._verified_fp and self._verified_fp[path.name] == fp
        old = cache.fingerprint
        parsed: IndexFile | HistoryFile = cache.index if is_index else cache.history
        current_size = parsed.size
        try:
            with open_index_file(path) as handle:

                def read_at(offset: int, length: int) -> bytes:
                    handle.seek(offset)
                    return handle.read(length)

                # Only an append keeps what we parsed.
                grew = (
                    fp is not None
                    and old is not None
                    and fp[:2] == old[:2]
                    and fp[2] > parsed.size
                    and still_prefix(parsed, fp[2], read_at)
                )
                handle.seek(current_size if grew else 0)
                if not grew:
                    cache.index, cache.history = IndexFile(), HistoryFile(compact=True)
                    self._need_full_plan |= not verified
                parsed = cache.index if is_index else cache.history
                before = len(parsed.parsed)
                read = extend_from(parsed, handle)
        except (FileNotFoundError, NotRegularFile):  # a refusal is logged by the reader
            cache.index, cache.history = IndexFile(), HistoryFile(compact=True)
            self._need_full_plan |= not verified
            grew, read, before = False, 0, 0
        if is_index and not verified:
            new_lines = cache.index.parsed[before:]
            self._dirty.update(line.thread_id for line in new_lines if line)
        consistent = fp is None or read + (current_size if grew else 0) == fp[2]
        cache.fingerprint = fp if consistent else None
        cache.loaded = True
        if consistent and planning:
            self._verified_fp[path.name] = fp
        elif not consistent:  # the file changed while we read it: the next look rereads it
            self._verified_fp.pop(path.name, None)
        return cache

    # -- reconcile ---------------------------------------------------------------------
    def reconcile(self, *, reason: str, heal: bool = True) -> Plan:
        """Plan from the current facts and write what drifted; return the plan."""
        self._activity += 1
        self._recover_left_journals()
        policy = self._policy()
        key = policy_key(policy)
        if key != self._planned_policy:  # Codex's config changed what a plan decides
            self._need_full_plan = True
            self._planned_policy = key
        if self._nothing_to_plan(policy):
            return self._verified_reconcile(reason, policy, heal=heal)
        index, history = self._load_index(planning=True), self._load_history(planning=True)
        self._collect_changes()
        full = self._need_full_plan or policy.max_threads != 0
        only = None if full else set(self._dirty)
        plan = make_plan(
            self.table.rows,
            self.tracker.facts(),
            index,
            history,
            policy,
            only=only,
            fresh=self._fresh_threads(),
        )
        selected = plan.selection.thread_ids
        if only is None:
            self._restored_ids = selected
        else:  # a partial plan: threads it looked at are in or out now, the rest unchanged
            self._restored_ids -= only
            self._restored_ids |= selected
        self.stats["last_reconcile_at"] = now_iso()
        self.stats["last_reconcile_reason"] = reason
        self.current_drift = plan.drift.counts()
        if not plan.drift.history_add:
            self._over_cap = set()  # nothing missing is left out any more
        backing_off = self.retry_at is not None and time.monotonic() < self.retry_at
        if backing_off:
            pass  # after a write error, events do not bypass the retry delay
        elif plan.drift.empty or self._repair(plan):
            self.current_drift = {}
            self._need_full_plan = False
            self._dirty.clear()
            self._dirty |= self._over_cap
        self._hold_pending(plan)
        if heal:
            self.maybe_heal()
        self.write_status()
        return plan

    def _recover_left_journals(self) -> None:
        """Resolve a journal another process left (a `repair` killed mid-write) now, not at
        our own next write: until then a torn line of its write could glue Codex's next one."""
        targets = self._targets
        if not any(journal_left(path) for path in (targets.journal, targets.index_journal)):
            return
        try:
            outcome = recover(self.home)
        except (OSError, LockBusy, UnsafeTarget) as exc:
            log.error("journal.recovery_failed", home=str(self.home.root), error=str(exc))
            return
        self._history = _Cached()  # the recovery may have rewritten the tail
        self._index = _Cached()
        self._verified_fp.clear()
        self._need_full_plan = True
        log.info("journal.recovered_while_running", home=str(self.home.root), outcome=outcome)

    def _hold_pending(self, plan: Plan) -> None:
        """Keep the threads of TUI turns held back for the TUI's own history line dirty, and
        wake up when their grace period ends."""
        pending = plan.drift.history_pending
        replan, self._replan_now = self._replan_now, False
        if not pending:
            self.recheck_at = time.monotonic() if replan else None
            return
        sessions = {line.session_id for line in pending}
        self._dirty.update(sessions)
        seen = [self._seen_at[tid] for tid in sessions if tid in self._seen_at]
        self.recheck_at = (max(seen) if seen else time.monotonic()) + TUI_LINE_GRACE_S + 0.02

    @property
    def wake_at(self) -> float | None:
        """The monotonic time this home needs a reconcile without an event, if any."""
        times = [t for t in (self.retry_at, self.recheck_at) if t is not None]
        return min(times) if times else None

    def _policy(self) -> Policy:
        config = self.home.config()
        return Policy(
            max_threads=self.policy.max_threads,
            include_orphans=self.policy.include_orphans,
            history_sources=self.policy.history_sources,
            history_max_bytes=config.history_max_bytes,
            history_enabled=config.history_persistence != "none",
        )

    def _nothing_to_plan(self, policy: Policy) -> bool:
        """True when no thread changed since a plan that left no drift, and both index files
        still hold what that plan saw (or what we wrote after it)."""
        if self._need_full_plan or self._dirty or policy.max_threads != 0:
            return False
        self._collect_changes()
        if self._need_full_plan or self._dirty:
            return False
        return all(
            name in self._verified_fp and file_fingerprint(path) == self._verified_fp[name]
            for name, path in (
                (self.home.session_index.name, self.home.session_index),
                (self.home.history.name, self.home.history),
            )
        )

    def _verified_reconcile(self, reason: str, policy: Policy, *, heal: bool) -> Plan:
        """A reconcile that found nothing to plan: record it, and return an empty plan."""
        self.stats["last_reconcile_at"] = now_iso()
        self.stats["last_reconcile_reason"] = reason
        self.current_drift = {}
        if heal:
            self.maybe_heal()
        self.write_status()
        return Plan(Selection([], 0, self.table.rows is not None), [], Drift(), policy)

    # -- healing Codex's DB through its app-server (issue 6) ------------------------------
    def maybe_heal(self, *, force: bool = False) -> None:
        """Ask Codex to heal its DB when it was replaced, lost rows, or (rarely) when the DB
        drifted; never in a loop (Codex is spawned at most every HEAL_INTERVAL_S otherwise)."""
        rows = len(self.table.rows) if self.table.rows is not None else 0
        now = time.monotonic()
        replaced = self.table.replaced != self._heal_seen_replaced
        dropped = rows < self._heal_seen_rows
        self._heal_seen_rows = rows
        due = force or replaced or dropped or now - self._heal_last >= HEAL_INTERVAL_S
        if not due:
            return  # detection walks every thread: not on every reconcile
        self._heal_seen_replaced = self.table.replaced
        self._heal_last = now
        facts = self._facts()
        found = self._record_db_drift(facts)
        if self.heal_mode == "off" and not force:
            return
        if found is None or found.empty:
            return
        from codex_indexd.heal import heal_home
        from codex_indexd.store.heal_attempts import load_attempts, save_attempts

        attempts = load_attempts(self.home.root)
        report = heal_home(facts, mode=self.heal_mode, binary=self.heal_binary, attempts=attempts)
        save_attempts(self.home.root, report.attempts)
        self.stats["last_heal"] = {
            "at": now_iso(),
            "summary": report.summary(),
            "healed": report.healed,
            "not_healed": report.not_healed,
            "given_up": report.given_up,
            "how_to_enable": report.how_to_enable,
        }
        if report.ran:
            self.table.refresh(force=True)
            self._heal_seen_replaced = self.table.replaced

    def _facts(self) -> HomeFacts:
        """The current facts in the engine's shape (all cached: no file is reread)."""
        return HomeFacts(
            self.home,
            self.home.config(),
            self.table.rows,
            self.table.db_path,
            self.tracker.facts(),
            self._load_index(),
            self._load_history(),
        )

    def _record_db_drift(self, facts: HomeFacts) -> Any:
        if self.table.rows is None:
            self.stats["db_drift"] = {}
            return None
        from codex_indexd.heal import detect

        found = detect(facts)
        self.stats["db_drift"] = {k: v for k, v in found.counts().items() if v}
        return found

    def _repair(self, plan: Plan) -> bool:
        """Write the drift; return True when everything planned was written."""
        now = time.monotonic()
        drift = plan.drift
        paused = False
        if drift.index_append and not self.guard.allow("session_index.jsonl", now):
            drift.index_append = []
            paused = True
        if drift.history_add and not self.guard.allow("history.jsonl", now):
            drift.history_add = []
            paused = True
        unread = self._read_back_texts(plan)
        if drift.history_add:
            history = self._history.history
            wanted = drift.history_add
            drift.history_add, drift.history_over_cap = fit_history_cap(
                wanted,
                history.size,
                history.first_ts,
                plan.policy.history_max_bytes,
                plan.policy.history_ts_tolerance_s,
            )
            # Left out for the cap: looked at again after Codex's next trim makes room.
            fitted = set(drift.history_add)
            self._over_cap = {line.session_id for line in wanted if line not in fitted}
        if drift.empty:  # everything left out is over the cap: nothing is missing then
            return not unread and not paused
        counts = drift.counts()
        keys: dict[str, list[Any]] = {
            "session_index.jsonl": [(e.thread_id, e.thread_name) for e in drift.index_append],
            "history.jsonl": list(drift.history_add),
        }
        result = apply_plan(
            self._facts(),
            plan,
            rebuild=False,
            backup=self.backup,
            index_lock_timeout_s=DAEMON_INDEX_LOCK_TIMEOUT_S,
        )
        for exc in result.errors.values():
            self._on_write_error(exc, now)
        if result.history is not None and result.history.stale:
            # Codex trimmed or someone edited history.jsonl after we parsed it: nothing was
            # written; plan again from the file as it is, now.
            self._history = _Cached()
            self._verified_fp.pop(self.home.history.name, None)
            self._replan_now = True
        if result.errors:
            self._record_writes(result, now, counts, keys)
            return False
        self._error_episode.clear()
        self.retry_at = None
        self._record_writes(result, now, counts, keys)
        if self._replan_now:
            return False
        return not unread and all(until <= now for until in self.guard.paused_until.values())

    def _read_back_texts(self, plan: Plan) -> int:
        """Fill in the texts of the history lines the plan found missing (the daemon's facts
        keep only keys); return how many could not be read back (left out of this write)."""
        drift = plan.drift
        keyed = {(ln.session_id, ln.ts, ln.key) for ln in drift.history_add if ln.text is None}
        if not keyed:
            return 0
        texts = self.tracker.read_texts(ln for ln in drift.history_add if ln.text is None)

        def filled(line: HistoryLine) -> HistoryLine:
            text = texts.get((line.session_id, line.ts, line.key))
            return line if text is None else replace(line, text=text)

        drift.history_add = [
            line for line in map(filled, drift.history_add) if line.text is not None
        ]
        plan.desired_history = [
            filled(line) if (line.session_id, line.ts, line.key) in keyed else line
            for line in plan.desired_history
        ]
        return len(keyed) - len(texts)

    def _on_write_error(self, exc: Exception, now: float) -> None:
        """Log a failed write once per episode and schedule a retry."""
        if isinstance(exc, LockBusy):
            self.stats["lock_busy"] += 1
            self.stats["last_lock_busy"] = {"at": now_iso(), "path": str(exc.path)}
            log.warning("lock.busy", path=str(exc.path), waited_s=round(exc.waited_s, 2))
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
        for name, written in (
            ("session_index.jsonl", result.index),
            ("history.jsonl", result.history),
        ):
            if written is None or written.fingerprint is None:
                continue
            self.own[name] = written.fingerprint
            self._verify_own_write(name, written)
            if written.rewritten:
                # Lines went in before the old end (same inode, bigger file): the cached copy
                # must not take the shifted tail for an append. Reread it next time.
                if name.startswith("session"):
                    self._index = _Cached()
                else:
                    self._history = _Cached()
            added["index" if name.startswith("session") else "history"] = written.lines_added
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

    def _verify_own_write(self, name: str, written: WriteResult) -> None:
        """Our write verifies the file when it found exactly what the plan saw (nobody wrote
        in between): the content is then the plan's view plus the missing lines."""
        cache = self._index if name == self.home.session_index.name else self._history
        path_of = {self.home.session_index.name: self.home.session_index}
        path_of[self.home.history.name] = self.home.history
        seen_size = cache.index.size if cache is self._index else cache.history.size
        seen, after = cache.fingerprint, written.fingerprint
        same_file = seen[:2] == after[:2] if seen is not None and after is not None else False
        unchanged = (
            name in self._verified_fp
            and written.before_size == seen_size
            and (same_file or (seen is None and seen_size == 0))  # or we created it
        )
        if unchanged:
            self._verified_fp[name] = written.fingerprint
            # Parse our own lines now: the cache then holds the file as we left it, and any
            # later change (a truncation right after our write) is seen as a change.
            self._load(path_of[name], cache, is_index=cache is self._index, planning=False)
        else:
            # Foreign bytes came in between (a Codex rename appended between our plan and our
            # write): their event is not an echo of ours, and the next plan must read them
            # (for the index, with the DB re-read: Codex renamed there first).
            self._verified_fp.pop(name, None)
            self.own.pop(name, None)

    def _error(self, kind: str, detail: str) -> None:
        """Log an error once per episode (not on every retry) and keep it for `status`."""
        if self._error_episode.get(kind) != detail:
            log.error(f"write.{kind}", home=str(self.home.root), detail=detail)
            self._error_episode[kind] = detail
        self.stats["errors"][kind] = {"at": now_iso(), "detail": detail}

    # -- status ------------------------------------------------------------------------
    def status_record(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "codex_home": str(self.home.root),
            "updated_at": now_iso(),
            "sessions": len(self.tracker.files),
            "threads": len(self.table.rows) if self.table.rows is not None else None,
            "db_path": str(self.table.db_path) if self.table.db_path else None,
            "db_error": self.table.error.kind if self.table.error else None,
            "restored": len(self._restored_ids),
            "drift": self.current_drift,
            "paused_files": [
                name for name, until in self.guard.paused_until.items() if until > time.monotonic()
            ],
            **self.stats,
            **(extra or {}),
        }

    def write_status(self, extra: dict[str, Any] | None = None) -> None:
        merged = {**(self.extra_status() if self.extra_status else {}), **(extra or {})}
        try:
            write_status(self.home.root, self.status_record(merged))
        except OSError as exc:
            log.warning("status.write_failed", error=str(exc))
