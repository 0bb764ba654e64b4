"""A restart takes up where the last verified reconcile left off: with nothing changed it plans
nothing, a change made while the daemon was down is planned alone, and anything the verified
record cannot vouch for (an index file changed, another policy, another DB) forces a full plan.

Every resumed run is compared with a from-scratch run on a copy of the same home: both must
leave byte-identical files."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from codex_indexd.config import settings as settings_mod
from codex_indexd.daemon.loop import Daemon
from codex_indexd.engine import reconcile as reconcile_path
from codex_indexd.engine.apply import apply_plan
from codex_indexd.index.plan import make_plan
from codex_indexd.store.files import OurFiles
from tests.integration.daemon.home_files import append
from tests.support.homes import (
    BASE_TIME,
    build_home,
    index_line,
    new_thread,
    rollout_path,
    user_turn,
    write_rollout,
)

THREADS = [new_thread(i, turns=2) for i in range(8)]


class PlanSpy:
    """Records the `only` argument of every plan the worker makes (None = a full plan)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[set[str] | None] = []
        real = make_plan  # the function the reconcile path calls by this name

        def spy(*args: Any, **kwargs: Any) -> Any:
            only = kwargs.get("only")
            self.calls.append(None if only is None else set(only))
            return real(*args, **kwargs)

        monkeypatch.setattr(reconcile_path, "make_plan", spy)


def run_once(home: Path, **cli: Any) -> dict[str, Any]:
    """One `run --once` in process; return its `home.loaded` log record."""
    with capture_logs() as logs:
        assert Daemon(settings_mod.load({"homes": [str(home)], **cli})).run_once() == 0
    (record,) = [r for r in logs if r["event"] == "home.loaded"]
    return dict(record)


def files(home: Path) -> tuple[bytes, bytes]:
    return (home / "session_index.jsonl").read_bytes(), (home / "history.jsonl").read_bytes()


