"""The daemon under test: `codex-indexd run` as a subprocess (`DaemonProcess`) or on a thread of
the test process (`InProcessDaemon`); the environment a child interpreter of this checkout
needs; an sd_notify listener; and the daemon's JSON log.

Our own directories (state, log, ...) come from the environment the autouse `private_dirs`
fixture sets (CODEX_INDEXD_STATE_DIR and friends); nothing here picks them.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from codex_indexd.config import settings as settings_mod
from codex_indexd.daemon.loop import Daemon
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = (ROOT, ROOT / "daemon", ROOT / "service")
"""The checkout (for ``tests.*``) and the two source roots of the import packages."""
LOG_NAME = "codex-indexd.log"
_numbers = itertools.count(1)


def source_pythonpath(base: Mapping[str, str] | None = None) -> str:
    """A PYTHONPATH that makes a child interpreter import this checkout's packages and tests
    (then what `base`, by default our environment, has in PYTHONPATH)."""
    extra = (os.environ if base is None else base).get("PYTHONPATH")
    return os.pathsep.join([*(str(p) for p in SOURCE_ROOTS), *([extra] if extra else [])])


def child_env(
    extra: Mapping[str, str] | None = None, *, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a child interpreter: `base` (by default ours) with this checkout
    importable, and `extra` on top."""
    start = os.environ if base is None else base
    return {**start, "PYTHONPATH": source_pythonpath(start), **(extra or {})}


SEAMED_CLI = ROOT / "tests" / "support" / "seamed_cli.py"


def cli_command(*args: str, seams: Sequence[str] = ()) -> list[str]:
    """The command line of `codex-indexd ARGS` with this interpreter; with `seams`
    (`inotify-errno=ENOSPC`, see tests/support/seamed_cli.py) through the wrapper that sets
    those test seams first."""
    if seams:
        return [sys.executable, str(SEAMED_CLI), *seams, "--", *args]
    return [sys.executable, "-m", "codex_indexd", *args]


def daemon_command(home: Path, *args: str, seams: Sequence[str] = ()) -> list[str]:
    """The command line of `codex-indexd run` on `home`, with this interpreter."""
    return cli_command("run", "--codex-home", str(home), *args, seams=seams)


# -- the daemon's log --------------------------------------------------------------------------


def log_records(log_dir: Path, event: str | None = None) -> list[dict[str, Any]]:
    """Every JSON record of the daemon's log in `log_dir` (rotated files first), or those of
    one `event`. Lines that do not parse (a record being written) are skipped."""
    out: list[dict[str, Any]] = []
    base = log_dir / LOG_NAME
    rotated = sorted(
        log_dir.glob(LOG_NAME + ".*"),
        key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0,
    )
    for path in [*rotated, base]:
        if not path.exists():
            continue
        for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict) and (event is None or record.get("event") == event):
                out.append(record)
    return out


# -- sd_notify ---------------------------------------------------------------------------------


