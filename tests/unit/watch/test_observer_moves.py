"""A rename in a watched tree does not hold up the events that follow it."""

from __future__ import annotations

import os
import queue
import sys
import time
from pathlib import Path

import pytest
from watchdog.events import FileSystemEvent, FileSystemEventHandler

from codex_indexd.watch.capped import MOVE_PAIR_WAIT_S, capped_inotify_observer

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="inotify")


class Recorder(FileSystemEventHandler):
    def __init__(self) -> None:
        self.events: queue.Queue[tuple[float, FileSystemEvent]] = queue.Queue()

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.events.put((time.monotonic(), event))


def paths_of(event: FileSystemEvent) -> set[str]:
    return {os.fsdecode(p) for p in (event.src_path, getattr(event, "dest_path", "")) if p}


def test_an_append_right_after_an_archive_is_reported_without_the_pairing_delay(
    tmp_path: Path,
) -> None:
    sessions, archived = tmp_path / "sessions", tmp_path / "archived_sessions"
    sessions.mkdir()
    archived.mkdir()
    moved = sessions / "rollout-a.jsonl"
    moved.write_text("{}\n")
    appended = sessions / "rollout-b.jsonl"
    appended.write_text("{}\n")
    observer = capped_inotify_observer()
    assert observer is not None
    recorder = Recorder()
    # Two watched trees, as the daemon has: the rename's IN_MOVED_FROM reaches the first
    # tree's emitter, which never sees its IN_MOVED_TO and waits for it.
    observer.schedule(recorder, str(sessions), recursive=True)
    observer.schedule(recorder, str(archived), recursive=True)
    observer.start()
    try:
        os.rename(moved, archived / moved.name)  # what an archive does
        written_at = time.monotonic()
        with appended.open("a") as out:
            out.write("{}\n")
        seen: set[str] = set()
        arrived_at = None
        deadline = time.monotonic() + 5
        while arrived_at is None and time.monotonic() < deadline:
            try:
                at, event = recorder.events.get(timeout=0.1)
            except queue.Empty:
                continue
            seen |= paths_of(event)
            if str(appended) in paths_of(event) and event.event_type == "modified":
                arrived_at = at
    finally:
        observer.stop()
        observer.join(5)
    assert arrived_at is not None, "no event for the appended file"
    # watchdog's own pairing wait is 0.5 s, and every later event waited behind it.
    assert arrived_at - written_at < 0.45
    assert {str(moved), str(archived / moved.name)} <= seen
    assert MOVE_PAIR_WAIT_S <= 0.05
