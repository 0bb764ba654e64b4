"""Our state directories pre-created by another user (0777, symlinks at our predictable temp
names) are refused at start with exit 2; our own too-wide directories are tightened; a home
reached through a symlink cannot get a second daemon."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from codex_indexd.store.files import OurFiles
from codex_indexd.write.locks import InstanceLock
from tests.support.daemons import ROOT
from tests.support.homes import build_home, new_thread, read_jsonl

OTHER_UID = 4321
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another uid")


def as_other_user(action: Callable[[], None]) -> None:
    """Run `action` in a forked child under another uid; fail when it fails."""
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.setgid(OTHER_UID)
            os.setuid(OTHER_UID)
            os.umask(0)
            action()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def run_once(home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codex_indexd", "run", "--once", "--codex-home", str(home)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def plant(ours: OurFiles, victim: Path) -> Callable[[], None]:
    def action() -> None:
        for directory in (ours.state, ours.status.parent, ours.history_journal.parent):
            directory.mkdir(mode=0o777, exist_ok=True)
        for path in (ours.status, ours.history_journal, ours.index_journal):
            for name in (path.name + ".tmp", f".{path.name}.tmp"):
                (path.parent / name).symlink_to(victim)

    return action


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A base directory the other uid can reach (pytest's own temp dir is 0700), 0777 so it
    can create our state directory there; our dirs are pointed into it."""
    base = Path(tempfile.mkdtemp(prefix="codex-indexd-uid-"))
    os.chmod(base, 0o777)
    for name in ("STATE", "CACHE", "LOG"):
        monkeypatch.setenv(f"CODEX_INDEXD_{name}_DIR", str(base / name.lower()))
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _setup(tmp_path: Path, base: Path) -> tuple[Path, OurFiles, Path]:
    home = build_home(tmp_path / "home", [new_thread(0, turns=1, paginated=True)], db=False)
    victim = base / "victim.txt"
    victim.write_bytes(b"a file of another user\n")
    os.chmod(victim, 0o666)
    return home, OurFiles.for_home(home), victim


@root_only
def test_state_dirs_of_another_user_are_refused_and_nothing_is_written(
    tmp_path: Path, shared: Path
) -> None:
    home, ours, victim = _setup(tmp_path, shared)
    as_other_user(plant(ours, victim))
    done = run_once(home)
    assert done.returncode == 2, done.stderr
    assert f"{ours.state} belongs to uid {OTHER_UID}" in done.stderr
    assert "Traceback" not in done.stderr
    assert victim.read_bytes() == b"a file of another user\n"
    assert not ours.status.exists()


@root_only
def test_our_own_wide_dir_with_planted_links_is_refused(tmp_path: Path, shared: Path) -> None:
    home, ours, victim = _setup(tmp_path, shared)
    for directory in (ours.state, ours.status.parent, ours.history_journal.parent):
        directory.mkdir(mode=0o700)
        os.chmod(directory, 0o777)
    as_other_user(lambda: (ours.status.parent / f"{ours.status.name}.tmp").symlink_to(victim))
    done = run_once(home)
    assert done.returncode == 2, done.stderr
    assert f"belongs to uid {OTHER_UID}" in done.stderr and "remove it" in done.stderr
    assert victim.read_bytes() == b"a file of another user\n"


def test_our_own_wide_dirs_are_tightened_and_logged(tmp_path: Path, private_dirs: Path) -> None:
    home = build_home(tmp_path / "home", [new_thread(0, turns=1, paginated=True)], db=False)
    ours = OurFiles.for_home(home)
    for directory in (ours.state, ours.status.parent, ours.cache):
        directory.mkdir(parents=True, mode=0o700)
        os.chmod(directory, 0o777)
    done = run_once(home)
    assert done.returncode == 0, done.stderr
    assert "own_dir.mode_fixed" in done.stderr and "had mode 777; now 700" in done.stderr
    for directory in (ours.state, ours.status.parent, ours.cache, ours.logs):
        assert directory.stat().st_mode & 0o777 == 0o700
    assert ours.status.stat().st_mode & 0o777 == 0o600
    assert read_jsonl(home / "session_index.jsonl")


def test_a_symlinked_home_path_does_not_start_a_second_daemon(tmp_path: Path) -> None:
    home = build_home(tmp_path / "home", [new_thread(0, turns=1, paginated=True)], db=False)
    link = tmp_path / "link"
    link.symlink_to(home)
    with InstanceLock(OurFiles.for_home(home).instance_lock):  # a daemon on the real path
        done = run_once(link)
    assert done.returncode == 75, done.stderr
    assert "already running" in done.stderr
