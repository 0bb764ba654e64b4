"""One Codex home inside the daemon: live facts, reconciles through the engine's one path,
the checkpoint that lets a restart skip what did not change, healing, the status record.
Its parts: index parses (`own_writes`), the write step (`home_writes`, `flap_guard`), held TUI
turns (`held_turns`), `checkpoint`, when to heal (`healing`), failures (`failures`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codex_indexd.codex.home import CodexHome
from codex_indexd.codex.indexfiles import file_fingerprint
from codex_indexd.collector import paused_gc
from codex_indexd.daemon import checkpoint
from codex_indexd.daemon.checkpoint import RowDigests, Verified, policy_key
from codex_indexd.daemon.failures import HomeFailures
from codex_indexd.daemon.healing import HealSchedule, heal_if_due
from codex_indexd.daemon.held_turns import HeldTurns
from codex_indexd.daemon.home_writes import HomeWrites, LeftJournals, now_iso
from codex_indexd.daemon.own_writes import Fingerprint, IndexCache, PlanDue
from codex_indexd.daemon.restored import RestoredIds
from codex_indexd.engine import HomeFacts, Targets
from codex_indexd.engine.live import RolloutTracker
from codex_indexd.engine.policy import home_policy
from codex_indexd.engine.reconcile import reconcile
from codex_indexd.index.model import Drift, Policy
from codex_indexd.index.plan import Plan
from codex_indexd.index.select import Selection
from codex_indexd.log import get_logger
from codex_indexd.store.files import OurFiles
from codex_indexd.store.status_file import last_repair, write_status
from codex_indexd.watch.threads import ThreadTable
from codex_indexd.write.backup import BackupPolicy

__all__ = ["DAEMON_INDEX_LOCK_TIMEOUT_S", "Fingerprint", "HomeWorker"]

log = get_logger("codex_indexd.worker")
# Codex holds the index lock for milliseconds; after a longer wait (a stuck writer) the daemon
# retries later rather than sit in the lock: it must answer SIGTERM within 2 s.
DAEMON_INDEX_LOCK_TIMEOUT_S = 1.5


class HomeWorker:
    """Keeps one home's indexes right. All methods run on the daemon's worker thread."""

    def __init__(
        self, home: CodexHome, policy: Policy, backup: BackupPolicy, after: HomeWorker | None = None
    ) -> None:
        """A worker for `home`; `after` is the worker it replaces (its start failed): its
        status counters and failure episodes carry on."""
        self.home, self.policy, self.backup = home, policy, backup
        self.tracker = RolloutTracker(home)
        self.table = ThreadTable(home)
        fresh = {"started_at": now_iso(), "repairs": 0, "errors": {}, "lock_busy": 0}
        fresh["last_repair"] = last_repair(home.root)
        self.stats: dict[str, Any] = after.stats if after else fresh
        own_failures = HomeFailures(str(home.root), self.stats)
        self.failures: HomeFailures = after.failures if after else own_failures
        self.started = False  # `start` completed
        self.due = PlanDue()  # after a plan with no drift, only changed threads can drift
        self.files = IndexCache(home, self.due)
        self.writes = HomeWrites(home, self.tracker, self.files, self.stats)
        self.held, self.heal_schedule = HeldTurns(), HealSchedule()
        self._targets = Targets.for_home(home)  # our journals and backups for this home
        self._journals = LeftJournals(home, self._targets)
        self.current_drift: dict[str, int] = {}  # drift left after the last reconcile
        self.extra_status: Callable[[], dict[str, Any]] | None = None  # these three: the daemon's
        self.heal_mode: str = "auto"
        self.heal_binary: str | None = None
        if after is not None:
            self.extra_status, self.heal_mode = after.extra_status, after.heal_mode
            self.heal_binary = after.heal_binary
        self._restored_ids = RestoredIds()
        self._planned_policy, self._saved_version = "", -1
        self._saved_verified: bytes | None = None  # `checkpoint.record_digest` of the saved
        self._activity = self._saved_activity = 0  # bumped by take() and reconcile()
        self.resumed = False  # the start reused a verified record instead of a full plan

    @property
    def own(self) -> dict[str, Fingerprint]:
        """Our last write's fingerprint per file name: its change event is our own echo."""
        return self.writes.own

    # -- facts -------------------------------------------------------------------------
    def start(self) -> None:
        """Recover from a crash, load the checkpoint, then stat every rollout. The garbage
        collector is paused meanwhile and what it tracks then frozen (`paused_gc`)."""
        with paused_gc(freeze=True):
            self._journals.recover(only_if_left=False)
            path = OurFiles.for_home(self.home.root).checkpoint
            loaded, verified = checkpoint.load(self.tracker, path)
            self._saved_version = self.tracker.version if loaded else -1
            self._saved_verified = checkpoint.record_digest(verified)
            started = time.monotonic()
            count = self.tracker.full_scan()
            self.held.saw_recent_turns(self.tracker.facts(), time.time(), time.monotonic())
            self.table.refresh(force=True)
            self.resumed = verified is not None and self._resume(verified)
            log.info(
                "home.loaded",
                home=str(self.home.root),
                rollouts=count,
                from_checkpoint=loaded,
                resumed=self.resumed,
                dirty=len(self.due.dirty) if self.resumed else None,
                bytes_read=self.tracker.bytes_read,
                seconds=round(time.monotonic() - started, 3),
            )
            self.started = True

    def _resume(self, verified: Verified) -> bool:
        """Take up where a verified record left off: only threads whose rollout or DB row
        changed since are planned. Return False (a full plan is due) when the record cannot
        vouch for the home as it is (see `checkpoint.changed_since`)."""
        changed = checkpoint.changed_since(
            verified,
            policy_key(self._policy()),
            self.table,
            file_fingerprint(self.home.session_index),
            file_fingerprint(self.home.history),
        )
        if changed is None:
            return False
        self._collect_changes()
        self.due.dirty |= changed
        self.due.full = False
        self._restored_ids = RestoredIds(verified.restored)
        self._planned_policy = verified.policy
        self.files.verified_fp = {
            self.home.session_index.name: verified.index_fp,
            self.home.history.name: verified.history_fp,
        }
        return True

    def verified_record(self) -> Verified | None:
        """Return what the last plan verified, or None while anything may still drift."""
        if (
            self.due.full
            or self.due.dirty
            or self.current_drift
            or self.writes.retry_at is not None
        ):
            return None
        table = self.table
        if self.tracker.changed_threads or table.changed_ids or table.all_changed or table.error:
            return None
        names = self.files.names
        if not all(name in self.files.verified_fp for name in names):
            return None
        return Verified(
            policy_key(self._policy()),
            self.files.verified_fp[names[0]],
            self.files.verified_fp[names[1]],
            str(table.db_path) if table.db_path else None,
            RowDigests(table.rows or {}),
            self._restored_ids.sorted(),
        )

    def save_checkpoint(self) -> None:
        """Persist the tracker and the verified record, unless neither changed since the last
        save or load, or the start failed (the tracker holds part of the home)."""
        same = self.tracker.version == self._saved_version
        if not self.started or (same and self._activity == self._saved_activity):
            return
        verified = self.verified_record()
        digest = checkpoint.record_digest(verified)
        if same and digest == self._saved_verified:
            self._saved_activity = self._activity
            return
        with self.failures.guard("checkpoint"):  # a full disk, a value JSON cannot hold, ...
            checkpoint.save(self.tracker, OurFiles.for_home(self.home.root).checkpoint, verified)
            self._saved_version, self._saved_verified = self.tracker.version, digest
            self._saved_activity = self._activity

    def take(self, paths: set[str], full: bool) -> bool:
        """Fold a batch of dirty paths into the facts; return True when a reconcile is due."""
        self._activity += 1
        if full:
            self.tracker.full_scan()
            self.table.refresh(force=True)
            self.tracker.relocated.clear()
            self.due.full = True
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
            elif name in self.files.names:
                # Due unless the file is what a plan verified (our own write, typically); a
                # deletion, truncation or edit right after our write differs, after a restart too.
                foreign = not self.files.is_verified(name, file_fingerprint(path))
                due |= foreign
                # A Codex rename bumps `updated_at_ms` by 1 ms only, which the incremental DB
                # query cannot see; the index line it appends is our cue to re-read all rows.
                force_db |= foreign and name == self.home.session_index.name
            else:
                db_touched = True
        if force_db:
            due |= self.table.refresh_for_index(file_fingerprint(self.home.session_index))
        if db_touched:
            due |= self.table.refresh()  # after a full read: the same data_version, no query
        if self.tracker.relocated:
            due |= self.table.refresh_ids(self.tracker.relocated)
            self.tracker.relocated.clear()
        self._collect_changes(from_events=True)
        return due

    def _collect_changes(self, *, from_events: bool = False) -> None:
        """Move what the tracker and the DB view saw change into the dirty set; rollouts that
        changed by an event (not a start-up or full scan) are fresh for a moment."""
        if from_events:
            self.held.saw(self.tracker.changed_threads, time.monotonic())
        self.due.dirty |= self.tracker.changed_threads
        self.tracker.changed_threads.clear()
        self.due.dirty |= self.table.changed_ids
        self.table.changed_ids.clear()
        if self.table.all_changed:
            self.due.full = True
            self.table.all_changed = False

    # -- reconcile ---------------------------------------------------------------------
    def reconcile(self, *, reason: str, heal: bool = True) -> Plan:
        """Plan from the current facts and write what drifted; return the plan."""
        self._activity += 1
        self._recover_left_journals()
        policy = self._policy()
        key = policy_key(policy)
        if key != self._planned_policy:  # Codex's config changed what a plan decides
            self.due.full = True
            self._planned_policy = key
        if self._nothing_to_plan(policy):
            return self._verified_reconcile(reason, policy, heal=heal)
        before = file_fingerprint(self.home.session_index)
        ours = self.files.is_verified(self.home.session_index.name, before)
        index, history = self.files.index(planning=True), self.files.history(planning=True)
        after = file_fingerprint(self.home.session_index)  # the DB is read after the index
        self.table.refresh_for_index(after, ours=ours and after == before)
        self._collect_changes()
        full = self.due.full or policy.max_threads != 0
        only = None if full else set(self.due.dirty)
        facts = HomeFacts(
            self.home,
            self.home.config(),
            self.table.rows,
            self.table.db_path,
            self.tracker.facts(),
            index,
            history,
        )
        now = time.monotonic()
        # After a write error, events do not bypass the retry delay.
        backing_off = self.writes.retry_at is not None and now < self.writes.retry_at

        def before_write(plan: Plan) -> Plan | None:
            self._record_plan(plan, only, reason)
            if backing_off or plan.drift.empty:
                return None
            return self.writes.prepare(plan, time.monotonic())

        outcome = reconcile(
            facts,
            policy,
            backup=self.backup,
            only=only,
            fresh=self.held.fresh(now),
            prepare=before_write,
            index_lock_timeout_s=DAEMON_INDEX_LOCK_TIMEOUT_S,
        )
        plan = outcome.plan
        if backing_off:
            done = False
        elif plan.drift.empty:
            done = True
        elif outcome.result is None or outcome.written is None:
            done = self.writes.complete
        else:
            done = self.writes.finish(outcome.result, outcome.written, time.monotonic())
        if done:
            self.current_drift = {}
            self.due.full = False
            self.due.dirty.clear()
            self.due.dirty |= self.writes.over_cap
        replan, self.writes.replan_now = self.writes.replan_now, False
        self.due.dirty |= self.held.hold(plan, time.monotonic(), replan=replan)
        if heal:
            self.maybe_heal()
        self.write_status()
        return plan

    def _record_plan(self, plan: Plan, only: set[str] | None, reason: str) -> None:
        """Note what a plan decided: the restored threads, the drift, when and why."""
        selected = plan.selection.thread_ids
        if only is None:
            self._restored_ids.replace(selected)
        else:  # a partial plan: threads it looked at are in or out now, the rest unchanged
            self._restored_ids.update(only, selected)
        self.stats["last_reconcile_at"] = now_iso()
        self.stats["last_reconcile_reason"] = reason
        self.current_drift = plan.drift.counts()
        if not plan.drift.history_add:
            self.writes.over_cap = set()  # nothing missing is left out any more

    def _recover_left_journals(self) -> None:
        """Resolve a journal another process left (a `repair` killed mid-write) now, not at
        our own next write: until then a torn line of its write could glue Codex's next one."""
        if self._journals.recover():
            self.files.forget_all()  # the recovery may have rewritten the tail
            self.due.full = True

    @property
    def wake_at(self) -> float | None:
        """The monotonic time this home needs a reconcile without an event, if any."""
        retries = (self.writes.retry_at, self.held.recheck_at, self.failures.retry_at)
        times = [t for t in retries if t is not None]
        return min(times) if times else None

    def _policy(self) -> Policy:
        return home_policy(self.policy, self.home.config())

    def _nothing_to_plan(self, policy: Policy) -> bool:
        """True when no thread changed since a plan that left no drift, and both index files
        still hold what that plan saw (or what we wrote after it)."""
        if self.due.full or self.due.dirty or policy.max_threads != 0:
            return False
        self._collect_changes()
        if self.due.full or self.due.dirty:
            return False
        return self.files.both_verified()

    def _verified_reconcile(self, reason: str, policy: Policy, *, heal: bool) -> Plan:
        """A reconcile that found nothing to plan: record it, and return an empty plan."""
        self.stats["last_reconcile_at"] = now_iso()
        self.stats["last_reconcile_reason"] = reason
        self.current_drift = {}
        if heal:
            self.maybe_heal()
        self.write_status()
        return Plan(Selection((), 0, self.table.rows is not None), (), Drift(), policy)

    # -- healing Codex's DB through its app-server ---------------------------------------
    def maybe_heal(self, *, force: bool = False) -> None:
        """Ask Codex to heal its DB when it was replaced, lost rows, or (rarely) when the DB
        drifted; never in a loop (`healing`); again at the home's next retry if it raised."""
        if self.failures.failing("heal"):
            self.heal_schedule.again()
        with self.failures.guard("heal"):
            heal_if_due(
                self.heal_schedule,
                self.table,
                self._facts,
                self.stats,
                mode=self.heal_mode,
                binary=self.heal_binary,
                force=force,
            )

    def _facts(self) -> HomeFacts:
        """The current facts in the engine's shape (all cached: no file is reread)."""
        return HomeFacts(
            self.home,
            self.home.config(),
            self.table.rows,
            self.table.db_path,
            self.tracker.facts(),
            self.files.index(),
            self.files.history(),
        )

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
            "paused_files": self.writes.guard.paused(time.monotonic()),
            **self.stats,
            **(extra or {}),
        }

    def write_status(self, extra: dict[str, Any] | None = None) -> None:
        merged = {**(self.extra_status() if self.extra_status else {}), **(extra or {})}
        with self.failures.guard("status"):  # a full disk, ...: logged once, retried
            write_status(self.home.root, self.status_record(merged))
