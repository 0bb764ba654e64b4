"""The live view's full scan with a child scanning ahead (`engine.scan_ahead`) ends with
exactly what one process reads: the same file states, facts, bytes read and log lines, on a
home with odd files (torn tails, non-regular files, compressed, archived, unreadable,
unparsable, duplicates), and when the child fails."""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from codex_indexd.codex import scan_split
from codex_indexd.codex.home import CodexHome
from codex_indexd.codex.rollout_file import scan_file, scan_file_sized
from codex_indexd.engine import live, scan_ahead
from codex_indexd.engine.live import RolloutTracker
from tests.support.homes import build_home, new_thread, rollout_lines, rollout_path
from tests.support.scan_children import split_children

SECRET = "prompt text of the broken file"


def _odd_home(tmp_path: Path) -> tuple[CodexHome, dict[str, Path]]:
    threads = [new_thread(i, turns=1 + i % 4, paginated=i % 2 == 0) for i in range(30)]
    threads += [new_thread(40 + i, archived=True) for i in range(4)]
    home = CodexHome(build_home(tmp_path / "h", threads, db=False))
    odd: dict[str, Path] = {}
    torn = rollout_path(home.root, threads[3])
    with torn.open("ab") as out:
        out.write(b'{"timestamp":"2026-11-20T10:00:00.000Z","type":"event_m')  # torn tail
    odd["torn"] = torn
    day = torn.parent
    odd["garbage"] = day / "rollout-2026-11-20T10-00-00-x.jsonl"
    odd["garbage"].write_bytes(b"not a rollout\n")
    odd["fifo"] = day / "rollout-2026-11-20T10-00-01-00000000-0000-4000-8000-0000000000f1.jsonl"
    os.mkfifo(odd["fifo"])
    odd["dir_link"] = day / "rollout-2026-11-20T10-00-02-00000000-0000-4000-8000-0000000000f2.jsonl"
    odd["dir_link"].symlink_to(day)
    odd["dangling"] = day / "rollout-2026-11-20T10-00-03-00000000-0000-4000-8000-0000000000f3.jsonl"
    odd["dangling"].symlink_to(day / "nowhere")
    link_target = rollout_path(home.root, threads[5])
    odd["link"] = day / f"rollout-2026-11-20T10-00-04-{threads[5].thread_id}.jsonl"
    odd["link"].symlink_to(link_target)  # a second file of thread 5, through a link
    odd["unreadable"] = rollout_path(home.root, threads[7])
    odd["unparsable"] = rollout_path(home.root, threads[9])
    duplicate = home.archived_sessions / rollout_path(home.root, threads[11]).name
    duplicate.write_bytes(rollout_path(home.root, threads[11]).read_bytes()[:-1])  # torn copy
    zstandard = pytest.importorskip("zstandard")
    zthread = new_thread(60, turns=2, paginated=True)
    raw = "".join(rollout_lines(zthread)).encode()
    zpath = home.archived_sessions / f"rollout-2026-11-20T10-05-00-{zthread.thread_id}.jsonl.zst"
    zpath.write_bytes(zstandard.ZstdCompressor().compress(raw))
    return home, odd


def _failing(odd: dict[str, Path], real: Any) -> Any:
    def scan(scan: Any, path: Any) -> Any:
        if str(path) == str(odd["unreadable"]):
            raise PermissionError(13, "Permission denied")
        if str(path) == str(odd["unparsable"]):
            raise ValueError(SECRET)
        return real(scan, path)

    return scan


def _run(home: CodexHome) -> tuple[RolloutTracker, list[MutableMapping[str, Any]]]:
    tracker = RolloutTracker(home)
    with capture_logs() as logs:
        tracker.full_scan()
        tracker.full_scan()  # nothing changed: nothing read or logged again
    return tracker, [e for e in logs if e["event"] != "rollout.scan_split"]


def _state(tracker: RolloutTracker) -> tuple[Any, ...]:
    files = dict(tracker.files)
    return files, list(tracker.files), tracker.facts(), tracker.bytes_read


