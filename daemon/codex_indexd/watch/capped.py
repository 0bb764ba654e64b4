"""Observers whose directory walks are iterative and stop at `MAX_TREE_DEPTH`.

watchdog walks a watched tree recursively (`os.walk` before Python 3.12, its own snapshot
walk when polling): a deep enough directory chain raises RecursionError, at start in the
caller, at run time in the thread that reads inotify (which then dies and every watch of the
process goes deaf). These observers watch each tree down to the depth limit and skip what
lies below, with one log line naming the first skipped directory.

watchdog also holds every rename's IN_MOVED_FROM for 0.5 s to pair it with its IN_MOVED_TO,
and every later event of the inotify instance waits behind it: after an archive, an unarchive
or any atomic replace in a watched directory, the next turn's event came half a second late.
The kernel queues both halves of a rename together, and the daemon marks both paths of a move
whether paired or not, so the inotify observer here waits `MOVE_PAIR_WAIT_S` only.
"""

from __future__ import annotations

import functools
import os
import stat
import warnings
from collections.abc import Callable, Iterator
from typing import Any, cast

from watchdog.observers.api import DEFAULT_OBSERVER_TIMEOUT, BaseObserver, EventEmitter
from watchdog.observers.polling import PollingEmitter

from codex_indexd.codex.home import MAX_TREE_DEPTH, note_too_deep
from codex_indexd.log import get_logger

log = get_logger("codex_indexd.observer")

MOVE_PAIR_WAIT_S = 0.02

Listdir = Callable[[str | None], Iterator[os.DirEntry[str]]]

# watchdog warns, naming the whole watch (path included), each time a directory that a walk
# already watches is added again (a directory created while its parent is being walked):
# harmless, and with deep paths kilobytes of stderr per directory.
warnings.filterwarnings(
    "ignore", message="Callback with id .* already exists for watch", category=RuntimeWarning
)


def walk_dirs(
    top: bytes, depth: int, *, follow: bool
) -> Iterator[tuple[bytes, list[bytes], list[bytes]]]:
    """Yield `(directory, dirnames, filenames)` top-down like `os.walk` (errors skipped,
    links to directories listed among dirnames but entered only when `follow`), for the
    directories from `top` (at `depth`) down to MAX_TREE_DEPTH; the first directory too
    deep to enter is logged."""
    stack = [(top, depth)]
    while stack:
        directory, level = stack.pop()
        dirs: list[bytes] = []
        files: list[bytes] = []
        enter: list[bytes] = []
        try:
            with os.scandir(directory) as it:
                for entry in it:
                    try:
                        is_dir = entry.is_dir()
                    except OSError:
                        is_dir = False
                    (dirs if is_dir else files).append(entry.name)
                    if is_dir and (follow or not entry.is_symlink()):
                        enter.append(entry.path)
        except OSError:
            continue
        yield directory, dirs, files
        if level < MAX_TREE_DEPTH:
            stack.extend((path, level + 1) for path in reversed(enter))
        elif enter:
            note_too_deep(os.fsdecode(enter[0]))


