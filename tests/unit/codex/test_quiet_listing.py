"""The rollout listing `repair` begins before logging is set up (`quiet`): the same entries
as the ordinary listing where that one logs nothing, an OSError where it would log."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from codex_indexd.codex import home as home_mod
from codex_indexd.codex.home import CodexHome, iter_rollout_entries
from codex_indexd.codex.scan_queue import start_scan
from tests.support.homes import build_home, new_thread


def _paths(root: Path, *, quiet: bool) -> list[str]:
    return [e.path for e in iter_rollout_entries(root, quiet=quiet)]


def test_a_quiet_listing_lists_what_the_ordinary_one_does(tmp_path: Path) -> None:
    home = CodexHome(build_home(tmp_path / "h", [new_thread(i) for i in range(4)]))
    (home.sessions / "2026" / "notes.txt").write_text("not a rollout")
    with capture_logs() as logs:
        assert _paths(home.sessions, quiet=True) == _paths(home.sessions, quiet=False)
        assert len(_paths(home.sessions, quiet=True)) == 4
        assert _paths(tmp_path / "missing", quiet=True) == []
    assert logs == []


def test_a_quiet_listing_raises_where_the_ordinary_one_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = CodexHome(build_home(tmp_path / "h", [new_thread(0)]))
    monkeypatch.setattr(home_mod, "MAX_TREE_DEPTH", 1)  # sessions/2026/11 is too deep
    with capture_logs() as logs, pytest.raises(OSError, match="too deep"):
        start_scan(home, quiet=True)
    assert logs == []
    with capture_logs() as logs:
        assert start_scan(home).found == []
    assert [e["event"] for e in logs] == ["rollout.tree_too_deep"]
    monkeypatch.setattr(home_mod, "MAX_TREE_DEPTH", 64)
    (tmp_path / "file").write_text("")
    blocked = CodexHome(tmp_path / "file")  # sessions/ under a file cannot be listed
    with capture_logs() as logs, pytest.raises(NotADirectoryError):
        start_scan(blocked, quiet=True)
    assert logs == []
    with capture_logs() as logs:
        assert start_scan(blocked).found == []
    assert [e["event"] for e in logs] == ["rollout.dir_unreadable"] * 2
