"""A cold scan split with a forked child finds exactly what one process finds."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from codex_indexd.codex.home import CodexHome
from codex_indexd.engine import reading as engine
from tests.support.homes import build_home, new_thread


def test_forked_scan_equals_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    threads = [new_thread(i, turns=1 + i % 4, paginated=i % 2 == 0) for i in range(25)]
    threads += [new_thread(40 + i, archived=True) for i in range(3)]
    home = CodexHome(build_home(tmp_path / "h", threads, db=False))
    bad = home.sessions / "2026" / "11" / "20" / "rollout-2026-11-20T10-00-00-x.jsonl"
    bad.write_bytes(b"not a rollout\n")
    serial_warnings: list[engine.InputWarning] = []
    serial, count = engine.scan_rollouts(home, serial_warnings)
    monkeypatch.setattr(engine, "PARALLEL_SCAN_BYTES", 0)
    calls: list[int] = []
    monkeypatch.setattr(engine, "_fork_scanner", _spy(engine._fork_scanner, calls))
    forked_warnings: list[engine.InputWarning] = []
    forked, forked_count = engine.scan_rollouts(home, forked_warnings)
    assert calls == [1]
    assert forked_count == count == len(threads) + 1
    assert {t: s.facts for t, s in forked.items()} == {t: s.facts for t, s in serial.items()}
    assert forked_warnings == serial_warnings
    assert len(serial) == len(threads)


def _spy(real, calls):
    def wrapper(work):
        calls.append(1)
        return real(work)

    return wrapper


@pytest.mark.parametrize("batch", [1, 3, 256])
@pytest.mark.parametrize("child", ["sends", "dies", "dies-midway"])
def test_the_child_sends_batches_or_the_parent_scans_its_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int, child: str
) -> None:
    """The child's scans come in pickles of `_CHILD_BATCH`; when it fails before or after
    sending some of them, the parent scans the child's share itself: the same facts."""
    threads = [new_thread(i, turns=1 + i % 3) for i in range(9)]
    home = CodexHome(build_home(tmp_path / "h", threads, db=False))
    serial, _ = engine.scan_rollouts(home, [])
    monkeypatch.setattr(engine, "PARALLEL_SCAN_BYTES", 0)
    monkeypatch.setattr(engine, "_CHILD_BATCH", batch)
    parent = os.getpid()
    real_dump = pickle.dump
    sent: list[int] = []

    def dump(obj: object, out: Any, protocol: int) -> None:
        if os.getpid() != parent and child == "dies-midway" and sent:
            raise SystemExit(1)  # the child exits 1 after its first batch
        sent.append(1)
        real_dump(obj, out, protocol)

    real_scan_one = engine._scan_one

    def scan_one(path: str, archived: bool) -> engine.ScanResult:
        if os.getpid() != parent and child == "dies":
            raise SystemExit(1)
        return real_scan_one(path, archived)

    monkeypatch.setattr(pickle, "dump", dump)
    monkeypatch.setattr(engine, "_scan_one", scan_one)
    forked, count = engine.scan_rollouts(home, [])
    assert count == len(threads)
    assert {t: s.facts for t, s in forked.items()} == {t: s.facts for t, s in serial.items()}
