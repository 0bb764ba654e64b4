"""A daemon's homes are locked all or none, and let go of one by one."""

from __future__ import annotations

from pathlib import Path

import pytest

from codex_indexd.daemon.home_locks import HomeLocks
from codex_indexd.store.files import OurFiles
from codex_indexd.write.locks import AlreadyRunning, InstanceLock, holder_pid


@pytest.fixture(autouse=True)
def our_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEX_INDEXD_STATE_DIR", str(tmp_path / "state"))


def test_all_or_none(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    other = InstanceLock(OurFiles.for_home(b).instance_lock)
    other.acquire()
    locks = HomeLocks()
    try:
        with pytest.raises(AlreadyRunning):
            locks.acquire_all([a, b])
        assert holder_pid(OurFiles.for_home(a).instance_lock) is None  # a was let go again
    finally:
        other.release()
    locks.acquire_all([a, b])
    assert holder_pid(OurFiles.for_home(a).instance_lock) is not None
    locks.release(str(a.resolve()))
    assert holder_pid(OurFiles.for_home(a).instance_lock) is None
    assert holder_pid(OurFiles.for_home(b).instance_lock) is not None
    locks.release_all()
    assert holder_pid(OurFiles.for_home(b).instance_lock) is None
