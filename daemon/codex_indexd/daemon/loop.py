"""The daemon loop: debounced batches handed to each home's worker, periodic reconciles,
signals and reloads, sd_notify, single instance per home (the watches are in `watching`)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from codex_indexd.codex.home import CodexHome
from codex_indexd.commands.home_check import MISSING, HomeProblem, check_home, origin_of
from codex_indexd.config import settings as settings_mod
from codex_indexd.config.policies import backup_from_settings, policy_from_settings
from codex_indexd.daemon import watching
from codex_indexd.daemon.home_locks import HomeLocks
from codex_indexd.daemon.home_worker import HomeWorker
from codex_indexd.daemon.home_writes import now_iso
from codex_indexd.daemon.notify import Notifier, status_line
from codex_indexd.daemon.own_writes import drop_own_echoes
from codex_indexd.daemon.service_env import service_manager
from codex_indexd.daemon.watching import Watches, WatchState
from codex_indexd.log import get_logger
from codex_indexd.peak import peak_mib
from codex_indexd.watch.debounce import Batch, Debouncer
from codex_indexd.watch.observer import (
    ObserverFactory,
    OverflowFilter,
    install_overflow_hook,
    uninstall_overflow_hook,
)
from codex_indexd.write.locks import AlreadyRunning

log = get_logger("codex_indexd.daemon")
# A save costs ~0.1 s at 10,000 sessions; after a kill -9 an older one means only a reread.
CHECKPOINT_EVERY_S = 120.0
# Settings a SIGHUP cannot apply to a running daemon.
RESTART_KEYS = ("log_level",)


class Daemon:
    """Watches homes and keeps their indexes right until stopped."""

    def __init__(
        self,
        resolved: settings_mod.Settings,
        *,
        reload: Callable[[], settings_mod.Settings] | None = None,
        observer_factory: ObserverFactory | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.settings = resolved
        self._reload = reload
        self.notifier = notifier or Notifier()
        self.debouncer = Debouncer(
            resolved.watch.debounce_ms / 1000, resolved.watch.max_delay_ms / 1000
        )
        self.workers: dict[str, HomeWorker] = {}
        self.home_locks = HomeLocks()
        self.watches = Watches(
            observer_factory or watching.DEFAULT_FACTORY,
            self.debouncer,
            homes=lambda: [worker.home for worker in self.workers.values()],
            settings=lambda: self.settings.watch,
            on_missed=self._on_overflow,
        )
        self.stop_requested = threading.Event()
        self.reload_requested = threading.Event()
        self._last_full = 0.0
        self._last_checkpoint = 0.0
        self.ready = threading.Event()
        self.reconciles = 0
        self._overflow_hook: OverflowFilter | None = None
        self._last_status = ""
        self._last_watchdog = float("-inf")
        self.problems: dict[str, HomeProblem] = {}  # homes that cannot be served, by path
        self.restart_needed: list[str] = []  # settings a reload could not apply

    # -- homes ---------------------------------------------------------------------------
    def check_homes(self) -> list[HomeProblem]:
        """Set aside the configured homes that cannot be served (a file, unreadable, a broken
        link); a missing home stays, its worker waits for it. Return every problem found,
        missing homes included, each logged once."""
        origin = origin_of(self.settings.sources.get("homes", "default"), self.settings.file)
        found: list[HomeProblem] = []
        usable: list[Path] = []
        for root in self.settings.homes:
            problem = check_home(root, origin)
            if problem is None or problem.code == MISSING:
                usable.append(root)
            if problem is None:
                self.problems.pop(str(root), None)
                continue
            found.append(problem)
            if self.problems.get(str(root)) != problem:
                level = log.warning if problem.code == MISSING else log.error
                level("home.unusable", home=str(root), reason=problem.code, detail=problem.sentence)
            self.problems[str(root)] = problem
        self.settings = self.settings.with_homes(usable)
        return found

    # -- lifecycle ---------------------------------------------------------------------
    def acquire_locks(self) -> None:
        """Take the single-instance lock of every home. Raises AlreadyRunning."""
        self.home_locks.acquire_all(self.settings.homes)

    def release_locks(self) -> None:
        self.home_locks.release_all()

    def _make_workers(self) -> None:
        policy, backup = policy_from_settings(self.settings), backup_from_settings(self.settings)
        for root in self.settings.homes:
            key = str(CodexHome.at(root).root)
            worker = self.workers.get(key)
            if worker is None:
                worker = self.workers[key] = HomeWorker(CodexHome.at(root), policy, backup)
                worker.extra_status = self.status_extra
            else:
                worker.policy, worker.backup = policy, backup
            worker.heal_mode = self.settings.codex_api.mode
            worker.heal_binary = self.settings.codex_api.binary or None

    def install_signals(self) -> None:
        def on_stop(signum: int, frame: FrameType | None) -> None:
            self.stop_requested.set()
            self.debouncer.wake()

        def on_hup(signum: int, frame: FrameType | None) -> None:
            self.reload_requested.set()
            self.debouncer.wake()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)

    def run_once(self) -> int:
        """One full reconcile of every home that exists; return 0, or 1 when a home is missing,
        cannot be served (`check_homes` said which), or failed to start or reconcile."""
        self._make_workers()
        for worker in self.workers.values():
            if not worker.home.root.is_dir() or not self._start(worker).started:
                continue
            with worker.failures.guard("reconcile"):
                worker.reconcile(reason="once")
            worker.save_checkpoint()
            worker.write_status({"running": False})
            worker.table.close()
        unserved = any(w.failures.unserved() for w in self.workers.values())
        return 1 if self.problems or unserved else 0

    def _start(self, worker: HomeWorker) -> HomeWorker:
        """Start `worker` and return it; a failure is logged once and shown in `status`."""
        with worker.failures.guard("start"):
            worker.start()
        if not worker.started:
            worker.write_status()
        return worker

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; return the exit code."""
        self._make_workers()
        self._overflow_hook = install_overflow_hook(self._on_overflow)
        # Watch first, then scan: a write landing between the two is seen by one or the other
        # (the other way round, a write after the scan and before the watch was lost).
        self.start_observer()
        for worker in self.workers.values():
            self._start(worker)  # a home that fails to start is retried, the others go on
        for worker in self.workers.values():
            if worker.started:
                with worker.failures.guard("reconcile"):
                    worker.reconcile(reason="start", heal=False)  # healing waits for READY
        self._last_full = self._last_checkpoint = time.monotonic()
        self.ready.set()
        self._last_status = self._status_line()
        self.notifier.send("READY=1", self._last_status)
        for worker in self.workers.values():
            if worker.started:
                worker.save_checkpoint()  # after READY: a cold start's checkpoint is not urgent
                worker.maybe_heal()
        log.info(
            "daemon.ready",
            homes=len(self.workers),
            watcher=self.watch.reason,
            polling=self.watch.polling,
        )
        try:
            self._loop()
        finally:
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        self.notifier.send("STOPPING=1")
        pending = self.debouncer.drain()
        if pending:
            self.process(pending)
        self.stop_observer()
        if self._overflow_hook is not None:
            uninstall_overflow_hook(self._overflow_hook)
            self._overflow_hook = None
        for worker in self.workers.values():
            worker.save_checkpoint()
            worker.write_status({"stopped_at": now_iso(), "running": False})
            worker.table.close()
        log.info("daemon.stopped", peak_rss_mib=peak_mib())  # its last saves included

    # -- observer ----------------------------------------------------------------------
    def _on_overflow(self) -> None:
        for key in list(self.workers):
            self.debouncer.request_full(key)

    @property
    def watch(self) -> WatchState:
        """The running observer and how it watches."""
        return self.watches.state

    def start_observer(self) -> None:
        self.watches.start()

    def stop_observer(self) -> None:
        self.watches.stop()

    def supervise(self) -> None:
        """Restart a dead observer (a handler exception or a vanished root kills it)."""
        self.watches.supervise(self.rewatch)

    def check_watches(self) -> None:
        """Fall back to polling when directories went unwatched at run time."""
        self.watches.check(self.rewatch)

    def rewatch(self) -> None:
        self.stop_observer()
        self.start_observer()

    # -- work ----------------------------------------------------------------------------
    def process(self, batch: Batch) -> None:
        if batch.rewatch:
            self.rewatch()
            # The observer of every home was down for a moment: rescan them all.
            batch.full.update(self.workers)
        for key in list(self.workers):
            worker = self.workers[key]
            full = key in batch.full
            paths = batch.paths.get(key, set())
            due_retry = worker.wake_at is not None and worker.wake_at <= time.monotonic()
            if not (full or paths or due_retry):
                continue
            failures = worker.failures
            full |= failures.attempt(time.monotonic())  # a rescan after a failed pass
            if not worker.started:  # its start failed: again, on a fresh worker
                worker.table.close()
                fresh = HomeWorker(worker.home, worker.policy, worker.backup, worker)
                worker = self.workers[key] = self._start(fresh)
                if not worker.started:
                    continue
            with failures.guard("reconcile"):
                if worker.take(paths, full) or full or due_retry:
                    worker.reconcile(
                        reason="full" if full else "retry" if due_retry and not paths else "events"
                    )
                    self.reconciles += 1
                    drop_own_echoes(self.debouncer, key, worker.home.root, worker.own)
            if failures.unsettled():  # the status this pass wrote is stale; retry a save
                worker.save_checkpoint()
                worker.write_status()

    def _timeout(self) -> float:
        now = time.monotonic()
        interval = self.settings.watch.reconcile_interval_s
        waits = [interval - (now - self._last_full), 1.0]
        if self.notifier.watchdog_s:
            waits.append(self.notifier.watchdog_s / 3)
        waits += [t - now for w in self.workers.values() if (t := w.wake_at) is not None]
        return max(0.01, min(waits))

    def _loop(self) -> None:
        while not self.stop_requested.is_set():
            batch = self.debouncer.wait(self._timeout())
            if self.stop_requested.is_set():
                if batch:
                    self.process(batch)
                break
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self.reload()
            self.supervise()
            self.check_watches()
            now = time.monotonic()
            if now - self._last_full >= self.settings.watch.reconcile_interval_s:
                batch.full.update(self.workers)
                self._last_full = now
            self.process(batch)
            self._notify_alive()
            if now - self._last_checkpoint >= CHECKPOINT_EVERY_S:
                for worker in self.workers.values():
                    worker.save_checkpoint()
                self._last_checkpoint = now

    def _notify_alive(self) -> None:
        """WATCHDOG=1 when systemd asked for it (and the observer runs); STATUS= when it changed."""
        fields = []
        observer = self.watch.observer
        watchdog_s = self.notifier.watchdog_s
        now = time.monotonic()
        if (
            watchdog_s
            and now - self._last_watchdog >= watchdog_s / 4
            and observer is not None
            and observer.is_alive()
        ):
            fields.append("WATCHDOG=1")
            self._last_watchdog = now
        status_line = self._status_line()
        if status_line != self._last_status:
            fields.append(status_line)
        if fields and self.notifier.send(*fields):
            self._last_status = status_line

    def reload(self) -> None:
        """SIGHUP: re-read the config; a bad one keeps the last good settings. Homes added
        to the config are locked, loaded and watched; homes removed are let go of. A change
        that only a restart applies is logged and shown by `status`."""
        if self._reload is None:
            return
        try:
            fresh = self._reload()
        except settings_mod.ConfigError as exc:
            log.error("config.reload_failed", error=str(exc), kept="previous configuration")
            return
        before = self.settings
        self.settings = fresh
        self.check_homes()
        added, dropped = self._apply_homes(before)
        self.restart_needed = [k for k in RESTART_KEYS if fresh.value(k) != before.value(k)]
        if self.restart_needed:
            log.warning(
                "config.restart_needed",
                keys=self.restart_needed,
                detail="restart the daemon to apply these settings",
            )
        self.debouncer.quiet_s = fresh.watch.debounce_ms / 1000
        self.debouncer.max_delay_s = fresh.watch.max_delay_ms / 1000
        self._make_workers()
        for key in added:
            self._start(self.workers[key])
        rewatch = (fresh.watch.poll, fresh.watch.poll_interval_s) != (
            before.watch.poll,
            before.watch.poll_interval_s,
        )
        if added or dropped or rewatch:
            self.rewatch()
        log.info("config.reloaded", file=str(fresh.file), added=added, dropped=dropped)
        for key in self.workers:
            self.debouncer.request_full(key)

    def _apply_homes(self, before: settings_mod.Settings) -> tuple[list[str], list[str]]:
        """Lock the homes the fresh settings add, let go of those they drop; return both
        lists of home keys. A home another daemon serves is left out, with a log line."""
        wanted = {str(CodexHome.at(root).root): root for root in self.settings.homes}
        dropped = [key for key in self.workers if key not in wanted]
        for key in dropped:
            worker = self.workers.pop(key)
            worker.save_checkpoint()
            worker.write_status({"stopped_at": now_iso(), "running": False})
            worker.table.close()
            self.home_locks.release(key)
            log.info("home.dropped", home=key)
        added: list[str] = []
        keep: list[Path] = []
        for key, root in wanted.items():
            if key in self.workers:
                keep.append(root)
                continue
            try:
                self.home_locks.acquire(root)
            except AlreadyRunning as exc:
                log.error("home.already_served", home=key, pid=exc.pid, lock=str(exc.path))
                continue
            keep.append(root)
            added.append(key)
            log.info("home.added", home=key)
        self.settings = self.settings.with_homes(keep)
        return added, dropped

    def _status_line(self) -> str:
        workers = self.workers.values()
        return status_line([(len(w.tracker.files), w.stats) for w in workers], self.watch.polling)

    def status_extra(self) -> dict[str, Any]:
        return {
            "running": True,
            "watcher": self.watch.reason,
            "polling": self.watch.polling,
            "observer_restarts": self.watch.restarts,
            "service_manager": service_manager(),
            "restart_needed": list(self.restart_needed),
        }