@functools.cache
def _inotify_classes() -> tuple[type[EventEmitter], Callable[[], BaseObserver]] | None:
    """Return the depth-capped inotify emitter and observer classes, or None off Linux."""
    try:
        from watchdog.observers.inotify import (
            InotifyEmitter,
            InotifyObserver,
            InotifyWatchGroup,
        )
        from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent, Mask
        from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper
    except (ImportError, OSError):
        return None

    class PromptMoveGrouper(InotifyMoveEventGrouper):
        """Pairs a rename's two events within MOVE_PAIR_WAIT_S, not watchdog's 0.5 s."""

        delay = MOVE_PAIR_WAIT_S

    class CappedWatchGroup(InotifyWatchGroup):
        """A watch group that adds watches down to MAX_TREE_DEPTH only, walking iteratively,
        and whose event callback (run by the thread that reads inotify) never raises."""

        def __post_init__(self) -> None:
            self._move_event_grouper = PromptMoveGrouper()
            super().__post_init__()

        def _depth(self, path: bytes) -> int:
            return path[len(self.path) :].count(os.sep.encode())

        def _add_all_callbacks(self, path: bytes) -> None:
            depth = self._depth(path)
            if path != self.path and depth > MAX_TREE_DEPTH:
                note_too_deep(os.fsdecode(path))
                return
            is_dir = os.path.isdir(path)
            self._add_callback(path)
            if not (is_dir and self.is_recursive):
                return
            for directory, dirnames, _ in walk_dirs(path, depth, follow=self.follow_symlink):
                if self._depth(directory) >= MAX_TREE_DEPTH:
                    continue  # walk_dirs named the first directory below
                for name in dirnames:
                    full = os.path.join(directory, name)
                    if not self.follow_symlink and os.path.islink(full):
                        continue
                    self._add_callback(full)

        def _recursive_simulate(self, src_path: bytes) -> list[InotifyEvent]:
            events: list[InotifyEvent] = []
            depth = self._depth(src_path)
            if depth > MAX_TREE_DEPTH:
                return events  # not watched: `_add_all_callbacks` named it
            for directory, dirnames, filenames in walk_dirs(
                src_path, depth, follow=self.follow_symlink
            ):
                wd = self._active_callbacks_by_path.get(directory)
                if wd is None:
                    continue  # not watched (too deep, or its own event will report it)
                dir_mask = Mask(InotifyConstants.IN_CREATE | InotifyConstants.IN_ISDIR)
                events += [InotifyEvent(wd, dir_mask, 0, name) for name in dirnames]
                file_mask = Mask(InotifyConstants.IN_CREATE)
                events += [InotifyEvent(wd, file_mask, 0, name) for name in filenames]
            return events

        def on_event(self, event: InotifyEvent) -> None:
            try:
                super().on_event(event)
            except Exception as exc:
                log.warning("watch.event_failed", path=os.fsdecode(self.path), error=str(exc))

        def on_queue_overflow(self) -> None:
            try:
                super().on_queue_overflow()
            except Exception as exc:
                log.warning("watch.event_failed", path=os.fsdecode(self.path), error=str(exc))

    class CappedInotifyEmitter(InotifyEmitter):
        def on_thread_start(self) -> None:
            self._inotify = CappedWatchGroup(
                self._inotify_fd,
                os.fsencode(self.watch.path),
                is_recursive=self.watch.is_recursive,
                event_mask=self.get_event_mask_from_filter(),
                follow_symlink=self.watch.follow_symlink,
            )

    class CappedInotifyObserver(InotifyObserver):
        def __init__(self, *, timeout: float = DEFAULT_OBSERVER_TIMEOUT) -> None:
            super().__init__(timeout=timeout)
            self._emitter_class = CappedInotifyEmitter

    return CappedInotifyEmitter, CappedInotifyObserver


def inotify_emitter_class() -> type[EventEmitter] | None:
    """Return the emitter class of `capped_inotify_observer`, or None off Linux."""
    classes = _inotify_classes()
    return None if classes is None else classes[0]


def capped_inotify_observer() -> BaseObserver | None:
    """Return a depth-capped inotify observer, or None where inotify is not available."""
    classes = _inotify_classes()
    return None if classes is None else classes[1]()


def _stat_no_dir_links(path: str) -> os.stat_result:
    """`lstat`, except that a link to a file reports the file (a link to a directory stays a
    link: polling never enters it)."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.stat(path)
        except OSError:
            return st
        if not stat.S_ISDIR(target.st_mode):
            return target
    return st


def capped_listdir(root: str) -> Listdir:
    """Return an `os.scandir` that lists nothing deeper than MAX_TREE_DEPTH below `root`."""
    base = root.rstrip(os.sep).count(os.sep)

    def listdir(path: str | None) -> Iterator[os.DirEntry[str]]:
        if path is not None and os.fspath(path).count(os.sep) - base > MAX_TREE_DEPTH:
            note_too_deep(os.fspath(path))
            return iter(())
        return os.scandir(path)

    return listdir


def _capped_polling_emitter(*args: Any, **kwargs: Any) -> EventEmitter:
    watch = args[1]
    return PollingEmitter(
        *args, stat=_stat_no_dir_links, listdir=capped_listdir(watch.path), **kwargs
    )


def capped_polling_observer(interval_s: float) -> BaseObserver:
    """Return a polling observer whose snapshots stop at MAX_TREE_DEPTH and never enter a
    linked directory."""
    return BaseObserver(cast(type[EventEmitter], _capped_polling_emitter), timeout=interval_s)
