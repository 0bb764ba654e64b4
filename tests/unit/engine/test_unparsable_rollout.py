"""A rollout the reader fails on (any exception, not only OSError) is skipped alone, with one
log line or warning that never quotes it; every other rollout of the home is read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from codex_indexd.codex import scan_queue, scan_split
from codex_indexd.codex.home import CodexHome
from codex_indexd.codex.rollout_file import scan_file, scan_file_sized
from codex_indexd.engine import live, reading
from codex_indexd.engine.live import RolloutTracker
from tests.support.homes import build_home, new_thread, rollout_path

SECRET = "prompt text of the broken file"


def _home(tmp_path: Path) -> tuple[CodexHome, list[str], Path]:
    threads = [new_thread(i) for i in range(4)]
    home = CodexHome(build_home(tmp_path / "h", threads, db=False))
    return home, [t.thread_id for t in threads], rollout_path(home.root, threads[1])


def _failing_on(path: Path, real: Any) -> Any:
    def failing(scan: Any, where: Path | str) -> Any:
        if str(where) == str(path):
            raise ValueError(SECRET)
        return real(scan, where)

    return failing


def test_the_live_tracker_skips_the_file_and_logs_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, ids, bad = _home(tmp_path)
    monkeypatch.setattr(live, "scan_file", _failing_on(bad, scan_file))
    tracker = RolloutTracker(home)
    with capture_logs() as logs:
        tracker.full_scan()
        tracker.full_scan()
        tracker.refresh(bad)
    assert set(tracker.facts()) == set(ids) - {ids[1]}
    skipped = [e for e in logs if e["event"] == "rollout.unparsable"]
    assert len(skipped) == 1 and skipped[0]["error"] == "ValueError"
    assert SECRET not in repr(logs)
    monkeypatch.undo()  # the file is read again once the reader copes with it
    bad.touch()
    tracker.refresh(bad)
    assert set(tracker.facts()) == set(ids)


@pytest.mark.parametrize("parallel", [False, True], ids=["one-process", "forked"])
def test_the_one_shot_reader_skips_the_file_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parallel: bool
) -> None:
    home, ids, bad = _home(tmp_path)
    monkeypatch.setattr(scan_split, "scan_file_sized", _failing_on(bad, scan_file_sized))
    if parallel:
        monkeypatch.setattr(scan_queue, "PARALLEL_SCAN_BYTES", 0)
        monkeypatch.setattr(scan_split, "may_fork", lambda: True)
    warnings: list[reading.InputWarning] = []
    scans, count = reading.scan_rollouts(home, warnings)
    assert count == len(ids) and set(scans) == set(ids) - {ids[1]}
    unreadable = [w for w in warnings if w.event == "rollout.unreadable"]
    assert [w.path for w in unreadable] == [str(bad)]
    assert unreadable[0].detail.startswith("ValueError while parsing")
    assert SECRET not in repr(warnings)
