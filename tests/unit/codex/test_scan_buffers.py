"""Scan buffers are reused from file to file: what a file leaves in one never shows in the
facts of the next, and scans running at once never share one."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from codex_indexd.codex import rollout_file
from codex_indexd.codex.rollout import RolloutScan
from codex_indexd.codex.rollout_file import scan_file
from codex_indexd.codex.scan import CHUNK
from tests.unit.codex.test_scan_equivalence import TID, by_oracle, make_line, observed

TS = "2026-11-25T15:06:12.000Z"
META = make_line(TS, "session_meta", {"id": TID})


def _turn(text: str) -> bytes:
    return make_line(TS, "event_msg", {"type": "user_message", "message": text})


def _write(tmp_path: Path, sub: str, data: bytes) -> Path:
    path = tmp_path / sub / f"rollout-2026-11-25T00-00-00-{TID}.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return path


def test_a_reused_buffer_leaves_nothing_behind(tmp_path: Path) -> None:
    # The first file fills the buffer with complete user turns; the second is shorter and
    # ends in an unfinished turn that the bytes left in the buffer would complete.
    big = META + b"\n" + b"".join(_turn(f"turn {i} " + "x" * 900) + b"\n" for i in range(2000))
    small = META + b"\n" + _turn("kept") + b"\n" + _turn("unfinished")[:40]
    first, second = _write(tmp_path, "a", big), _write(tmp_path, "b", small)
    rollout_file._SPARE_BUFFERS.clear()
    scan_file(RolloutScan.start(first), first)
    assert len(rollout_file._SPARE_BUFFERS) == 1  # the second scan reuses it
    again = scan_file(RolloutScan.start(second), second)
    assert observed(again) == observed(by_oracle(small, scan=RolloutScan.start(second)))
    assert [turn.text for turn in again.facts.user_turns] == ["kept"]


def test_scans_at_once_take_different_buffers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken: list[int] = []
    entered = threading.Barrier(2, timeout=10)
    real_take = rollout_file._take_buffer

    def take() -> bytearray:
        buf = real_take()
        taken.append(id(buf))
        entered.wait()  # both scans hold a buffer at the same time
        return buf

    monkeypatch.setattr(rollout_file, "_take_buffer", take)
    rollout_file._SPARE_BUFFERS[:] = [bytearray(CHUNK)]
    paths = [_write(tmp_path, sub, META + b"\n" + _turn(sub) + b"\n") for sub in ("a", "b")]
    scans: dict[str, RolloutScan] = {}

    def run(path: Path) -> None:
        scans[path.parent.name] = scan_file(RolloutScan.start(path), path)

    workers = [threading.Thread(target=run, args=(path,)) for path in paths]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(set(taken)) == 2
    assert {sub: [t.text for t in s.facts.user_turns] for sub, s in scans.items()} == {
        "a": ["a"],
        "b": ["b"],
    }
    assert len(rollout_file._SPARE_BUFFERS) == 2
