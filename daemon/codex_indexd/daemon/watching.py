"""The daemon's watches: one observer over every home (inotify/FSEvents, or polling when asked,
on a file system without events, or when the watch limit is reached), restarted when it dies,
and switched to polling when directories went unwatched at run time."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable

from watchdog.observers.api import BaseObserver

from codex_indexd.codex.home import CodexHome
from codex_indexd.config.settings import WatchSettings
from codex_indexd.log import get_logger
from codex_indexd.records import record
from codex_indexd.watch.debounce import Debouncer
from codex_indexd.watch.observer import (
    EVENT_FILTER,
    HomeEventHandler,
    ObserverFactory,
    default_factory,
    inotify_hint,
    inotify_watched,
    polling_reason,
    unwatched_dirs,
    watch_plan,
)

log = get_logger("codex_indexd.daemon")
WATCH_CHECK_EVERY_S = 10.0

# The observer factory a daemon uses when it is given none. A test seam: a test replaces it
# (in a subprocess, through a wrapper script) to make native watching fail to start.
DEFAULT_FACTORY: ObserverFactory = default_factory


@record(slots=True)
class WatchState:
    """The running observer and how it watches."""

    observer: BaseObserver | None = None
    polling: bool = False
    reason: str = "inotify" if os.name == "posix" else "native"
    restarts: int = 0


class Watches:
    """Starts, checks and restarts the observer of the daemon's homes.

    `homes` and `settings` are read at each (re)start, so a reload's homes and `[watch]`
    values apply at the next one; `on_missed` runs when events may have been missed (the
    observer died, or directories went unwatched) and every home needs a rescan."""

    def __init__(
        self,
        factory: ObserverFactory,
        debouncer: Debouncer,
        homes: Callable[[], list[CodexHome]],
        settings: Callable[[], WatchSettings],
        on_missed: Callable[[], None],
    ) -> None:
        self.factory = factory
        self.debouncer = debouncer
        self.homes = homes
        self.settings = settings
        self.on_missed = on_missed
        self.state = WatchState()
        self._forced_poll_reason: str | None = None  # set when watches were lost at run time
        self._last_check = time.monotonic()

    def _schedule(self, observer: BaseObserver) -> None:
        for home in self.homes():
            sqlite_home = home.sqlite_home()
            handler = HomeEventHandler(home, sqlite_home, self.debouncer)
            plan = watch_plan(home, sqlite_home)
            for path in plan.recursive:
                observer.schedule(handler, str(path), recursive=True, event_filter=EVENT_FILTER)
            for path in plan.flat:
                if path.is_dir():
                    observer.schedule(
                        handler, str(path), recursive=False, event_filter=EVENT_FILTER
                    )

    def _start(self, poll: bool) -> BaseObserver:
        observer = self.factory(poll, self.settings().poll_interval_s)
        try:
            self._schedule(observer)
            observer.start()
        except BaseException:
            # watchdog leaves the emitters it already started (and the inotify instance)
            # running, queueing events nobody reads: stop them before falling back.
            try:
                observer.stop()
            except Exception as exc:
                log.warning("watch.stop_failed", error=str(exc))
            raise
        return observer

    def _start_retrying(self, poll: bool, attempts: int = 3) -> BaseObserver:
        """`_start`, again with a fresh plan when a watched directory vanished meanwhile
        (sessions/ removed while the observer restarts); other errors propagate."""
        for attempt in range(attempts):
            try:
                return self._start(poll)
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.ENOTDIR) or attempt + 1 == attempts:
                    raise
                log.info("watch.directory_vanished", error=str(exc))
        raise AssertionError("unreachable")

    def start(self) -> None:
        """Start the observer: native watches, else (asked for, no events on this file
        system, the watch limit reached) polling, with the reason logged."""
        roots = [home.root for home in self.homes()]
        reason = (
            "forced by --poll or config"
            if self.settings().poll
            else self._forced_poll_reason or polling_reason(roots)
        )
        poll = reason is not None
        try:
            self.state.observer = self._start_retrying(poll)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EMFILE):
                raise
            reason = inotify_hint(exc)
            log.warning("watch.inotify_unavailable", reason=reason, fallback="polling")
            poll = True
            self.state.observer = self._start_retrying(True)
        self.state.polling = poll
        self.state.reason = (
            f"polling: {reason}"
            if poll
            else "inotify"
            if os.uname().sysname == "Linux"
            else "native"
        )
        if poll:
            log.info("watch.polling", reason=reason, interval_s=self.settings().poll_interval_s)

    def stop(self) -> None:
        """Stop the observer, if one runs (a failure to stop is logged)."""
        observer = self.state.observer
        self.state.observer = None
        if observer is None:
            return
        try:
            observer.stop()
            observer.join(timeout=1.5)
        except Exception as exc:
            log.warning("watch.stop_failed", error=str(exc))

    def supervise(self, restart: Callable[[], None]) -> None:
        """Restart a dead observer through `restart` (a handler exception or a vanished root
        kills it), then ask for a rescan of every home."""
        observer = self.state.observer
        if observer is not None and observer.is_alive():
            return
        self.state.restarts += 1
        log.error("watch.observer_died", restarts=self.state.restarts)
        restart()
        self.on_missed()

    def check(self, restart: Callable[[], None]) -> None:
        """Fall back to polling when a directory under sessions/ went unwatched at run time
        (watchdog skips a new directory silently once the inotify limit is reached); logged
        once, and `status` shows the reason. Checked at most every WATCH_CHECK_EVERY_S;
        `restart` restarts the observer."""
        now = time.monotonic()
        if self.state.polling or now - self._last_check < WATCH_CHECK_EVERY_S:
            return
        self._last_check = now
        watched = inotify_watched()
        if watched is None or self.state.observer is None:
            return
        trees = [p for home in self.homes() for p in (home.sessions, home.archived_sessions)]
        missing = unwatched_dirs(trees, watched)
        if not missing:
            return
        self._forced_poll_reason = (
            f"{len(missing)} directories (first {missing[0]}) could not be watched at run time: "
            + inotify_hint(OSError(errno.ENOSPC, "watch limit"))
        )
        log.warning(
            "watch.lost", directories=len(missing), first=str(missing[0]), fallback="polling"
        )
        restart()
        self.on_missed()  # events in those directories were missed: rescan every home
