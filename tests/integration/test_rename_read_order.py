"""A Codex rename (its DB value first, then its index line) landing while we read a home never
leaves the index on the name from before it: the index is read before the DB, in `repair`'s
gather and in the daemon's plan. Found by the model walk (index_name_stale)."""

from __future__ import annotations

import importlib
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from codex_indexd.cli import main
from codex_indexd.codex.home import CodexHome
from codex_indexd.daemon.home_worker import HomeWorker
from codex_indexd.index.model import Policy
from codex_indexd.write.backup import BackupPolicy
from tests.support.codexsim import CodexSim, SimThread

T = TypeVar("T")
# The module, not the function of the same name the engine package exports.
gather_mod = importlib.import_module("codex_indexd.engine.gather")
NEW_NAME = "the name Codex set meanwhile"


def last_name(home: Path, thread_id: str) -> str | None:
    names = [
        obj["thread_name"]
        for raw in (home / "session_index.jsonl").read_text(encoding="utf-8").splitlines()
        if (obj := json.loads(raw))["id"] == thread_id
    ]
    return names[-1] if names else None


def a_home(tmp_path: Path) -> tuple[CodexSim, SimThread]:
    sim = CodexSim(tmp_path / "home", random.Random(5))
    thread = sim.new_thread(tui=False, paginated=True)
    sim.rename(thread, "the first name")
    assert main(["repair", "--codex-home", str(sim.home), "--max-threads", "0"]) == 0
    assert last_name(sim.home, thread.tid) == "the first name"
    return sim, thread


def rename_after_first_read(
    monkeypatch: pytest.MonkeyPatch, module: Any, names: tuple[str, ...], rename: Callable[[], Any]
) -> None:
    """Make Codex rename right after the first of `names` (readers in `module`) returns."""
    done = False

    def wrap(real: Callable[..., T]) -> Callable[..., T]:
        def reader(*args: Any, **kwargs: Any) -> T:
            nonlocal done
            value = real(*args, **kwargs)
            if not done:
                done = True
                rename()
            return value

        return reader

    for name in names:
        monkeypatch.setattr(module, name, wrap(getattr(module, name)))


def test_repair_never_writes_the_name_from_before_a_rename_made_while_it_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, thread = a_home(tmp_path)
    (sim.home / "session_index.jsonl").write_text("")  # something for repair to write
    rename_after_first_read(
        monkeypatch,
        gather_mod,
        ("read_index", "load_threads"),
        lambda: sim.rename(thread, NEW_NAME),
    )
    assert main(["repair", "--codex-home", str(sim.home), "--max-threads", "0"]) == 0
    assert last_name(sim.home, thread.tid) == NEW_NAME
    monkeypatch.undo()
    assert main(["repair", "--codex-home", str(sim.home), "--max-threads", "0"]) == 0
    assert last_name(sim.home, thread.tid) == NEW_NAME  # and it stays the winner


def test_the_daemon_never_writes_the_name_from_before_a_rename_between_event_and_plan(
    tmp_path: Path,
) -> None:
    """The user deleted the index; before the daemon planned, Codex renamed the thread (DB,
    then an index line that recreates the file): the plan runs before that rename's events
    are taken, with no earlier index line left to tell the names apart."""
    sim, thread = a_home(tmp_path)
    worker = HomeWorker(CodexHome.at(sim.home), Policy(max_threads=0), BackupPolicy())
    worker.start()
    worker.reconcile(reason="start")
    (sim.home / "session_index.jsonl").unlink()
    sim.rename(thread, NEW_NAME)
    worker.reconcile(reason="the deletion's batch")
    assert last_name(sim.home, thread.tid) == NEW_NAME
    worker.reconcile(reason="the rename's own batch")
    assert last_name(sim.home, thread.tid) == NEW_NAME
