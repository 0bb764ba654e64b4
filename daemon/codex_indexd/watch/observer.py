"""watchdog wiring: which paths are watched, how events become dirty marks, and when to poll.

Handlers never raise (one exception would kill watchdog's dispatcher thread for good); the
daemon's supervisor restarts a dead observer.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from codex_indexd.codex.home import CodexHome
from codex_indexd.log import get_logger
from codex_indexd.records import record
from codex_indexd.watch.capped import capped_inotify_observer, capped_polling_observer
from codex_indexd.watch.debounce import Debouncer

log = get_logger("codex_indexd.observer")

# Opened/closed-no-write are left out so that our own reads never wake us up.
EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    DirCreatedEvent,
    DirMovedEvent,
    DirDeletedEvent,
]
_ROOT_NAMES = {"session_index.jsonl", "history.jsonl", "sessions", "archived_sessions"}
_NETWORK_FS = {
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "9p",
    "ceph",
    "glusterfs",
    "afs",
    "davfs",
    "virtiofs",
}


def _is_db_name(name: str) -> bool:
    return name.startswith("state") and (".sqlite" in name)


class HomeEventHandler(FileSystemEventHandler):
    """Routes events of one home to the debouncer. Never raises."""

    def __init__(self, home: CodexHome, sqlite_home: Path, debouncer: Debouncer) -> None:
        self.home = home
        self.key = str(home.root)
        self.sqlite_home = str(sqlite_home)
        self.debouncer = debouncer
        self.errors = 0

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self._route(event)
        except Exception:
            self.errors += 1
            self.debouncer.request_full(self.key)

    def _route(self, event: FileSystemEvent) -> None:
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            path = os.fsdecode(raw) if raw else ""
            if not path:
                continue
            parent, name = os.path.split(path)
            if name.endswith(".codex-indexd.tmp"):
                continue
            if event.is_directory:
                if (parent == self.key and name in _ROOT_NAMES) or _on_the_way(path, self.key):
                    self.debouncer.request_rewatch(self.key)
                elif path.startswith((str(self.home.sessions), str(self.home.archived_sessions))):
                    self.debouncer.request_full(self.key)
                continue
            if name.startswith("rollout-") or (
                parent in (self.key, self.sqlite_home)
                and (name in _ROOT_NAMES or _is_db_name(name))
            ):
                self.debouncer.mark(self.key, path)


@record(slots=True)
class WatchPlan:
    """The directories watched for a home."""

    recursive: list[Path]
    flat: list[Path]


def _on_the_way(path: str, root: str) -> bool:
    """True when directory `path` is `root` or one of its ancestors."""
    return root == path or root.startswith(path.rstrip(os.sep) + os.sep)


def watch_plan(home: CodexHome, sqlite_home: Path) -> WatchPlan:
    """The directories to watch. A home that does not exist yet (Codex never ran) is waited
    for by watching its nearest existing ancestor: its creation triggers a rewatch."""
    recursive = [p for p in (home.sessions, home.archived_sessions) if p.is_dir()]
    flat = [home.root if home.root.is_dir() else nearest_existing(home.root)]
    if sqlite_home != home.root and sqlite_home.is_dir():
        flat.append(sqlite_home)
    return WatchPlan(recursive, flat)


def nearest_existing(path: Path) -> Path:
    """Return `path` or its nearest ancestor that is a directory."""
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            return candidate
    return Path(path.anchor or "/")


def polling_reason(paths: Sequence[Path]) -> str | None:
    """Return why inotify cannot be trusted here (WSL, network or FUSE filesystem), or None."""
    try:
        version = Path("/proc/version").read_text(encoding="ascii", errors="replace").lower()
    except OSError:
        version = ""
    if "microsoft" in version or os.environ.get("WSL_DISTRO_NAME"):
        return "WSL: inotify does not see changes made from Windows"
    mounts = _mounts()
    for path in paths:
        fstype = _fstype(path, mounts)
        if fstype and (fstype in _NETWORK_FS or fstype.startswith("fuse")):
            return f"{path} is on a {fstype} filesystem, where inotify misses remote changes"
    return None


def _mounts() -> list[tuple[str, str]]:
    try:
        text = Path("/proc/self/mounts").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out = []
    for row in text.splitlines():
        parts = row.split()
        if len(parts) >= 3:
            out.append((parts[1].replace("\\040", " "), parts[2]))
    return out


def _fstype(path: Path, mounts: list[tuple[str, str]]) -> str | None:
    target = str(path.resolve())
    best: tuple[int, str] | None = None
    for mount_point, fstype in mounts:
        if (target == mount_point or target.startswith(mount_point.rstrip("/") + "/")) and (
            best is None or len(mount_point) > best[0]
        ):
            best = (len(mount_point), fstype)
    return None if best is None else best[1]


def inotify_hint(exc: OSError) -> str:
    """Return the sysctl advice for an inotify limit error."""
    if exc.errno == errno.ENOSPC:
        current = _read_proc("/proc/sys/fs/inotify/max_user_watches")
        return (
            f"inotify watch limit reached (fs.inotify.max_user_watches={current}); raise it with "
            "'sudo sysctl fs.inotify.max_user_watches=524288' (persist in /etc/sysctl.d/)"
        )
    current = _read_proc("/proc/sys/fs/inotify/max_user_instances")
    return (
        f"inotify instance limit reached (fs.inotify.max_user_instances={current}); raise it with "
        "'sudo sysctl fs.inotify.max_user_instances=512'"
    )


def _read_proc(path: str) -> str:
    try:
        return Path(path).read_text(encoding="ascii").strip()
    except OSError:
        return "?"


def inotify_watched() -> set[tuple[int, int]] | None:
    """Return `(kernel device, inode)` of every directory this process's inotify instances
    watch (from /proc/self/fdinfo), or None where that cannot be known (not Linux)."""
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    watched: set[tuple[int, int]] = set()
    for fd in fds:
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:inotify":
                continue
            info = Path(f"/proc/self/fdinfo/{fd}").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        for row in info.splitlines():
            if not row.startswith("inotify "):
                continue
            fields = dict(part.split(":", 1) for part in row.split()[1:] if ":" in part)
            try:
                watched.add((int(fields["sdev"], 16), int(fields["ino"], 16)))
            except (KeyError, ValueError):
                continue
    return watched


MAX_CHECKED_DIRS = 20_000
# sessions/YYYY/MM/DD: the day directories hold rollouts only, so they are stat'ed, not listed.
ROLLOUT_TREE_DEPTH = 3


def unwatched_dirs(roots: Sequence[Path], watched: set[tuple[int, int]]) -> list[Path]:
    """Return the directories under `roots`, down to the day directories (at most
    MAX_CHECKED_DIRS, links not followed), that no inotify watch covers: watches watchdog
    could not add at run time (it skips them without a word when the watch limit is
    reached)."""
    missing: list[Path] = []
    seen = 0
    stack = [(root, 0) for root in roots if root.is_dir()]
    while stack and seen < MAX_CHECKED_DIRS:
        directory, depth = stack.pop()
        seen += 1
        try:
            st = os.stat(directory, follow_symlinks=False)
            entries = list(os.scandir(directory)) if depth < ROLLOUT_TREE_DEPTH else []
        except OSError:
            continue
        kernel_dev = (os.major(st.st_dev) << 20) | os.minor(st.st_dev)
        if (kernel_dev, st.st_ino) not in watched:
            missing.append(directory)
        stack.extend(
            (Path(entry.path), depth + 1)
            for entry in entries
            if entry.is_dir(follow_symlinks=False)
        )
    return missing


class OverflowFilter(logging.Filter):
    """Turns watchdog's 'queue overflowed' log record into a full-reconcile request."""

    def __init__(self, on_overflow: Callable[[], None]) -> None:
        super().__init__()
        self.on_overflow = on_overflow

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            if "overflow" in record.getMessage().lower():
                self.on_overflow()
        except Exception:
            pass
        return True


_OVERFLOW_LOGGERS = (
    "watchdog.observers.inotify_c",
    "watchdog.observers.inotify",
    "watchdog.observers.inotify_buffer",
)


def install_overflow_hook(on_overflow: Callable[[], None]) -> OverflowFilter:
    hook = OverflowFilter(on_overflow)
    for name in _OVERFLOW_LOGGERS:
        logging.getLogger(name).addFilter(hook)
    return hook


def uninstall_overflow_hook(hook: OverflowFilter) -> None:
    for name in _OVERFLOW_LOGGERS:
        logging.getLogger(name).removeFilter(hook)


ObserverFactory = Callable[[bool, float], BaseObserver]


def default_factory(poll: bool, interval_s: float) -> BaseObserver:
    """Return the observer: polling every `interval_s`, or the platform's native one; both
    walk watched trees iteratively down to MAX_TREE_DEPTH on Linux."""
    if poll:
        return capped_polling_observer(interval_s)
    return capped_inotify_observer() or Observer()