def from_scratch(home: Path, tmp_path: Path, **cli: Any) -> tuple[bytes, bytes]:
    """The files a run with no checkpoint leaves on a copy of `home` (same paths inside)."""
    copy = tmp_path / "scratch"
    shutil.copytree(home, copy)
    index = copy / "session_index.jsonl"
    index.write_bytes(index.read_bytes().replace(str(home).encode(), str(copy).encode()))
    with sqlite3.connect(copy / "state_5.sqlite") as conn:
        conn.execute(
            "UPDATE threads SET rollout_path = replace(rollout_path, ?, ?)", (str(home), str(copy))
        )
    conn.close()
    record = run_once(copy, **cli)
    assert record["from_checkpoint"] is False
    return files(copy)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home the daemon has reconciled once (its checkpoint holds a verified record)."""
    built = build_home(tmp_path / "h", THREADS)
    first = run_once(built)
    assert first["from_checkpoint"] is False and first["resumed"] is False
    return built


def test_a_restart_with_nothing_changed_plans_nothing(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = files(home)
    spy = PlanSpy(monkeypatch)
    record = run_once(home)
    assert record["resumed"] is True and record["dirty"] == 0
    assert spy.calls == []
    assert files(home) == before


def add_turn(home: Path) -> str:
    append(
        rollout_path(home, THREADS[3]),
        user_turn(THREADS[3], "asked while the daemon was down", BASE_TIME + timedelta(days=2)),
    )
    return THREADS[3].thread_id


def rename_in_db(home: Path) -> str:
    with sqlite3.connect(home / "state_5.sqlite") as conn:
        conn.execute(
            "UPDATE threads SET name = 'Renamed while down' WHERE id = ?", (THREADS[5].thread_id,)
        )
    conn.close()
    return THREADS[5].thread_id


def new_rollout(home: Path) -> str:
    thread = new_thread(20, turns=2)
    write_rollout(home, thread)
    return thread.thread_id


def delete_rollout(home: Path) -> str:
    rollout_path(home, THREADS[6]).unlink()
    return THREADS[6].thread_id


@pytest.mark.parametrize("change", [add_turn, rename_in_db, new_rollout, delete_rollout])
def test_a_change_made_while_down_is_planned_alone(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: Callable[[Path], str]
) -> None:
    changed = change(home)
    expected = from_scratch(home, tmp_path)
    spy = PlanSpy(monkeypatch)
    record = run_once(home)
    assert record["resumed"] is True and record["dirty"] == 1
    assert spy.calls == [{changed}]
    assert files(home) == expected


def drop_index_line(home: Path) -> dict[str, Any]:
    index = home / "session_index.jsonl"
    index.write_bytes(b"".join(index.read_bytes().splitlines(keepends=True)[1:]))
    return {}


def truncate_history(home: Path) -> dict[str, Any]:
    (home / "history.jsonl").write_bytes(b"")
    return {}


def other_policy(home: Path) -> dict[str, Any]:
    return {"policy.history_sources": ["exec"]}


def newer_db(home: Path) -> dict[str, Any]:
    shutil.copy(home / "state_5.sqlite", home / "state_6.sqlite")
    return {}


@pytest.mark.parametrize("change", [drop_index_line, truncate_history, other_policy, newer_db])
def test_what_the_record_cannot_vouch_for_forces_a_full_plan(
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: Callable[[Path], dict[str, Any]],
) -> None:
    cli = change(home)
    expected = from_scratch(home, tmp_path, **cli)
    spy = PlanSpy(monkeypatch)
    record = run_once(home, **cli)
    assert record["from_checkpoint"] is True and record["resumed"] is False
    assert spy.calls == [None]
    assert files(home) == expected


def test_a_write_that_raced_another_writer_is_not_vouched_for(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When Codex appended to the index between our plan and our write, the record must not
    cover Codex's line: the next start plans in full."""
    new_rollout(home)  # a new thread: an index line and history lines to write
    real = apply_plan  # the function the reconcile path calls by this name

    def codex_writes_first(*args: Any, **kwargs: Any) -> Any:
        with open(home / "session_index.jsonl", "ab") as handle:
            handle.write(
                index_line(THREADS[1].thread_id, "Codex was first", "2026-01-01T00:00:00Z").encode()
            )
        return real(*args, **kwargs)

    monkeypatch.setattr(reconcile_path, "apply_plan", codex_writes_first)
    run_once(home)
    monkeypatch.setattr(reconcile_path, "apply_plan", real)
    record = run_once(home)
    assert record["from_checkpoint"] is True and record["resumed"] is False


def test_a_codex_config_change_between_reconciles_forces_a_full_plan(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`[history] persistence` changed in Codex's config.toml while the daemon runs: the next
    reconcile plans every thread again, not only the changed ones."""
    daemon = Daemon(settings_mod.load({"homes": [str(home)]}))
    daemon._make_workers()
    (worker,) = daemon.workers.values()
    worker.start()
    spy = PlanSpy(monkeypatch)
    worker.reconcile(reason="start", heal=False)
    assert spy.calls == []
    (home / "config.toml").write_text('[history]\npersistence = "none"\n')
    worker.reconcile(reason="events", heal=False)
    assert spy.calls == [None]
    worker.reconcile(reason="events", heal=False)
    assert spy.calls == [None], "an unchanged policy needs no second plan"
    worker.table.close()


def test_the_checkpoint_holds_keys_not_prompts(home: Path) -> None:
    """Only a thread's first message (it names the thread) is kept; later turns are keys."""
    data = OurFiles.for_home(home).checkpoint.read_bytes()
    later = THREADS[0].turns[1].text
    assert THREADS[0].turns[0].text.encode() in data.replace(b"\\n", b"\n")
    assert later.encode() not in data.replace(b"\\n", b"\n")
    assert OurFiles.for_home(home).checkpoint.stat().st_mode & 0o777 == 0o600
