"""The history lock is held for milliseconds whatever the file's size: a merge verifies the
file's start and end under the lock, reads only what was appended since its plan, and appends.
A prober does what Codex does (`flock(LOCK_EX|LOCK_NB)` retried every 100 ms, 10 times) and
measures the longest time the lock was refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.daemons import source_pythonpath
from tests.support.homes import build_home, new_thread
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[3]
PROBER = textwrap.dedent(
    """
    import fcntl, json, os, sys, time
    path, stop, out = sys.argv[1:4]
    fd = os.open(path, os.O_RDWR)
    longest = 0.0
    refused_since = None
    gave_up = 0
    attempts = 0
    open(out + ".ready", "w").close()
    while not os.path.exists(stop):
        attempts += 1
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            now = time.monotonic()
            refused_since = refused_since or now
            if now - refused_since >= 1.0:
                gave_up += 1  # Codex would have dropped its prompt here
            time.sleep(0.002)
            continue
        fcntl.flock(fd, fcntl.LOCK_UN)
        if refused_since is not None:
            longest = max(longest, time.monotonic() - refused_since)
            refused_since = None
        time.sleep(0.002)
    json.dump({"longest_s": longest, "gave_up": gave_up, "attempts": attempts}, open(out, "w"))
    """
)


def big_history(path: Path, size: int, session: str, ts: int) -> int:
    """Write about `size` bytes of Codex-style lines, all newer than `ts`; return the count."""
    line = (
        json.dumps(
            {"session_id": session, "ts": ts + 1000, "text": "an earlier prompt " + "x" * 180},
            separators=(",", ":"),
        ).encode()
        + b"\n"
    )
    count = size // len(line)
    with open(path, "wb") as handle:
        handle.write(line * count)
    os.chmod(path, 0o600)
    return count


@pytest.mark.slow
def test_an_old_turn_into_a_large_history_holds_the_lock_for_milliseconds(tmp_path: Path) -> None:
    thread = new_thread(0, turns=1)
    home = build_home(tmp_path / "h", [thread])
    history = home / "history.jsonl"
    old_ts = int(thread.start.timestamp())
    count = big_history(history, 64 << 20, "11111111-2222-4333-8444-555555555555", old_ts)
    inode = history.stat().st_ino
    stop, out = tmp_path / "stop", tmp_path / "probe.json"
    prober = subprocess.Popen([sys.executable, "-c", PROBER, str(history), str(stop), str(out)])
    try:
        wait_for(lambda: Path(str(out) + ".ready").exists(), 10, "the prober")
        repair = subprocess.run(
            [sys.executable, "-m", "codex_indexd", "repair", "--codex-home", str(home)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": source_pythonpath()},
            timeout=120,
        )
        assert repair.returncode == 0, repair.stdout + repair.stderr
    finally:
        stop.touch()
        prober.wait(timeout=10)
    probe = json.loads(out.read_text())
    assert probe["gave_up"] == 0, "a Codex append would have given up"
    assert probe["longest_s"] < 0.25, f"history lock held {probe['longest_s']:.3f} s"
    data = history.read_bytes()
    assert history.stat().st_ino == inode and history.stat().st_mode & 0o777 == 0o600
    assert data.count(b"\n") == count + 1, "the old turn is appended once; nothing else moved"
    assert json.loads(data.rsplit(b"\n", 2)[-2])["text"] == thread.turns[0].text
    print(f"history {len(data) >> 20} MiB: lock refused at most {probe['longest_s'] * 1000:.1f} ms")
