"""The depth-capped walks behind the observers: iterative, stopping at MAX_TREE_DEPTH."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from codex_indexd.codex import home as home_mod
from codex_indexd.codex.home import MAX_TREE_DEPTH
from codex_indexd.watch.capped import capped_listdir, walk_dirs


def chain(top: Path, levels: int) -> Path:
    path = top.joinpath(*["d"] * levels)
    path.mkdir(parents=True)
    return path


@pytest.fixture(autouse=True)
def fresh_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(home_mod, "_reported_too_deep", set())


def test_walk_dirs_stops_at_the_limit_and_names_the_first_skipped_directory(
    tmp_path: Path,
) -> None:
    chain(tmp_path, MAX_TREE_DEPTH + 5)
    (tmp_path / "2026").mkdir()
    (tmp_path / "2026" / "rollout-x.jsonl").write_text("")
    with capture_logs() as logs:
        walked = list(walk_dirs(os.fsencode(tmp_path), 0, follow=False))
    depths = [len(Path(os.fsdecode(d)).relative_to(tmp_path).parts) for d, _, _ in walked]
    assert max(depths) == MAX_TREE_DEPTH
    assert (os.fsencode(tmp_path / "2026"), [], [b"rollout-x.jsonl"]) in walked
    deep = [e for e in logs if e["event"] == "rollout.tree_too_deep"]
    assert [e["path"] for e in deep] == [str(tmp_path.joinpath(*["d"] * (MAX_TREE_DEPTH + 1)))]


def test_walk_dirs_does_not_enter_linked_directories(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "loop").symlink_to(tmp_path)
    walked = {d: names for d, names, _ in walk_dirs(os.fsencode(tmp_path), 0, follow=False)}
    assert set(walked) == {os.fsencode(tmp_path), os.fsencode(tmp_path / "real")}
    assert sorted(walked[os.fsencode(tmp_path)]) == [b"loop", b"real"]


def test_capped_listdir_lists_nothing_below_the_limit(tmp_path: Path) -> None:
    deepest = chain(tmp_path, MAX_TREE_DEPTH + 1)
    listdir = capped_listdir(str(tmp_path))
    with capture_logs() as logs:
        assert [e.name for e in listdir(str(deepest.parent))] == ["d"]
        assert list(listdir(str(deepest))) == []
        assert list(listdir(str(deepest))) == []
    assert [e["path"] for e in logs if e["event"] == "rollout.tree_too_deep"] == [str(deepest)]


def test_the_rollout_walk_is_capped_and_warns_once(tmp_path: Path) -> None:
    deepest = chain(tmp_path, MAX_TREE_DEPTH + 3)
    kept = tmp_path.joinpath(*["d"] * MAX_TREE_DEPTH) / "rollout-a.jsonl"
    kept.write_text("")
    (deepest / "rollout-b.jsonl").write_text("")
    with capture_logs() as logs:
        for _ in range(2):
            assert list(home_mod.iter_rollout_paths(tmp_path)) == [kept]
    deep = [e["path"] for e in logs if e["event"] == "rollout.tree_too_deep"]
    assert deep == [str(tmp_path.joinpath(*["d"] * (MAX_TREE_DEPTH + 1)))]