@pytest.mark.parametrize("share", [0.55, 1.0])
@pytest.mark.parametrize("how", ["forked", "spawned"])
def test_a_split_full_scan_equals_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, share: float
) -> None:
    home, odd = _odd_home(tmp_path)
    if how == "forked":  # a spawned child does not see these patches
        monkeypatch.setattr(live, "scan_file", _failing(odd, scan_file))
        monkeypatch.setattr(scan_split, "scan_file_sized", _failing(odd, scan_file_sized))
    one, one_logs = _run(home)
    monkeypatch.setattr(scan_ahead, "SPLIT_SCAN_WEIGHT", 0)
    monkeypatch.setattr(scan_ahead, "CHILD_SHARE", share)
    children = split_children(monkeypatch, scan_ahead, forked=how == "forked")
    split, split_logs = _run(home)
    assert children  # the second scan may share the files that failed again
    shared = {path for path, _ in children[0].jobs}
    if share == 1.0:  # every file read from its start: the odd ones too
        regular = {"torn", "garbage", "link", "unreadable", "unparsable"}
        assert {str(odd[name]) for name in regular} <= shared
        assert not {str(odd[name]) for name in set(odd) - regular} & shared
        assert any(path.endswith(".zst") for path in shared)
    assert 0 < len(shared) <= len(one.files) + 2
    assert children[0].peak_kib > 0
    assert _state(split) == _state(one)
    assert split_logs == one_logs
    events = {e["event"] for e in one_logs}
    assert {"rollout.not_regular", "rollout.skipped"} <= events
    if how == "forked":
        assert {"rollout.unreadable", "rollout.unparsable"} <= events
    assert SECRET not in repr(split_logs)


def test_the_child_takes_the_tail_and_its_scans_share_interned_strings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = [new_thread(i, turns=2) for i in range(12)]
    home = CodexHome(build_home(tmp_path / "h", threads, db=False))
    monkeypatch.setattr(scan_ahead, "SPLIT_SCAN_WEIGHT", 0)
    monkeypatch.setattr(scan_split, "may_fork", lambda: False)
    tracker = RolloutTracker(home)
    with capture_logs() as logs:
        tracker.full_scan()
    split = [e for e in logs if e["event"] == "rollout.scan_split"]
    assert split and split[0]["files"] == 12 and 0 < split[0]["child_files"] < 12
    for key, state in tracker.files.items():
        facts = state.facts
        assert facts.path is key
        assert facts.thread_id is sys.intern(facts.thread_id)
        assert facts.source is None or facts.source is sys.intern(facts.source)


@pytest.mark.parametrize("change", ["appended", "replaced"])
def test_a_file_changed_after_the_walk_is_read_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """The child's scan of a file whose stat changed since the walk is not used."""
    threads = [new_thread(i, turns=2) for i in range(6)]
    home = CodexHome(build_home(tmp_path / "h", threads, db=False))
    last = rollout_path(home.root, threads[-1])
    monkeypatch.setattr(scan_ahead, "SPLIT_SCAN_WEIGHT", 0)
    monkeypatch.setattr(scan_split, "may_fork", lambda: True)
    real_refresh = RolloutTracker.refresh
    extra = "".join(rollout_lines(new_thread(99, turns=1))[2:]).encode()

    def refresh(self: RolloutTracker, path: Path) -> bool:
        if path == last and not self.files.get(str(last)):
            if change == "appended":
                with last.open("ab") as out:
                    out.write(extra)
            else:
                data = last.read_bytes() + extra
                last.unlink()
                last.write_bytes(data)
        return real_refresh(self, path)

    monkeypatch.setattr(RolloutTracker, "refresh", refresh)
    tracker = RolloutTracker(home)
    tracker.full_scan()
    monkeypatch.undo()
    st = last.stat()
    state = tracker.files[str(last)]
    assert (state.ino, state.size, state.mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)
    assert state.offset == st.st_size
    fresh = RolloutTracker(home)
    fresh.full_scan()
    assert tracker.facts() == fresh.facts()


def test_a_child_that_dies_leaves_its_share_to_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, _ = _odd_home(tmp_path)
    one, one_logs = _run(home)
    monkeypatch.setattr(scan_ahead, "SPLIT_SCAN_WEIGHT", 0)
    monkeypatch.setattr(scan_split, "may_fork", lambda: False)
    monkeypatch.setattr(scan_split, "child_argv", lambda: [sys.executable, "-c", "exit(3)"])
    split, split_logs = _run(home)
    assert _state(split) == _state(one)
    failed = [e for e in split_logs if e["event"] == "rollout.scan_child_failed"]
    assert len(failed) == 1
    assert [e for e in split_logs if e not in failed] == one_logs
