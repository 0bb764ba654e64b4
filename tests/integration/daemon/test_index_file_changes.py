"""Every change of either index file is acted on, whoever made it: after a restart (the
daemon has written nothing yet), and right after the daemon's own write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.daemon.home_files import history_texts, index_ids
from tests.support.daemons import Spawn
from tests.support.homes import build_home, new_thread
from tests.support.waiting import wait_for


@pytest.mark.parametrize("name", ["session_index.jsonl", "history.jsonl"])
def test_a_deleted_index_file_comes_back_after_a_restart(
    tmp_path: Path, spawn: Spawn, name: str
) -> None:
    threads = [new_thread(i, turns=2) for i in range(5)]
    home = build_home(tmp_path / "h", threads)
    first = spawn(home)
    first.wait_ready()
    wait_for(lambda: len(index_ids(home)) == 5 and len(history_texts(home)) == 10, 5, "repair")
    assert first.terminate() == 0
    again = spawn(home)  # resumes from its checkpoint: nothing to do, nothing written
    again.wait_ready()
    (home / name).unlink()
    wait_for(
        lambda: len(index_ids(home)) == 5 and len(history_texts(home)) == 10,
        5,
        f"{name} restored without waiting for the periodic reconcile",
    )
    assert again.alive()


def test_a_truncation_right_after_our_write_is_repaired(tmp_path: Path, spawn: Spawn) -> None:
    threads = [new_thread(i, turns=5) for i in range(5)]
    home = build_home(tmp_path / "h", threads)
    history = home / "history.jsonl"
    history.write_bytes(b"")
    os.chmod(history, 0o600)
    daemon = spawn(home)
    daemon.wait_ready()
    wait_for(lambda: len(history_texts(home)) == 25, 5, "the first restore")
    inode = history.stat().st_ino
    os.truncate(history, 500)  # an edit right after the daemon's own write
    wait_for(
        lambda: len(history_texts(home)) >= 25 and history.read_bytes().count(b"\n") >= 25,
        5,
        "the truncated turns restored",
    )
    assert history.stat().st_ino == inode
    assert daemon.alive()
