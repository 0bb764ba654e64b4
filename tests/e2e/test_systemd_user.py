"""The rendered unit under a REAL ``systemd --user`` manager (root only).

Recipe: ``unshare --mount`` gives the manager a private mount namespace in which a tmpfs
covers ``/run/systemd`` and ``/run/systemd/system`` exists, so ``systemctl`` believes the
machine was booted with systemd without touching the host's ``/run``. The manager runs in
its own cgroup (``codex-indexd-e2e-*``) with a private ``XDG_RUNTIME_DIR``; every command
(``systemctl --user``, and ``codex-indexd service install`` itself) enters that namespace
with ``nsenter --mount``. HOME and XDG_CONFIG_HOME point into a temporary directory.

1. Readiness: a stand-in ``codex_indexd`` package (put first on the manager's PYTHONPATH)
   holds back READY=1 until a gate file appears; the unit must stay ``activating`` and
   ``install`` must wait until then.
2. Lifecycle with the real ``python -m codex_indexd run``: install, ``active (running)``,
   ``kill -9`` gives a restart with a new PID, re-install restarts, stop is clean (exit 0),
   the daemon's JSON log is readable by ``codex-indexd logs``, uninstall leaves no file.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
UNIT = "codex-indexd.service"
TOOLS = ("unshare", "nsenter", "systemctl", "mount")


def _systemd_binary() -> str | None:
    for candidate in (shutil.which("systemd"), "/lib/systemd/systemd", "/usr/lib/systemd/systemd"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _skip_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "needs Linux"
    if os.geteuid() != 0:
        return "needs root (private mount namespace for a throwaway systemd --user manager)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if _systemd_binary() is None:
        missing.append("systemd")
    return f"missing: {', '.join(missing)}" if missing else None


pytestmark.append(pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason())))


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll *check* until it returns something truthy; fail after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def _importable(module: str, env: Mapping[str, str]) -> bool:
    probe = [sys.executable, "-P", "-c", f"import {module}"]
    return subprocess.run(probe, env=dict(env), cwd="/", capture_output=True).returncode == 0


def source_pythonpath(tmp: Path) -> str:
    """PYTHONPATH that maps both import packages onto this checkout (package-dir mapping)."""
    shim = tmp / "source-shim"
    shim.mkdir(exist_ok=True)
    for name, folder in (("codex_indexd", "daemon"), ("codex_indexd_service", "service")):
        link = shim / name
        if not link.exists():
            link.symlink_to(REPO / folder)
    return str(shim)


class UserManager:
    """A throwaway ``systemd --user`` in a private mount namespace and its own cgroup."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.runtime = root / "runtime"
        self.home.mkdir()
        self.runtime.mkdir(mode=0o700)
        self.log = root / "manager.log"
        self.cgroup = f"codex-indexd-e2e-{uuid.uuid4().hex[:8]}"
        self.env = {
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_RUNTIME_DIR": str(self.runtime),
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path={self.runtime}/bus",
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "SYSTEMD_PAGER": "",
            "SYSTEMD_COLORS": "0",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def _cgroup_dirs(self) -> list[Path]:
        base = Path("/sys/fs/cgroup")
        roots = [base / "systemd", base / "unified"] if (base / "systemd").is_dir() else [base]
        return [root / self.cgroup for root in roots if (root / "cgroup.procs").exists()]

    def start(self) -> None:
        """Start the manager; return once ``systemctl --user`` answers."""
        moves = "".join(f'mkdir -p "{d}" && echo $$ > "{d}/cgroup.procs" || exit 97\n'
                        for d in self._cgroup_dirs())
        script = (
            f"{moves}"
            "mount -t tmpfs -o mode=0755 tmpfs /run/systemd || exit 98\n"
            "mkdir /run/systemd/system || exit 99\n"
            f"exec {_systemd_binary()} --user\n"
        )
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"systemd --user exited {self.proc.returncode}: {self.log.read_text()}")
            if not (self.runtime / "systemd" / "private").exists():
                return False
            state = self.systemctl("is-system-running", check=False).stdout.strip()
            return state in ("running", "degraded")

        wait_for("systemd --user to start", ready)

    def run(self, *argv: str, check: bool = True, timeout: float = 120,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run *argv* inside the manager's mount namespace."""
        assert self.proc is not None
        done = subprocess.run(
            ["nsenter", f"--target={self.proc.pid}", "--mount", "--", *argv],
            env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout,
            cwd="/",
        )
        if check and done.returncode != 0:
            pytest.fail(f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def popen(self, *argv: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        """Start *argv* inside the namespace without waiting."""
        assert self.proc is not None
        return subprocess.Popen(
            ["nsenter", f"--target={self.proc.pid}", "--mount", "--", *argv],
            env={**self.env, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd="/",
        )

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("systemctl", "--user", "--no-pager", *args, check=check)

    def show(self, *props: str) -> dict[str, str]:
        out = self.systemctl("show", UNIT, "--property=" + ",".join(props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def state(self) -> tuple[str, str]:
        props = self.show("ActiveState", "SubState")
        return props["ActiveState"], props["SubState"]

    def stop(self) -> None:
        """Stop every unit and the manager, then remove its cgroups."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.systemctl("exit", check=False)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        for top in self._cgroup_dirs():
            self._remove_cgroup(top)

    @staticmethod
    def _remove_cgroup(top: Path) -> None:
        if not top.is_dir():
            return
        for directory in sorted((p for p in top.rglob("*") if p.is_dir()), reverse=True):
            directory.rmdir()
        top.rmdir()


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[UserManager]:
    user_manager = UserManager(tmp_path)
    user_manager.start()
    try:
        yield user_manager
    finally:
        user_manager.stop()


def service_cli(manager: UserManager, tmp: Path, *args: str) -> list[str]:
    """argv for ``codex-indexd service …`` with this interpreter."""
    return [sys.executable, "-m", "codex_indexd_service", *args]


def cli_env(manager: UserManager, tmp: Path) -> dict[str, str]:
    """Environment for running this checkout's CLI inside the namespace."""
    env = {**os.environ, **manager.env}
    if not _importable("codex_indexd_service", env):
        env["PYTHONPATH"] = source_pythonpath(tmp)
    return env


STAND_IN = '''
"""Stand-in for `python -m codex_indexd run`: READY=1 only once the gate file exists."""
import json, os, signal, socket, sys, time
from pathlib import Path

state = Path(os.environ["E2E_STATE"])

def notify(message):
    address = os.environ.get("NOTIFY_SOCKET", "")
    address = "\\0" + address[1:] if address.startswith("@") else address
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(message.encode())

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
keys = ("CODEX_HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME", "PYTHONUNBUFFERED", "NOTIFY_SOCKET")
record = {"argv": sys.argv[1:], "pid": os.getpid(), "env": {k: os.environ.get(k) for k in keys}}
(state / f"started-{os.getpid()}.json").write_text(json.dumps(record))
while not (state / "gate").exists():
    time.sleep(0.01)
notify("READY=1\\nSTATUS=stand-in ready")
interval = int(os.environ.get("WATCHDOG_USEC", "0")) / 2e6 or 1.0
while True:
    time.sleep(interval)
    notify("WATCHDOG=1")
'''


def test_unit_is_activating_until_ready(manager: UserManager, tmp_path: Path) -> None:
    stand_in, state = tmp_path / "stand-in", tmp_path / "state"
    (stand_in / "codex_indexd").mkdir(parents=True)
    (stand_in / "codex_indexd" / "__init__.py").write_text("")
    (stand_in / "codex_indexd" / "__main__.py").write_text(textwrap.dedent(STAND_IN))
    state.mkdir()
    codex_home = tmp_path / "codex home 100%"
    codex_home.mkdir()
    manager.systemctl("set-environment", f"PYTHONPATH={stand_in}", f"E2E_STATE={state}")

    env = cli_env(manager, tmp_path)
    install = manager.popen(*service_cli(manager, tmp_path, "install", "--codex-home",
                                         str(codex_home)), env=env)
    try:
        started = wait_for("the stand-in to start", lambda: list(state.glob("started-*.json")))
        record = json.loads(started[0].read_text())
        assert manager.state() == ("activating", "start")
        assert install.poll() is None, "install returned before READY=1"
        assert record["argv"] == ["run", "--codex-home", str(codex_home)]
        assert record["env"]["CODEX_HOME"] == str(codex_home)
        assert record["env"]["XDG_STATE_HOME"] == str(manager.home / ".local" / "state")
        assert record["env"]["NOTIFY_SOCKET"]

        (state / "gate").touch()
        wait_for("active (running)", lambda: manager.state() == ("active", "running"))
        out, err = install.communicate(timeout=60)
    finally:
        if install.poll() is None:
            install.kill()
    assert install.returncode == 0, err
    props = manager.show("MainPID", "StatusText", "NotifyAccess", "WatchdogUSec")
    assert props["MainPID"] == str(record["pid"])
    assert props["StatusText"] == "stand-in ready"
    assert props["NotifyAccess"] == "main"
    assert "active (running)" in manager.systemctl("status", UNIT, check=False).stdout

    manager.run(*service_cli(manager, tmp_path, "uninstall"), env=env)
    assert manager.show("LoadState")["LoadState"] == "not-found"


def test_real_daemon_lifecycle(manager: UserManager, tmp_path: Path) -> None:
    codex_home = tmp_path / "codex home"
    codex_home.mkdir()
    env = cli_env(manager, tmp_path)
    if not _importable("codex_indexd", {**os.environ, "PYTHONPATH": ""}):
        # Not installed into this interpreter: let the user manager find the checkout.
        manager.systemctl("set-environment", f"PYTHONPATH={source_pythonpath(tmp_path)}")
    unit_dir = manager.home / ".config" / "systemd" / "user"

    # Install: blocks until READY=1, then the unit is active (running) and enabled.
    manager.run(*service_cli(manager, tmp_path, "install", "--codex-home", str(codex_home)),
                env=env)
    assert manager.state() == ("active", "running")
    assert (unit_dir / "default.target.wants" / UNIT).is_symlink()
    first_pid = int(manager.show("MainPID")["MainPID"])
    cmdline = Path(f"/proc/{first_pid}/cmdline").read_bytes().split(b"\0")[:-1]
    assert [arg.decode() for arg in cmdline] == [
        sys.executable, "-P", "-m", "codex_indexd", "run", "--codex-home", str(codex_home)]

    # A crash (SIGKILL) is restarted by Restart=on-failure, with a new main PID.
    os.kill(first_pid, signal.SIGKILL)

    def restarted() -> int:
        props = manager.show("MainPID", "ActiveState", "SubState")
        pid = int(props["MainPID"])
        running = (props["ActiveState"], props["SubState"]) == ("active", "running")
        return pid if running and pid not in (0, first_pid) else 0

    second_pid = wait_for("a restart after kill -9", restarted, timeout=60)
    assert manager.show("NRestarts")["NRestarts"] == "1"

    # Re-install: same file, the daemon is restarted.
    unit_text = (unit_dir / UNIT).read_text()
    manager.run(*service_cli(manager, tmp_path, "install", "--codex-home", str(codex_home)),
                env=env)
    assert (unit_dir / UNIT).read_text() == unit_text
    assert manager.state() == ("active", "running")
    assert int(manager.show("MainPID")["MainPID"]) not in (first_pid, second_pid)

    # A clean stop: SIGTERM, exit 0, inactive (not failed).
    manager.systemctl("stop", UNIT)
    props = manager.show("ActiveState", "Result", "ExecMainStatus")
    assert (props["ActiveState"], props["Result"], props["ExecMainStatus"]) == (
        "inactive", "success", "0")

    # The daemon's JSON log is where `codex-indexd logs` looks for it, and `logs` points at
    # the journal while the unit is installed.
    log_file = manager.home / ".local" / "state" / "codex-indexd" / "log" / "codex-indexd.log"
    assert log_file.exists()
    logs_main = "import sys; from codex_indexd_service.logs import main; sys.exit(main(sys.argv[1:]))"
    shown = manager.run(sys.executable, "-c", logs_main, "--json", env=env)
    lines = shown.stdout.splitlines()
    assert lines and all(isinstance(json.loads(line), dict) for line in lines)
    assert "journalctl --user-unit codex-indexd.service" in shown.stderr

    # Uninstall: nothing left behind, the manager forgot the unit.
    manager.run(*service_cli(manager, tmp_path, "uninstall"), env=env)
    assert sorted(p.name for p in unit_dir.rglob("*") if not p.is_dir()) == []
    assert manager.show("LoadState")["LoadState"] == "not-found"