class NotifyListener:
    """A bound AF_UNIX datagram socket collecting sd_notify messages on a thread."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="cxi-")  # short: sun_path is 108 bytes
        self.path = os.path.join(self._dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append((time.monotonic(), data.decode("utf-8", "replace")))

    def fields(self) -> list[str]:
        """Every `KEY=value` field received so far, in order."""
        with self._lock:
            return [f for _, msg in self.messages for f in msg.split("\n")]

    def has(self, field: str) -> bool:
        return field in self.fields()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
        self.sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)


# -- the daemon as a subprocess ----------------------------------------------------------------


class DaemonProcess:
    """`python -m codex_indexd run --codex-home H [--debounce-ms N] [args]` from the checkout.

    Its stdout and stderr go to `daemon-N.stdout`/`.stderr` in `output_dir` (kept for a
    post-mortem), or to anonymous temporary files when there is none (never to a pipe, which
    a chatty daemon could fill). With `notify`, NOTIFY_SOCKET points at a `NotifyListener`;
    with `log_dir`, readiness can also be read from the daemon's log. The daemon's
    environment is `base_env` (by default ours) with this checkout importable and `env` on
    top.
    """

    def __init__(
        self,
        home: Path,
        *args: str,
        debounce_ms: int | None = 50,
        env: Mapping[str, str] | None = None,
        notify: bool = False,
        log_dir: Path | None = None,
        output_dir: Path | None = None,
        seams: Sequence[str] = (),
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.home = home
        self.log_dir = log_dir
        self.seams = tuple(seams)
        self.notify = NotifyListener() if notify else None
        self.ready_before = len(log_records(log_dir, "daemon.ready")) if log_dir else 0
        """How many `daemon.ready` records the log held before this daemon started."""
        full_env = child_env({"PYTHONUNBUFFERED": "1", **(env or {})}, base=base_env)
        full_env.pop("NOTIFY_SOCKET", None)
        if self.notify is not None:
            full_env["NOTIFY_SOCKET"] = self.notify.path
        flags = ("--debounce-ms", str(debounce_ms)) if debounce_ms is not None else ()
        self.stdout_path: Path | None = None
        self.stderr_path: Path | None = None
        self._out: IO[bytes] | None = None
        self._err: IO[bytes] | None = None
        self._final_stderr = ""
        if output_dir is not None:
            output_dir.mkdir(parents=True, exist_ok=True)
            n = next(_numbers)
            self.stdout_path = output_dir / f"daemon-{n}.stdout"
            self.stderr_path = output_dir / f"daemon-{n}.stderr"
            # The child keeps its own descriptors; the files are read back by path.
            with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
                self.proc = self._start(
                    home, (*flags, *args), env=full_env, out=out, err=err, seams=self.seams
                )
            return
        # Anonymous files stay open here until close(): `stderr` reads them back.
        self._out = tempfile.TemporaryFile()  # noqa: SIM115
        self._err = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = self._start(
            home, (*flags, *args), env=full_env, out=self._out, err=self._err, seams=self.seams
        )

    @staticmethod
    def _start(
        home: Path,
        args: tuple[str, ...],
        *,
        env: dict[str, str],
        out: IO[bytes],
        err: IO[bytes],
        seams: tuple[str, ...],
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            daemon_command(home, *args, seams=seams),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )

    # -- the process -----------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def poll(self) -> int | None:
        """The exit code, or None while it runs."""
        return self.proc.poll()

    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def stderr(self) -> str:
        """What the daemon wrote to stderr so far."""
        if self.stderr_path is not None:
            return self.stderr_path.read_text(encoding="utf-8", errors="replace")
        if self._err is None:
            return self._final_stderr
        fd = self._err.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")

    def check_alive(self) -> None:
        """Raises AssertionError (with the end of stderr) when the daemon has exited."""
        if self.proc.poll() is not None:
            raise AssertionError(
                f"the daemon exited with {self.proc.returncode}: {self.stderr[-3000:]}"
            )

    def wait_ready(self, timeout: float | None = None) -> None:
        """Wait for READY=1 (with `notify`; 15 s by default) or a new `daemon.ready` log record
        (with `log_dir`; 60 s by default: the first scan of a big home). Raises AssertionError
        when the daemon exits first or time runs out."""
        notify, log_dir = self.notify, self.log_dir
        if notify is not None:

            def ready() -> bool:
                self.check_alive()
                return notify.has("READY=1")

            wait_for(ready, 15.0 if timeout is None else timeout, "READY=1 from the daemon")
            return
        assert log_dir is not None, "wait_ready needs notify=True or a log_dir"

        def logged() -> bool:
            self.check_alive()
            return len(log_records(log_dir, "daemon.ready")) > self.ready_before

        wait_for(
            logged, 60.0 if timeout is None else timeout, "daemon.ready in the log", interval=0.1
        )

    def send_signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit; return its code. Raises subprocess.TimeoutExpired."""
        return self.proc.wait(timeout=timeout)

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait up to `timeout` s; return the exit code."""
        self.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        self.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def close(self) -> None:
        """Kill the daemon if it still runs; release the listener and the output files."""
        if self.proc.poll() is None:
            self.kill()
        if self.notify is not None:
            self.notify.close()
            self.notify = None
        if self._out is not None and self._err is not None:
            self._final_stderr = self.stderr
            self._out.close()
            self._err.close()
            self._out = self._err = None

    # -- /proc metrics -----------------------------------------------------------------------

    def rss_kb(self) -> int:
        for row in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if row.startswith("VmRSS:"):
                return int(row.split()[1])
        raise AssertionError("no VmRSS")

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def fds(self) -> dict[str, str]:
        """The daemon's open file descriptors: number → target."""
        out = {}
        for name in os.listdir(f"/proc/{self.pid}/fd"):
            try:
                out[name] = os.readlink(f"/proc/{self.pid}/fd/{name}")
            except OSError:
                continue
        return out


# -- the daemon in a thread of the test process ------------------------------------------------


class InProcessDaemon:
    """A `Daemon` run on a thread (no signal handlers); `stop()` ends it like SIGTERM."""

    def __init__(self, home: Path, *more_homes: Path, **overrides: Any) -> None:
        values = {
            "homes": [str(h) for h in (home, *more_homes)],
            "watch.debounce_ms": 30,
            **overrides,
        }
        self.daemon = Daemon(settings_mod.load(values))
        self.error: BaseException | None = None
        self.rc: int | None = None
        self.daemon.acquire_locks()
        self.thread = threading.Thread(target=self._run, name="daemon-under-test", daemon=True)
        self.thread.start()
        wait_for(lambda: self.daemon.ready.is_set() or self.error, 15, "in-process daemon ready")
        if self.error:
            raise self.error

    def _run(self) -> None:
        try:
            self.rc = self.daemon.run()
        except BaseException as exc:
            self.error = exc

    @property
    def worker(self) -> Any:
        (worker,) = self.daemon.workers.values()
        return worker

    def stop(self) -> None:
        """Stop the loop and wait for the thread; re-raises what the daemon raised."""
        self.daemon.stop_requested.set()
        self.daemon.debouncer.wake()
        self.thread.join(timeout=10)
        self.daemon.release_locks()
        assert not self.thread.is_alive(), "daemon thread did not stop"
        if self.error:
            raise self.error


Spawn = Callable[..., DaemonProcess]
"""The type of the `spawn` fixtures: start a `DaemonProcess` on a home, stopped at teardown."""
InProc = Callable[..., InProcessDaemon]
"""The type of the `inproc` fixture: start an `InProcessDaemon`, stopped at teardown."""
