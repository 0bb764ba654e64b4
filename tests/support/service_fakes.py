"""A fake OS-command runner and an isolated HOME, for tests of the service commands and of
the commands that ask the service manager (`logs`' journal hint)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from codex_indexd_service.command_runner import Result

Responder = Callable[[tuple[str, ...]], Result | None]


class FakeRunner:
    """Records every command; answers from *responders* (first non-None wins), else exit 0.

    It also plays the part of ``systemctl --user enable/disable`` on the filesystem (the
    ``default.target.wants`` symlink), so "uninstall leaves nothing behind" is meaningful.
    """

    def __init__(self, unit_dir: Path, tools: Sequence[str] = ()) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.responders: list[Responder] = []
        self.unit_dir = unit_dir
        self.tools = set(tools)

    def answer(self, prefix: Sequence[str], result: Result) -> None:
        """Answer commands starting with *prefix* with *result*."""
        wanted = tuple(prefix)
        self.responders.append(lambda argv: result if argv[: len(wanted)] == wanted else None)

    def run(self, argv: Sequence[str]) -> Result:
        call = tuple(argv)
        self.calls.append(call)
        for responder in reversed(self.responders):
            answer = responder(call)
            if answer is not None:
                return answer
        self._play_systemctl(call)
        return Result(0)

    def which(self, name: str) -> str | None:
        return f"/usr/bin/{name}" if name in self.tools else None

    def _play_systemctl(self, call: tuple[str, ...]) -> None:
        if call[:2] != ("systemctl", "--user") or len(call) < 4:
            return
        unit = call[-1]
        link = self.unit_dir / "default.target.wants" / unit
        if call[2] == "enable":
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                link.symlink_to(self.unit_dir / unit)
        elif call[2] == "disable":
            link.unlink(missing_ok=True)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME with no XDG overrides and a Codex home at ~/.codex."""
    home = tmp_path / "home"
    (home / ".codex").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    for key in (
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_STATE_HOME",
        "XDG_CACHE_HOME",
        "CODEX_HOME",
        "INVOCATION_ID",
        "NOTIFY_SOCKET",
        "XPC_SERVICE_NAME",
    ):
        monkeypatch.delenv(key, raising=False)
    return home


@pytest.fixture
def runner(home: Path) -> FakeRunner:
    """A fake runner whose systemctl plays on ``~/.config/systemd/user``."""
    return FakeRunner(home / ".config" / "systemd" / "user")
