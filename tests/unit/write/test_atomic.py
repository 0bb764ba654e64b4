"""Our own files are replaced atomically through an exclusive, unpredictable temp name in a
directory only we can enter; nothing planted at a predictable name is written through."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from codex_indexd.store import heal_attempts
from codex_indexd.store import status_file as status
from codex_indexd.store.dirs import UnsafeOwnDir
from codex_indexd.store.files import OurFiles
from codex_indexd.write.atomic import write_atomic


@pytest.fixture(autouse=True)
def our_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEX_INDEXD_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CODEX_INDEXD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CODEX_INDEXD_LOG_DIR", str(tmp_path / "log"))


def test_write_atomic_creates_0700_dir_and_0600_file_from_chunks(tmp_path: Path) -> None:
    target = tmp_path / "fresh" / "deeper" / "file.json"
    old = os.umask(0)
    try:
        write_atomic(target, iter([b"a" * (1 << 20), b"b", b"c"]))
    finally:
        os.umask(old)
    assert target.read_bytes() == b"a" * (1 << 20) + b"bc"
    assert target.stat().st_mode & 0o777 == 0o600
    assert target.parent.stat().st_mode & 0o777 == 0o700
    assert os.listdir(target.parent) == ["file.json"]  # no temp file left


def test_planted_links_at_predictable_names_are_not_written_through(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    ours = OurFiles.for_home(home)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    for path in (ours.status, ours.heal_attempts, ours.checkpoint):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name in (path.name + ".tmp", f".{path.name}.tmp", path.name):
            (path.parent / name).unlink(missing_ok=True)
            (path.parent / name).symlink_to(victim)
    status.write_status(home, {"ok": True})
    heal_attempts.save_attempts(home, {"x": 1})
    write_atomic(ours.checkpoint, b"{}\n")
    assert victim.read_bytes() == b"precious\n"
    assert status.read_status(home) == {"ok": True}
    assert heal_attempts.load_attempts(home) == {"x": 1}
    assert not ours.status.is_symlink() and ours.status.stat().st_mode & 0o777 == 0o600


def test_a_directory_others_can_enter_is_refused(tmp_path: Path) -> None:
    wide = tmp_path / "wide"
    wide.mkdir()
    os.chmod(wide, 0o777)
    with pytest.raises(UnsafeOwnDir, match="mode 777"):
        write_atomic(wide / "f", b"x")
    assert os.listdir(wide) == []


def test_a_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    directory = tmp_path / "d"

    def chunks() -> list[bytes]:
        raise OSError(28, "No space left on device")

    directory.mkdir(mode=0o700)
    with pytest.raises(OSError, match="No space"):
        write_atomic(directory / "f", (c for c in chunks()))
    assert os.listdir(directory) == []


def test_journals_go_through_write_atomic_and_a_torn_temp_counts_as_left(tmp_path: Path) -> None:
    """A journal is written through the one helper (0600, 0700 directory); the temp file a
    crash leaves before the rename counts as a journal left, and removing it clears both."""
    from codex_indexd.write.atomic import temp_files
    from codex_indexd.write.journal import (
        JournalRecord,
        journal_left,
        read_journal,
        remove_journal,
        write_journal,
    )

    journal = OurFiles.for_home(tmp_path / "home").history_journal
    assert not journal_left(journal)
    record = JournalRecord("/h/history.jsonl", 1, 2, 3, b"old", b"new")
    write_journal(journal, record)
    assert read_journal(journal) == record
    assert journal.stat().st_mode & 0o777 == 0o600
    assert journal.parent.stat().st_mode & 0o777 == 0o700
    assert temp_files(journal) == []
    remove_journal(journal)
    torn = journal.parent / f".{journal.name}.0123456789abcdef.tmp"
    torn.write_bytes(b"half")
    assert temp_files(journal) == [torn] and journal_left(journal)
    remove_journal(journal)
    assert not torn.exists() and not journal_left(journal)


def test_before_sync_runs_once_everything_is_written(tmp_path: Path) -> None:
    target = tmp_path / "d" / "f"
    seen: list[bytes] = []

    def look() -> None:
        (temp,) = list(target.parent.glob(".f.*.tmp"))
        seen.append(temp.read_bytes())

    write_atomic(target, [b"ab", b"cd"], before_sync=look)
    assert seen == [b"abcd"] and target.read_bytes() == b"abcd"
