"""The rendered unit under a REAL ``systemd --user`` manager (needs root to set it up).

Recipe (see :class:`UserManager`): ``unshare --mount`` gives a throwaway user manager a
private mount namespace, in which a tmpfs covers ``/run/systemd`` and
``/run/systemd/system`` exists, so ``systemctl`` believes the machine booted with systemd
without touching the host's ``/run``. Before ``exec systemd --user`` the shell moves itself
into a dedicated cgroup (``codex-indexd-e2e-*``): a manager started in the root cgroup
would move every process of the machine into its ``init.scope``. The manager gets a
private ``XDG_RUNTIME_DIR`` and a temporary HOME; every command (``systemctl --user`` and
``codex-indexd service install`` itself) enters the namespace with ``nsenter --mount``.
For the unprivileged variant the manager and the commands run as ``nobody`` via
``setpriv`` and the cgroup is delegated to it (chown), as logind would do.

1. Readiness: a stand-in ``codex_indexd`` package (first on the manager's PYTHONPATH)
   holds back READY=1 until a gate file appears; the unit must stay ``activating`` and
   ``install`` must wait until then.
2. Lifecycle with the real ``python -m codex_indexd run``: install, ``active (running)``,
   ``kill -9`` gives a restart with a new PID, re-install restarts, stop is clean (exit 0),
   the daemon's JSON log is readable by ``codex-indexd logs``, uninstall leaves no file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
UNIT = "codex-indexd.service"
TOOLS = ("unshare", "nsenter", "setpriv", "systemctl", "mount")
NOBODY = 65534
CGROUP = Path("/sys/fs/cgroup")


def _systemd_binary() -> str | None:
    for candidate in (shutil.which("systemd"), "/lib/systemd/systemd", "/usr/lib/systemd/systemd"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _cgroup_roots() -> list[Path]:
    """Hierarchies the manager tracks processes in: name=systemd (+ unified), or cgroup v2."""
    if (CGROUP / "systemd" / "cgroup.procs").exists():
        return [
            CGROUP / name
            for name in ("systemd", "unified")
            if (CGROUP / name / "cgroup.procs").exists()
        ]
    return [CGROUP] if (CGROUP / "cgroup.procs").exists() else []


def _skip_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "needs Linux"
    if os.geteuid() != 0:
        return "needs root (private mount namespace for a throwaway systemd --user manager)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if _systemd_binary() is None:
        missing.append("systemd")
    if missing:
        return f"missing: {', '.join(missing)}"
    if not _cgroup_roots():
        return "no writable cgroup hierarchy to give the manager a cgroup of its own"
    return None


SYSTEMD_WAIT_S = 30.0
"""How long a systemd step may take before the test fails."""

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason())),
]


def _as_user(uid: int) -> list[str]:
    if uid == 0:
        return []
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]


def _traversable(directory: Path, uid: int) -> bool:
    info = directory.stat()
    return bool(info.st_mode & 0o001 or (info.st_uid == uid and info.st_mode & 0o100))


def _blocked(path: Path, uid: int) -> Path | None:
    """The first directory above *path* that *uid* may not traverse (by mode bits)."""
    for parent in reversed(path.parents):
        if uid and not _traversable(parent, uid):
            return parent
    return None


def _interpreter_mounts(uid: int) -> str:
    """Shell lines that make the interpreter reachable by *uid* inside the namespace.

    A pyenv interpreter under a 0700 /root cannot be executed by another user; inside the
    private mount namespace a 0755 tmpfs replaces the blocked directory and only the
    interpreter's tree is bind-mounted back.
    """
    prefix = Path(os.path.realpath(sys.base_prefix))
    blocked = _blocked(prefix / "bin", uid)
    if blocked is None:
        return ""
    child = blocked / prefix.relative_to(blocked).parts[0]
    keep = "/run/systemd/e2e-interpreter"
    return (
        f'mkdir {keep} && mount --bind "{child}" {keep} && '
        f'mount -t tmpfs -o mode=0755 tmpfs "{blocked}" && mkdir -p "{child}" && '
        f'mount --bind {keep} "{child}" || exit 96\n'
    )


def _unreachable(uid: int) -> str | None:
    """Why *uid* could not run this interpreter and checkout, even after the mounts above."""
    prefix = Path(os.path.realpath(sys.base_prefix))
    blocked = _blocked(prefix / "bin", uid)
    for path in (REPO, Path(sys.prefix) / "bin", prefix / "bin"):
        for parent in [*reversed(path.parents), path]:
            hidden = blocked is not None and parent == blocked
            if not hidden and not _traversable(parent, uid):
                return f"uid {uid} cannot traverse {parent} (on the way to {path})"
    return None


def _importable(module: str, env: Mapping[str, str], uid: int = 0) -> bool:
    probe = [*_as_user(uid), sys.executable, "-P", "-c", f"import {module}"]
    done = subprocess.run(probe, env=dict(env), cwd="/", capture_output=True, check=False)
    return done.returncode == 0


class UserManager:
    """A throwaway ``systemd --user`` (as *uid*) in a private mount namespace and cgroup."""

    def __init__(self, root: Path, uid: int = 0) -> None:
        self.root, self.uid = root, uid
        self.home = root / "home"
        self.runtime = root / "runtime"
        self.home.mkdir()
        self.runtime.mkdir(mode=0o700)
        self.log = root / "manager.log"
        name = f"codex-indexd-e2e-{uuid.uuid4().hex[:8]}"  # the same path in every hierarchy
        self.cgroups = [base / name for base in _cgroup_roots()]
        self.env = {
            "HOME": str(self.home),
            "USER": "root" if uid == 0 else "nobody",
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_RUNTIME_DIR": str(self.runtime),
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path={self.runtime}/bus",
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "SYSTEMD_PAGER": "",
            "SYSTEMD_COLORS": "0",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the manager; return once ``systemctl --user`` answers ``running``."""
        for cgroup in self.cgroups:
            cgroup.mkdir()
            if self.uid:
                for path in (cgroup, *cgroup.iterdir()):
                    os.chown(path, self.uid, self.uid)
        if self.uid:
            for path in (self.root, self.home, self.runtime):
                os.chown(path, self.uid, self.uid)
        moves = "".join(
            f'echo $$ > "{cgroup}/cgroup.procs" || exit 97\n' for cgroup in self.cgroups
        )
        script = (
            f"{moves}"
            "mount -t tmpfs -o mode=0755 tmpfs /run/systemd || exit 98\n"
            "mkdir /run/systemd/system || exit 99\n"
            f"{_interpreter_mounts(self.uid)}"
            f"exec {' '.join(_as_user(self.uid))} {_systemd_binary()} --user\n"
        )
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"systemd --user exited {self.proc.returncode}: {self.log.read_text()}")
            if not (self.runtime / "systemd" / "private").exists():
                return False
            state = self.systemctl("is-system-running", check=False).stdout.strip()
            return state in ("running", "degraded")

        wait_for(ready, SYSTEMD_WAIT_S, "systemd --user to start")

    def _nsenter(self, argv: tuple[str, ...]) -> list[str]:
        assert self.proc is not None
        return ["nsenter", f"--target={self.proc.pid}", "--mount", "--", *_as_user(self.uid), *argv]

    def run(
        self,
        *argv: str,
        check: bool = True,
        timeout: float = 120,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run *argv* as the manager's user inside its mount namespace."""
        done = subprocess.run(
            self._nsenter(argv),
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/",
            check=False,
        )
        if check and done.returncode != 0:
            pytest.fail(f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def popen(self, *argv: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        """Start *argv* like :meth:`run`, without waiting."""
        return subprocess.Popen(
            self._nsenter(argv),
            env={**self.env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd="/",
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
        if self.proc is not None and self.proc.poll() is None:
            self.systemctl("exit", check=False)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        for cgroup in self.cgroups:
            _remove_cgroup(cgroup)


def _remove_cgroup(top: Path) -> None:
    """Kill whatever is left in *top* (normally nothing) and remove it, children first."""
    if not top.is_dir():
        return
    tree = [*sorted((p for p in top.rglob("*") if p.is_dir()), reverse=True), top]
    for directory in tree:
        for pid in (directory / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    for directory in tree:
        procs = directory / "cgroup.procs"
        wait_for(lambda: not procs.read_text().strip(), 10, f"{directory} to empty")  # noqa: B023
        directory.rmdir()


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A world-traversable temporary directory (pytest's own is 0700, closed to nobody)."""
    path = Path(tempfile.mkdtemp(prefix="codex-indexd-e2e-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def start_manager(root: Path, uid: int) -> UserManager:
    manager = UserManager(root, uid)
    try:
        manager.start()
    except BaseException:
        manager.stop()
        raise
    return manager


def source_pythonpath(root: Path) -> str:
    """PYTHONPATH with both source roots of this checkout (``root`` is unused: no shim needed)."""
    del root
    return os.pathsep.join(str(REPO / folder) for folder in ("daemon", "service"))


def cli_env(manager: UserManager) -> dict[str, str]:
    """Environment for running this checkout's service CLI inside the namespace."""
    env = {**os.environ, **manager.env}
    if not _importable("codex_indexd_service", env, manager.uid):
        env["PYTHONPATH"] = source_pythonpath(manager.root)
    return env


def service(*args: str) -> tuple[str, ...]:
    """argv of ``codex-indexd service …`` run by this interpreter."""
    return (sys.executable, "-m", "codex_indexd_service", *args)


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


def test_unit_is_activating_until_ready(workdir: Path) -> None:
    manager = start_manager(workdir, 0)
    try:
        _check_readiness(manager)
    finally:
        manager.stop()


def _check_readiness(manager: UserManager) -> None:
    stand_in, state = manager.root / "stand-in", manager.root / "state"
    (stand_in / "codex_indexd").mkdir(parents=True)
    (stand_in / "codex_indexd" / "__init__.py").write_text("")
    (stand_in / "codex_indexd" / "__main__.py").write_text(textwrap.dedent(STAND_IN))
    state.mkdir()
    codex_home = manager.root / "codex home 100%"  # quoting and specifier escaping, for real
    codex_home.mkdir()
    manager.systemctl("set-environment", f"PYTHONPATH={stand_in}", f"E2E_STATE={state}")

    install = manager.popen(
        *service("install", "--codex-home", str(codex_home)), env=cli_env(manager)
    )
    try:
        started = wait_for(
            lambda: list(state.glob("started-*.json")), SYSTEMD_WAIT_S, "the stand-in to start"
        )
        record = json.loads(started[0].read_text())
        assert manager.state() == ("activating", "start")
        assert install.poll() is None, "install returned before READY=1"
        assert record["argv"] == ["run", "--codex-home", str(codex_home)]
        assert record["env"]["CODEX_HOME"] == str(codex_home)
        assert record["env"]["XDG_STATE_HOME"] == str(manager.home / ".local" / "state")
        assert record["env"]["NOTIFY_SOCKET"]

        (state / "gate").touch()
        wait_for(
            lambda: manager.state() == ("active", "running"), SYSTEMD_WAIT_S, "active (running)"
        )
        _, err = install.communicate(timeout=60)
    finally:
        if install.poll() is None:
            install.kill()
            install.communicate()
    assert install.returncode == 0, err
    props = manager.show("MainPID", "StatusText", "NotifyAccess")
    assert props["MainPID"] == str(record["pid"])
    assert props["StatusText"] == "stand-in ready"
    assert props["NotifyAccess"] == "main"
    assert "active (running)" in manager.systemctl("status", UNIT, check=False).stdout

    manager.run(*service("uninstall"), env=cli_env(manager))
    assert manager.show("LoadState")["LoadState"] == "not-found"


@pytest.mark.parametrize("uid", [0, NOBODY], ids=["root", "unprivileged"])
def test_real_daemon_lifecycle(workdir: Path, uid: int) -> None:
    if uid and (reason := _unreachable(uid)):
        pytest.skip(reason)
    manager = start_manager(workdir, uid)
    try:
        _check_lifecycle(manager)
    finally:
        manager.stop()


def _check_lifecycle(manager: UserManager) -> None:
    codex_home = manager.home / "codex home"
    codex_home.mkdir()
    if manager.uid:
        os.chown(codex_home, manager.uid, manager.uid)
    env = cli_env(manager)
    if not _importable("codex_indexd", {**os.environ, "PYTHONPATH": ""}, manager.uid):
        # Not installed into this interpreter: let the user manager find the checkout.
        manager.systemctl("set-environment", f"PYTHONPATH={source_pythonpath(manager.root)}")
    unit_dir = manager.home / ".config" / "systemd" / "user"

    # Install: blocks until READY=1, then the unit is active (running) and enabled.
    manager.run(*service("install", "--codex-home", str(codex_home)), env=env)
    assert manager.state() == ("active", "running")
    assert (unit_dir / "default.target.wants" / UNIT).is_symlink()
    first_pid = int(manager.show("MainPID")["MainPID"])
    status = manager.run(*service("status"), env=env)
    assert "state:      active (running)" in status.stdout
    assert f"main PID:   {first_pid}" in status.stdout
    assert manager.show("WatchdogUSec")["WatchdogUSec"] == "1min"
    cmdline = Path(f"/proc/{first_pid}/cmdline").read_bytes().split(b"\0")[:-1]
    assert [arg.decode() for arg in cmdline] == [
        sys.executable,
        "-P",
        "-m",
        "codex_indexd",
        "run",
        "--codex-home",
        str(codex_home),
    ]
    assert Path(f"/proc/{first_pid}").stat().st_uid == manager.uid

    # A crash (SIGKILL) is restarted by Restart=on-failure (RestartSec=5s), with a new PID.
    os.kill(first_pid, signal.SIGKILL)

    def restarted() -> int:
        props = manager.show("MainPID", "ActiveState", "SubState")
        pid = int(props["MainPID"])
        running = (props["ActiveState"], props["SubState"]) == ("active", "running")
        return pid if running and pid not in (0, first_pid) else 0

    second_pid = wait_for(restarted, 60, "a restart after kill -9")
    assert manager.show("NRestarts")["NRestarts"] == "1"

    # Re-install: same file, the daemon is restarted.
    unit_text = (unit_dir / UNIT).read_text()
    manager.run(*service("install", "--codex-home", str(codex_home)), env=env)
    assert (unit_dir / UNIT).read_text() == unit_text
    assert manager.state() == ("active", "running")
    assert int(manager.show("MainPID")["MainPID"]) not in (first_pid, second_pid)

    # A clean stop: SIGTERM, exit 0, inactive (not failed).
    manager.systemctl("stop", UNIT)
    props = manager.show("ActiveState", "Result", "ExecMainStatus")
    assert (props["ActiveState"], props["Result"], props["ExecMainStatus"]) == (
        "inactive",
        "success",
        "0",
    )
    assert manager.run(*service("status"), env=env, check=False).returncode == 3

    # The daemon's JSON log is where `codex-indexd logs` looks for it, and `logs` points at
    # the journal while the unit is installed.
    log_file = manager.home / ".local" / "state" / "codex-indexd" / "log" / "codex-indexd.log"
    assert log_file.exists()
    shown = manager.run(sys.executable, "-m", "codex_indexd", "logs", "--json", env=env)
    lines = shown.stdout.splitlines()
    assert lines and all(isinstance(json.loads(line), dict) for line in lines)
    assert "journalctl --user-unit codex-indexd.service" in shown.stderr

    # Uninstall: nothing left behind, the manager forgot the unit.
    manager.run(*service("uninstall"), env=env)
    assert sorted(p.name for p in unit_dir.rglob("*") if not p.is_dir()) == []
    assert manager.show("LoadState")["LoadState"] == "not-found"


def test_the_service_follows_the_configured_homes(workdir: Path) -> None:
    """Installed without --codex-home, the unit runs the daemon on the config file's homes;
    SIGHUP (systemctl --user kill -s HUP) adds a home without a restart."""
    from tests.support.homes import build_home, new_thread

    manager = start_manager(workdir, 0)
    try:
        first = build_home(manager.home / "first", [new_thread(0)])
        second = build_home(manager.home / "second", [new_thread(1)])
        config = manager.home / ".config" / "codex-indexd" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text(f"homes = [{json.dumps(str(first))}]\n")
        env = cli_env(manager)
        env.pop("CODEX_HOME", None)
        if not _importable("codex_indexd", {**os.environ, "PYTHONPATH": ""}, manager.uid):
            manager.systemctl("set-environment", f"PYTHONPATH={source_pythonpath(manager.root)}")
        manager.run(*service("install"), env=env)
        unit = (manager.home / ".config" / "systemd" / "user" / UNIT).read_text()
        (exec_start,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
        assert exec_start.endswith(" run") and "CODEX_HOME=" not in unit
        pid = int(manager.show("MainPID")["MainPID"])
        wait_for((first / "session_index.jsonl").exists, SYSTEMD_WAIT_S, "the first home served")
        assert not (second / "session_index.jsonl").exists()

        config.write_text(f"homes = [{json.dumps(str(first))}, {json.dumps(str(second))}]\n")
        manager.systemctl("kill", "-s", "HUP", UNIT)
        wait_for((second / "session_index.jsonl").exists, 60, "the added home served")
        assert int(manager.show("MainPID")["MainPID"]) == pid  # no restart
        status_main = "import sys; from codex_indexd.cli import main; sys.exit(main(sys.argv[1:]))"
        shown = manager.run(
            sys.executable, "-c", status_main, "status", "--json", env=env, check=False
        )
        report = json.loads(shown.stdout)
        assert [h["codex_home"] for h in report["homes"]] == [str(first), str(second)]
        assert all(h["daemon_pid"] == pid for h in report["homes"]), report
        assert report["homes"][0]["service_manager"] == "systemd"
        manager.run(*service("uninstall"), env=env)
    finally:
        manager.stop()
