"""A small JSON-RPC client for `codex app-server` over stdio.

One child per `AppServer`, started in its own session (process group) with `CODEX_HOME`
set. Messages are newline-delimited JSON objects without a `jsonrpc` member, as Codex
0.169 speaks them. Every request waits at most its timeout; `close()` always reaps the
child and kills whatever is left of its process group, so nothing is left running.

Single-threaded: the child's stdout and stderr are read with a selector while a request
waits; server-to-client requests (approvals and the like) are refused, notifications are
counted and dropped.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from codex_indexd import __version__
from codex_indexd.heal.child import (
    STDERR_LINES,
    AppServerError,
    RpcError,
    child_env,
    reap,
)

CLIENT_NAME = "codex-indexd"
MAX_LINE_BYTES = 64 * 1024 * 1024
_READ = 1 << 16


class AppServer:
    """`codex app-server` over stdio. Use as a context manager, or `start()` and `close()`."""

    def __init__(
        self,
        binary: str,
        codex_home: Path,
        *,
        env: Mapping[str, str] | None = None,
        grace_s: float = 2.0,
    ) -> None:
        self.binary = binary
        self.codex_home = codex_home
        self._env = child_env(codex_home, env)
        self._grace = grace_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._sel: selectors.BaseSelector | None = None
        self._out = bytearray()
        self._err = bytearray()
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self._responses: dict[int, dict[str, Any]] = {}
        self._next_id = 1
        self._eof = False
        self.notifications = 0
        self.returncode: int | None = None
        self.initialize_result: dict[str, Any] = {}

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def stderr_tail(self) -> str:
        """The last few lines the child wrote to stderr (for error reports)."""
        return "\n".join(self._stderr)

    def start(self, timeout_s: float = 20.0) -> Self:
        """Spawn the child and complete `initialize` / `initialized`. Raises AppServerError."""
        try:
            self._proc = subprocess.Popen(
                [self.binary, "app-server"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=str(self.codex_home),
                env=self._env,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            why = exc.strerror or exc
            raise AppServerError("spawn", f"cannot run {self.binary}: {why}") from exc
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        os.set_blocking(proc.stdin.fileno(), False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(proc.stdout, selectors.EVENT_READ, "out")
        self._sel.register(proc.stderr, selectors.EVENT_READ, "err")
        try:
            client = {"name": CLIENT_NAME, "title": "codex-indexd", "version": __version__}
            result = self.request("initialize", {"clientInfo": client}, timeout_s=timeout_s)
            self.initialize_result = result if isinstance(result, dict) else {}
            self.notify("initialized", timeout_s=timeout_s)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> int | None:
        """Close stdin, give the child a moment, then kill its group; always reap it."""
        proc = self._proc
        if proc is None:
            return self.returncode
        self._proc = None
        for stream in (proc.stdin,):
            with contextlib.suppress(OSError, ValueError):
                if stream is not None:
                    stream.close()
        try:
            self.returncode = reap(proc, self._grace)
        finally:
            if self._sel is not None:
                self._sel.close()
                self._sel = None
            for stream in (proc.stdout, proc.stderr):
                with contextlib.suppress(OSError, ValueError):
                    if stream is not None:
                        stream.close()
        return self.returncode

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- JSON-RPC ----------------------------------------------------------------------

    def request(
        self, method: str, params: Mapping[str, Any] | None = None, *, timeout_s: float = 20.0
    ) -> Any:
        """Send a request and return its `result`. Raises RpcError or AppServerError."""
        request_id = self._next_id
        self._next_id += 1
        deadline = time.monotonic() + timeout_s
        self._send(
            {"id": request_id, "method": method, "params": dict(params or {})},
            deadline,
            method,
            timeout_s,
        )
        message = self._wait(request_id, deadline, method, timeout_s)
        if "error" in message:
            error = message["error"]
            raise RpcError(method, error if isinstance(error, dict) else {"message": str(error)})
        return message.get("result")

    def notify(
        self, method: str, params: Mapping[str, Any] | None = None, *, timeout_s: float = 20.0
    ) -> None:
        """Send a notification (no answer expected)."""
        message: dict[str, Any] = {"method": method}
        if params is not None:
            message["params"] = dict(params)
        self._send(message, time.monotonic() + timeout_s, method, timeout_s)

    def _send(
        self, message: Mapping[str, Any], deadline: float, method: str, timeout_s: float
    ) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise AppServerError("exited", f"{method}: the app-server is not running")
        data = memoryview(json.dumps(message, ensure_ascii=False).encode("utf-8") + b"\n")
        fd = proc.stdin.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_WRITE)
            while data:
                try:
                    written = os.write(fd, data)
                except BlockingIOError:
                    written = 0
                except (BrokenPipeError, OSError) as exc:
                    raise AppServerError(
                        "exited",
                        f"{method}: the app-server closed its input "
                        f"({exc.strerror or exc}){self._tail()}",
                    ) from exc
                data = data[written:]
                if not data:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AppServerError(
                        "timeout",
                        f"{method}: the app-server did not read its input in {timeout_s:g}s",
                    )
                sel.select(remaining)

    def _wait(
        self, request_id: int, deadline: float, method: str, timeout_s: float
    ) -> dict[str, Any]:
        while True:
            found = self._responses.pop(request_id, None)
            if found is not None:
                return found
            if self._eof:
                raise AppServerError(
                    "exited",
                    f"{method}: the app-server closed its output before answering{self._tail()}",
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AppServerError(
                    "timeout", f"{method}: no answer from the app-server in {timeout_s:g}s"
                )
            self._pump(remaining)

    def _pump(self, timeout: float) -> None:
        """Read what the child has written within `timeout` and dispatch complete lines."""
        sel = self._sel
        if sel is None:
            self._eof = True
            return
        for key, _ in sel.select(timeout):
            fileobj = key.fileobj
            assert hasattr(fileobj, "fileno")
            try:
                chunk = os.read(fileobj.fileno(), _READ)
            except OSError:
                chunk = b""
            if key.data == "err":
                if chunk:
                    self._take_stderr(chunk)
                else:
                    sel.unregister(fileobj)
                continue
            if not chunk:
                sel.unregister(fileobj)
                self._eof = True
                continue
            self._take_stdout(chunk)

    def _take_stdout(self, chunk: bytes) -> None:
        self._out += chunk
        while True:
            end = self._out.find(b"\n")
            if end == -1:
                if len(self._out) > MAX_LINE_BYTES:
                    raise AppServerError("protocol", "the app-server wrote an over-long line")
                return
            raw = bytes(self._out[:end]).strip()
            del self._out[: end + 1]
            if raw:
                self._dispatch(raw)

    def _dispatch(self, raw: bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            self._stderr.append(f"[non-JSON stdout] {raw[:200].decode('utf-8', 'replace')}")
            return
        if not isinstance(message, dict):
            return
        has_id = "id" in message
        if has_id and ("result" in message or "error" in message):
            if isinstance(message["id"], int):
                self._responses[message["id"]] = message
        elif has_id and "method" in message:
            error = {"code": -32601, "message": f"{CLIENT_NAME} does not handle this request"}
            with contextlib.suppress(AppServerError):
                self._send(
                    {"id": message["id"], "error": error}, time.monotonic() + 1.0, "reply", 1.0
                )
        elif "method" in message:
            self.notifications += 1

    def _take_stderr(self, chunk: bytes) -> None:
        self._err += chunk
        *lines, rest = bytes(self._err).split(b"\n")
        self._err = bytearray(rest[-4096:])
        for line in lines:
            text = line.decode("utf-8", "replace").strip()
            if text:
                self._stderr.append(text[:300])

    def _tail(self) -> str:
        last = self._stderr[-1] if self._stderr else ""
        return f": {last}" if last else ""
