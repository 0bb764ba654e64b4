"""A directory chain far deeper than Codex's YYYY/MM/DD under sessions/: the daemon and
`repair` walk and watch down to a depth limit, name the first directory below it once, and
keep serving the rest of the home and the other homes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codex_indexd.codex.home import MAX_TREE_DEPTH
from tests.support.daemons import daemon_command, source_pythonpath
from tests.support.homes import build_home, new_thread, read_jsonl, write_rollout
from tests.support.waiting import wait_for

CHAIN_LEVELS = 1500


def make_chain(top: Path, levels: int = CHAIN_LEVELS) -> Path:
    """Create `top/d/d/…/d` (`levels` directories) with mkdir in a loop, relative to an open
    directory so that no path gets long; return the first directory below the depth limit
    (counted from `top`'s parent, sessions/)."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(levels):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)
    return top.joinpath(*["d"] * MAX_TREE_DEPTH)


def remove_chain(top: Path) -> None:
    """Remove a directory tree bottom-up without recursion (shutil.rmtree recurses)."""
    order, stack = [], [str(top)]
    while stack:
        directory = stack.pop()
        order.append(directory)
        for entry in os.scandir(directory):
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            else:
                os.unlink(entry.path)
    for directory in reversed(order):
        os.rmdir(directory)


def index_ids(home: Path) -> set[str]:
    target = home / "session_index.jsonl"
    return {e["id"] for e in read_jsonl(target)} if target.exists() else set()


def too_deep_lines(log: str) -> list[str]:
    return [row for row in log.splitlines() if "rollout.tree_too_deep" in row]


@pytest.mark.parametrize("poll", [False, True], ids=["inotify", "polling"])
@pytest.mark.parametrize("when", ["before_start", "while_running"])
def test_daemon_survives_a_deep_chain_and_serves_everything_else(
    tmp_path: Path, when: str, poll: bool
) -> None:
    deep_home = build_home(tmp_path / "deep", [new_thread(0, paginated=True)])
    other_home = build_home(tmp_path / "other", [new_thread(1, paginated=True)])
    chain_top = deep_home / "sessions"
    too_deep: Path | None = make_chain(chain_top) if when == "before_start" else None
    env = {**os.environ, "PYTHONPATH": source_pythonpath()}
    args = ["--codex-home", str(other_home), "--debounce-ms", "50", *(["--poll"] if poll else [])]
    if poll:
        env["CODEX_INDEXD_POLL_INTERVAL_S"] = "0.2"
    daemon = subprocess.Popen(
        daemon_command(deep_home, *args), env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: index_ids(deep_home) == {new_thread(0, paginated=True).thread_id}, 30)
        if too_deep is None:
            too_deep = make_chain(chain_top)
        late = new_thread(5, paginated=True, source="exec")  # a `codex exec` rollout
        write_rollout(deep_home, late)
        wait_for(lambda: late.thread_id in index_ids(deep_home), 30, "the deep home served")
        other_late = new_thread(6, paginated=True)
        write_rollout(other_home, other_late)
        wait_for(lambda: other_late.thread_id in index_ids(other_home), 30, "the other home")
        assert daemon.poll() is None
        start = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0
        assert time.monotonic() - start < 2.0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        remove_chain(chain_top / "d")
    assert daemon.stderr is not None
    log = daemon.stderr.read()
    assert "Traceback" not in log and "RecursionError" not in log
    lines = too_deep_lines(log)
    assert len(lines) == 1, [row[:60] + " … " + row[-200:] for row in lines]
    assert f"path={too_deep / 'd'} " in lines[0]


def test_repair_walks_a_deep_chain_with_one_warning(tmp_path: Path) -> None:
    home = build_home(tmp_path / "h", [new_thread(0, paginated=True)])
    too_deep = make_chain(home / "sessions")
    env = {**os.environ, "PYTHONPATH": source_pythonpath()}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "codex_indexd", "repair", "--codex-home", str(home), "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    finally:
        remove_chain(home / "sessions" / "d")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    json.loads(done.stdout)
    lines = too_deep_lines(done.stderr)
    assert len(lines) == 1 and str(too_deep) in lines[0], done.stderr[-2000:]
    assert index_ids(home) == {new_thread(0, paginated=True).thread_id}
