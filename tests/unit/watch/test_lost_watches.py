"""Directories that no inotify watch covers are found from /proc/self/fdinfo: what the daemon
checks to notice watches watchdog could not add at run time."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

import pytest

from codex_indexd.watch.observer import inotify_watched, unwatched_dirs

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="inotify is Linux's")
IN_CREATE = 0x100


def test_a_directory_without_a_watch_is_reported(tmp_path: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    sessions = tmp_path / "sessions"
    watched_day = sessions / "2026" / "12" / "01"
    lost_day = sessions / "2026" / "12" / "02"
    watched_day.mkdir(parents=True)
    lost_day.mkdir(parents=True)
    fd = libc.inotify_init()
    assert fd >= 0
    try:
        for path in (sessions, sessions / "2026", sessions / "2026" / "12", watched_day):
            assert libc.inotify_add_watch(fd, os.fsencode(path), IN_CREATE) >= 0
        watched = inotify_watched()
        assert watched is not None
        assert unwatched_dirs([sessions], watched) == [lost_day]
        assert libc.inotify_add_watch(fd, os.fsencode(lost_day), IN_CREATE) >= 0
        assert unwatched_dirs([sessions], inotify_watched() or set()) == []
    finally:
        os.close(fd)
