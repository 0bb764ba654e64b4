"""A journal another writer left that cannot be resolved yet: one error for the episode, not
one per pass; its first success after it is logged; nothing is lost."""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from codex_indexd.codex.home import CodexHome
from codex_indexd.daemon.home_writes import LeftJournals
from codex_indexd.engine import Targets
from codex_indexd.store.dirs import private_dir
from codex_indexd.write.journal import JournalRecord, write_journal

OLD = b'{"session_id":"a","ts":1,"text":"one"}\n'
NEW = OLD + b'{"session_id":"b","ts":3,"text":"three"}\n'


def leave_journal(home: CodexHome, targets: Targets) -> None:
    """Leave the journal of a write of NEW's tail over OLD, killed before it wrote a byte."""
    st = home.history.stat()
    private_dir(targets.journal.parent)
    write_journal(
        targets.journal,
        JournalRecord(str(home.history), st.st_dev, st.st_ino, len(OLD), b"", NEW[len(OLD) :]),
    )


@pytest.fixture(autouse=True)
def own_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our journals under `tmp_path`, not in the user's state directory."""
    monkeypatch.setenv("CODEX_INDEXD_STATE_DIR", str(tmp_path / "state"))


def events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


def test_a_failing_recovery_logs_one_error_per_episode(tmp_path: Path) -> None:
    root = tmp_path / "home"
    root.mkdir()
    home = CodexHome(root)
    home.history.write_bytes(OLD)
    os.chmod(home.history, 0o600)
    targets = Targets.for_home(home)
    leave_journal(home, targets)
    real = tmp_path / "elsewhere.jsonl"
    os.replace(home.history, real)
    home.history.symlink_to(real)  # not a target we write through: recovery must fail
    journals = LeftJournals(home, targets)

    with capture_logs() as logs:
        assert [journals.recover() for _ in range(4)] == [False] * 4
    failed = events(logs, "journal.recovery_failed")
    assert [entry["log_level"] for entry in failed] == ["error", "debug", "debug", "debug"]
    assert failed[0]["error"] == "UnsafeTarget"
    assert journals.failing and journals.left()

    home.history.unlink()
    os.replace(real, home.history)
    with capture_logs() as logs:
        assert journals.recover()
        assert not journals.recover()  # nothing left: nothing run, nothing logged
    assert len(events(logs, "journal.recovered_while_running")) == 1
    assert not events(logs, "journal.recovery_failed")
    assert not journals.failing and not journals.left()
    assert home.history.read_bytes() == OLD  # rolled back: the killed write wrote nothing


def test_the_start_recovery_is_quiet_when_nothing_is_left(tmp_path: Path) -> None:
    root = tmp_path / "home"
    root.mkdir()
    home = CodexHome(root)
    journals = LeftJournals(home, Targets.for_home(home))
    with capture_logs() as logs:
        assert journals.recover(only_if_left=False)
    assert logs == []
