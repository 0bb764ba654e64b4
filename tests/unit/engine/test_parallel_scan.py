"""A cold scan split with a child (forked or spawned) finds exactly what one process finds."""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Any

import pytest

from codex_indexd.codex import scan_split
from codex_indexd.codex.home import CodexHome
from codex_indexd.engine import reading as engine
from tests.support.homes import build_home, new_thread
from tests.support.scan_children import split_children


@pytest.mark.parametrize("how", ["forked", "spawned"])
def test_split_scan_equals_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    threads = [new_thread(i, turns=1 + i % 4, paginated=i % 2 == 0) for i in range(25)]
    threads += [new_thread(40 + i, archived=True) for i in range(3)]
    home = CodexHome(build_home(tmp_path / "h", threads, db=False))
    bad = home.sessions / "2026" / "11" / "20" / "rollout-2026-11-20T10-00-00-x.jsonl"
    bad.write_bytes(b"not a rollout\n")
    serial_warnings: list[engine.InputWarning] = []
    serial, count = engine.scan_rollouts(home, serial_warnings)
    monkeypatch.setattr(engine, "PARALLEL_SCAN_BYTES", 0)
    children = split_children(monkeypatch, engine, forked=how == "forked")
    split_warnings: list[engine.InputWarning] = []
    split, split_count = engine.scan_rollouts(home, split_warnings)
    assert len(children) == 1 and children[0].jobs and children[0].peak_kib > 0
    assert split_count == count == len(threads) + 1
    assert {t: s.facts for t, s in split.items()} == {t: s.facts for t, s in serial.items()}
    assert split_warnings == serial_warnings
    assert len(serial) == len(threads)


@pytest.mark.parametrize("batch", [1, 3, 256])
@pytest.mark.parametrize("child", ["sends", "dies", "dies-midway"])
def test_the_child_sends_batches_or_the_parent_scans_its_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int, child: str
) -> None:
    """The child's scans come in pickles of `_BATCH`; when it fails before or after sending
    some of them, the parent scans the child's share itself: the same facts."""
    threads = [new_thread(i, turns=1 + i % 3) for i in range(9)]
    home = CodexHome(build_home(tmp_path / "h", threads, db=False))
    serial, _ = engine.scan_rollouts(home, [])
    monkeypatch.setattr(engine, "PARALLEL_SCAN_BYTES", 0)
    monkeypatch.setattr(scan_split, "may_fork", lambda: True)
    monkeypatch.setattr(scan_split, "_BATCH", batch)
    parent = os.getpid()
    real_dump = pickle.dump
    sent: list[int] = []

    def dump(obj: object, out: Any, protocol: int) -> None:
        if os.getpid() != parent and child == "dies-midway" and sent:
            raise SystemExit(1)  # the child exits 1 after its first batch
        sent.append(1)
        real_dump(obj, out, protocol)

    real_scan_one = scan_split.scan_one

    def scan_one(path: str, archived: bool, keep_text: bool) -> scan_split.ScanResult:
        if os.getpid() != parent and child == "dies":
            raise SystemExit(1)
        return real_scan_one(path, archived, keep_text)

    monkeypatch.setattr(pickle, "dump", dump)
    monkeypatch.setattr(scan_split, "scan_one", scan_one)
    split, count = engine.scan_rollouts(home, [])
    assert count == len(threads)
    assert {t: s.facts for t, s in split.items()} == {t: s.facts for t, s in serial.items()}


@pytest.mark.parametrize(
    "program",
    [
        "import sys; sys.exit(1)",  # dies at once
        "import sys; sys.stdout.buffer.write(b'garbage'); sys.exit(0)",
        "import pickle, sys; pickle.dump(['x'], sys.stdout.buffer); sys.exit(0)",  # too few
        "import pickle, sys; pickle.dump([], sys.stdout.buffer); sys.exit(0)",
        "import pickle, sys; pickle.dump(['x'] * 3, sys.stdout.buffer); sys.exit(0)",
    ],
    ids=["dies", "garbage", "too-few", "empty-batch", "wrong-type"],
)
def test_a_spawned_child_that_fails_leaves_its_share_to_the_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, program: str
) -> None:
    threads = [new_thread(i, turns=2) for i in range(6)]
    home = CodexHome(build_home(tmp_path / "h", threads, db=False))
    serial, _ = engine.scan_rollouts(home, [])
    monkeypatch.setattr(engine, "PARALLEL_SCAN_BYTES", 0)
    monkeypatch.setattr(scan_split, "may_fork", lambda: False)
    monkeypatch.setattr(scan_split, "child_argv", lambda: [sys.executable, "-c", program])
    split, count = engine.scan_rollouts(home, [])
    assert count == len(threads)
    assert {t: s.facts for t, s in split.items()} == {t: s.facts for t, s in serial.items()}


def test_a_child_that_cannot_start_leaves_its_share_to_the_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = [new_thread(i, turns=2) for i in range(4)]
    home = CodexHome(build_home(tmp_path / "h", threads, db=False))
    serial, _ = engine.scan_rollouts(home, [])
    monkeypatch.setattr(engine, "PARALLEL_SCAN_BYTES", 0)
    monkeypatch.setattr(scan_split, "may_fork", lambda: False)
    monkeypatch.setattr(scan_split, "child_argv", lambda: [str(tmp_path / "no-such-python")])
    split, _ = engine.scan_rollouts(home, [])
    assert {t: s.facts for t, s in split.items()} == {t: s.facts for t, s in serial.items()}
