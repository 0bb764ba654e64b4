"""The single-instance locks of the homes one daemon serves."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from codex_indexd.codex.home import CodexHome
from codex_indexd.store.files import OurFiles
from codex_indexd.write.locks import InstanceLock


class HomeLocks:
    """One held `InstanceLock` per served home, by the home's key (its real root path)."""

    def __init__(self) -> None:
        self._by_home: dict[str, InstanceLock] = {}

    def acquire(self, root: Path) -> str:
        """Take the lock of the home at `root`; return its key. Raises AlreadyRunning."""
        key = str(CodexHome.at(root).root)
        lock = InstanceLock(OurFiles.for_home(root).instance_lock)
        lock.acquire()
        self._by_home[key] = lock
        return key

    def acquire_all(self, roots: Iterable[Path]) -> None:
        """Take the lock of every home, or of none. Raises AlreadyRunning."""
        try:
            for root in roots:
                self.acquire(root)
        except BaseException:
            self.release_all()
            raise

    def release(self, key: str) -> None:
        """Let go of the lock of the home with `key`, if held."""
        lock = self._by_home.pop(key, None)
        if lock is not None:
            lock.release()

    def release_all(self) -> None:
        """Let go of every lock held."""
        for key in list(self._by_home):
            self.release(key)
