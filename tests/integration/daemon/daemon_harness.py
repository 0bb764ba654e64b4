"""Helpers for the daemon tests: a daemon subprocess, an in-process daemon, an sd_notify
listener, Codex-style appends, and polling waits (never fixed sleeps as synchronisation)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from codex_indexd.config import settings as settings_mod
from codex_indexd.daemon.loop import Daemon
from codex_indexd.store.files import OurFiles
from codex_indexd.store.status import read_status
from tests.support.homes import Thread, iso, line
from tests.support.waiting import daemon_command, wait_for

ROOT = Path(__file__).resolve().parents[3]
T = TypeVar("T")


# -- reading our files and Codex's ---------------------------------------------------------


def jsonl(path: Path) -> list[dict[str, Any]]:
    """Parse every line of a JSONL file; a line that does not parse fails the test."""
    if not path.exists():
        return []
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), f"{path.name} does not end with a newline"
    return [json.loads(raw) for raw in data.splitlines() if raw.strip()]


def lenient(path: Path) -> list[dict[str, Any]]:
    """The lines that parse. For polling while the daemon may be in the middle of an in-place
    rewrite (a reader can see it truncated); final checks use `jsonl`."""
    out = []
    for raw in raw_lines(path):
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue
    return out


def history_texts(home: Path) -> list[str]:
    return [entry["text"] for entry in lenient(home / "history.jsonl")]


def index_ids(home: Path) -> set[str]:
    return {entry["id"] for entry in lenient(home / "session_index.jsonl")}


def latest_names(home: Path) -> dict[str, str]:
    return {entry["id"]: entry["thread_name"] for entry in jsonl(home / "session_index.jsonl")}


def raw_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines() if path.exists() else []


def contains_in_order(big: list[bytes], small: list[bytes]) -> bool:
    """True when `small` is a subsequence of `big` (every old line kept, in its order)."""
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


def log_events(log_dir: Path, event: str | None = None) -> list[dict[str, Any]]:
    path = log_dir / "codex-indexd.log"
    out = []
    if not path.exists():
        return out
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if event is None or record.get("event") == event:
            out.append(record)
    return out


def status(home: Path) -> dict[str, Any]:
    return read_status(home) or {}


def status_ident(home: Path) -> tuple[int, int] | None:
    """Identity of the status file; it is replaced (new inode) on every reconcile."""
    try:
        st = os.stat(OurFiles.for_home(home).status)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns)


# -- appending like Codex --------------------------------------------------------------------


def user_turn(thread: Thread, text: str, when: datetime, *, ordinal: int = 1000) -> str:
    """A user turn line in the thread's format: legacy `user_message` or paginated
    `item_completed` / `UserMessage`."""
    if thread.paginated:
        return line(
            {
                "timestamp": iso(when),
                "ordinal": ordinal,
                "type": "event_msg",
                "payload": {
                    "type": "item_completed",
                    "thread_id": thread.thread_id,
                    "turn_id": f"t{ordinal}",
                    "item": {
                        "type": "UserMessage",
                        "id": f"u{ordinal}",
                        "content": [{"type": "text", "text": text, "text_elements": []}],
                    },
                },
            }
        )
    return line(
        {
            "timestamp": iso(when),
            "type": "event_msg",
            "payload": {
                "type": "user_message",
                "message": text,
                "images": [],
                "local_images": [],
                "kind": "plain",
            },
        }
    )


def append(path: Path, data: str | bytes) -> None:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, raw)
    finally:
        os.close(fd)


def codex_rename(home: Path, thread_id: str, name: str, updated_at: str) -> None:
    """Append a rename to session_index.jsonl the way Codex does (under the sidecar lock)."""
    lock = os.open(home / "session_index.jsonl.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        fd = os.open(home / "session_index.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            payload = {"id": thread_id, "thread_name": name, "updated_at": updated_at}
            os.write(fd, (json.dumps(payload, separators=(",", ":")) + "\n").encode())
        finally:
            os.close(fd)
    finally:
        os.close(lock)


def codex_history_append(home: Path, session_id: str, text: str, ts: int) -> None:
    """Append a history line the way Codex does (flock on the file itself)."""
    fd = os.open(home / "history.jsonl", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        payload = {"session_id": session_id, "ts": ts, "text": text}
        os.write(fd, (json.dumps(payload, separators=(",", ":")) + "\n").encode())
    finally:
        os.close(fd)


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
    """`python -m codex_indexd run --codex-home H` with our dirs isolated through the
    environment the test set (the autouse `private_dirs` fixture)."""

    count = 0

    def __init__(
        self,
        home: Path,
        workdir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        debounce_ms: int = 30,
        notify: bool = True,
        seams: Sequence[str] = (),
    ) -> None:
        DaemonProcess.count += 1
        n = DaemonProcess.count
        self.home = home
        self.stdout_path = workdir / f"daemon-{n}.stdout"
        self.stderr_path = workdir / f"daemon-{n}.stderr"
        self.notify = NotifyListener() if notify else None
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        full_env.pop("NOTIFY_SOCKET", None)
        if self.notify is not None:
            full_env["NOTIFY_SOCKET"] = self.notify.path
        cmd = daemon_command(home, "--debounce-ms", str(debounce_ms), *args, seams=seams)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=out, stderr=err)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float = 15.0) -> None:
        assert self.notify is not None

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"daemon exited with {self.proc.returncode}: {self.stderr[-3000:]}"
                )
            return self.notify.has("READY=1")  # type: ignore[union-attr]

        wait_for(ready, timeout, "READY=1 from the daemon")

    def terminate(self, timeout: float = 5.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        if self.notify is not None:
            self.notify.close()
            self.notify = None


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
        self.daemon.stop_requested.set()
        self.daemon.debouncer.wake()
        self.thread.join(timeout=10)
        self.daemon.release_locks()
        assert not self.thread.is_alive(), "daemon thread did not stop"
        if self.error:
            raise self.error
