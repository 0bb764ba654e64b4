"""One object names every file of ours per home, from the env overrides; the key (and so the
single-instance lock) follows the home's real path; our directories are checked at start."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from codex_indexd import engine
from codex_indexd.codex.home import CodexHome
from codex_indexd.store.dirs import UnsafeOwnDir, secure_dir, secure_own_dirs
from codex_indexd.store.files import OurFiles, home_key, log_file


@pytest.fixture(autouse=True)
def our_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEX_INDEXD_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CODEX_INDEXD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CODEX_INDEXD_LOG_DIR", str(tmp_path / "log"))


def test_every_path_of_ours_comes_from_one_object(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    ours = OurFiles.for_home(home)
    state, cache, log = tmp_path / "state", tmp_path / "cache", tmp_path / "log"
    for path in (ours.status, ours.instance_lock, ours.history_journal, ours.index_journal):
        assert path.is_relative_to(state) and ours.key in path.name
    assert ours.backups == state / "backups" / ours.key
    assert ours.heal_attempts.is_relative_to(state)
    assert ours.checkpoint.is_relative_to(cache)
    assert ours.log_file == log / "codex-indexd.log"
    assert log_file() == ours.log_file
    targets = engine.Targets.for_home(CodexHome.at(home))
    assert (targets.backup_dir, targets.journal, targets.index_journal) == (
        ours.backups,
        ours.history_journal,
        ours.index_journal,
    )


def test_a_symlinked_home_has_the_same_key_and_lock(tmp_path: Path) -> None:
    home = tmp_path / "real-home"
    home.mkdir()
    link = tmp_path / "link-to-home"
    link.symlink_to(home)
    assert home_key(link) == home_key(home)
    assert OurFiles.for_home(link).instance_lock == OurFiles.for_home(home).instance_lock
    other = tmp_path / "other-home"
    other.mkdir()
    assert home_key(other) != home_key(home)


def test_secure_own_dirs_creates_0700_and_tightens_our_own_wide_dirs(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        (tmp_path / "state").mkdir(mode=0o777)
        (tmp_path / "state" / "status").mkdir(mode=0o755)
        fixed = secure_own_dirs()
    finally:
        os.umask(old)
    assert sorted(fixed) == sorted(
        [
            f"{tmp_path / 'state'} had mode 777; now 700",
            f"{tmp_path / 'state/status'} had mode 755; now 700",
        ]
    )
    for sub in ("state", "state/status", "state/locks", "state/journal", "cache", "log"):
        assert (tmp_path / sub).stat().st_mode & 0o777 == 0o700, sub
    assert secure_own_dirs() == []


def test_a_file_where_our_dir_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("not a dir")
    with pytest.raises(OSError):
        secure_dir(tmp_path / "cache")


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_foreign_dirs_and_foreign_entries_are_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "state"
    foreign.mkdir(mode=0o777)
    os.chown(foreign, 4321, 4321)
    with pytest.raises(UnsafeOwnDir, match="belongs to uid 4321"):
        secure_own_dirs()
    os.chown(foreign, os.getuid(), os.getgid())
    os.chmod(foreign, 0o777)
    planted = foreign / "status"
    planted.symlink_to(tmp_path / "elsewhere")
    os.chown(planted, 4321, 4321, follow_symlinks=False)
    with pytest.raises(UnsafeOwnDir, match="put into"):
        secure_own_dirs()
