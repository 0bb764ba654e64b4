"""Drive the real OpenAI Codex CLI offline, for end-to-end tests of codex-indexd.

Everything here talks to a :class:`MockResponsesServer` on 127.0.0.1 instead of the
OpenAI API, and runs Codex with an isolated ``CODEX_HOME`` and ``HOME``.  Outbound
traffic other than to loopback is pointed at a dead proxy so a forgotten network call
fails fast instead of leaving the machine.

Pieces:

* :func:`find_codex_binary`, :data:`CODEX_VERSION`
* :class:`MockResponsesServer` - stdlib HTTP server speaking the Responses SSE stream
* :func:`make_codex_home`, :func:`codex_env` - an offline home and its environment
* :func:`codex_exec`, :func:`codex_archive`, :func:`codex_unarchive` - one-shot CLI runs
* :class:`AppServer` - ``codex app-server`` JSON-RPC over stdio
* :class:`TuiSession` - the interactive TUI under a private tmux server
* :func:`stop_managed_daemon` - kill the app-server daemon the TUI leaves behind
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from tests.support.waiting import WaitTimeout, wait_for

CODEX_VERSION = "0.169.0"
"""The oldest Codex CLI release these helpers are verified against."""
PINNED_CODEX: dict[str, Path] = {
    "0.169.0": Path(__file__).resolve().parent / "node_modules/codex-0169/bin/codex.js",
    "0.171.0": Path(__file__).resolve().parent / "node_modules/codex-0171/bin/codex.js",
}
"""The versions tests/e2e/package.json pins (npm aliases), and where npm puts each."""

REPO_ROOT = Path(__file__).resolve().parents[2]
NPM_CODEX_BIN = Path("/opt/codex-npm/node_modules/.bin/codex")
MOCK_PROVIDER_ID = "mock"
MOCK_MODEL = "mock-model"
DEFAULT_REPLY = "Hello from the mock model."
DEAD_PROXY = "http://127.0.0.1:9"
"""Discard port on loopback: any proxied (non-loopback) request fails at once."""

_UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_SESSION_ID_RE = re.compile(rf"^session id: ({_UUID_RE})\s*$", re.MULTILINE)
_ROLLOUT_ID_RE = re.compile(rf"({_UUID_RE})\.jsonl(?:\.zst)?$")

T = TypeVar("T")
POLL_S = 0.05
"""How often the helpers here poll Codex (its files, the tmux pane, its processes)."""


class CodexError(RuntimeError):
    """A Codex CLI invocation failed or did not produce what was expected."""


# --------------------------------------------------------------------------------------
# Binary discovery and polling
# --------------------------------------------------------------------------------------


def find_codex_binary() -> Path | None:
    """Locate the Codex CLI: ``$CODEX_BIN``, the npm install, PATH, then the repo."""
    env_bin = os.environ.get("CODEX_BIN")
    if env_bin:
        candidate = Path(env_bin).expanduser()
        return candidate if _is_executable(candidate) else None
    if _is_executable(NPM_CODEX_BIN):
        return NPM_CODEX_BIN
    on_path = shutil.which("codex")
    if on_path:
        return Path(on_path)
    local = REPO_ROOT / "node_modules" / ".bin" / "codex"
    return local if _is_executable(local) else None


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _require_binary(codex_bin: Path | None) -> Path:
    found = codex_bin or find_codex_binary()
    if found is None:
        raise CodexError("Codex CLI not found (set CODEX_BIN)")
    return found


# --------------------------------------------------------------------------------------
# Mock Responses API
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the mock server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON (``None`` when empty)."""
        return json.loads(self.body) if self.body else None


class MockResponsesServer:
    """Threaded stdlib HTTP server that plays the OpenAI Responses API for Codex.

    ``POST /v1/responses`` streams one assistant message (``reply``) as SSE:
    ``response.created``, ``response.output_item.added``, ``response.output_text.delta``,
    ``response.output_item.done``, ``response.completed`` (with usage).  ``GET
    /v1/models`` returns an empty list; anything else gets a JSON 404.  Every request is
    recorded in :attr:`requests`.
    """

    def __init__(self, reply: str = DEFAULT_REPLY, host: str = "127.0.0.1") -> None:
        self.reply = reply
        self._host = host
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._counter = itertools.count(1)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """Bind an ephemeral port and serve in a daemon thread."""
        handler = _make_handler(self)
        httpd = ThreadingHTTPServer((self._host, 0), handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, args=(0.05,), name="mock-responses", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- introspection -----------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """Value for ``model_providers.<id>.base_url``."""
        return f"http://{self._host}:{self.port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far."""
        with self._lock:
            return list(self._requests)

    def responses_requests(self) -> list[RecordedRequest]:
        """Only the ``POST /v1/responses`` requests (one per model call)."""
        return [r for r in self.requests if r.method == "POST" and _is_responses(r.path)]

    # -- handler callbacks -------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _sse_body(self) -> bytes:
        n = next(self._counter)
        return encode_sse(assistant_turn_events(f"resp_mock_{n}", f"msg_mock_{n}", self.reply))


def _is_responses(path: str) -> bool:
    return path.split("?", 1)[0].rstrip("/") == "/v1/responses"


def assistant_turn_events(response_id: str, item_id: str, text: str) -> list[dict[str, Any]]:
    """The SSE events of one successful Responses API turn with a single text message."""
    message: dict[str, Any] = {
        "type": "message",
        "id": item_id,
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    in_progress = {**message, "status": "in_progress", "content": []}
    usage = {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 15,
    }
    response = {"id": response_id, "object": "response", "model": MOCK_MODEL}
    return [
        {"type": "response.created", "response": {**response, "status": "in_progress"}},
        {"type": "response.output_item.added", "output_index": 0, "item": in_progress},
        {
            "type": "response.output_text.delta",
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "delta": text,
        },
        {"type": "response.output_item.done", "output_index": 0, "item": message},
        {
            "type": "response.completed",
            "response": {**response, "status": "completed", "output": [message], "usage": usage},
        },
    ]


def encode_sse(events: Sequence[Mapping[str, Any]]) -> bytes:
    """Serialise events as ``event:``/``data:`` SSE frames."""
    frames = (f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
    return "".join(frames).encode()


def _make_handler(server: MockResponsesServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Silence per-request logging."""

        def _read_body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""

        def _record(self, body: bytes) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            server._record(RecordedRequest(self.command, self.path, headers, body))

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            self.wfile.write(body)

        def _send_json(self, status: int, payload: Any) -> None:
            self._send(status, "application/json", json.dumps(payload).encode())

        def do_POST(self) -> None:
            self._record(self._read_body())
            if _is_responses(self.path):
                self._send(200, "text/event-stream", server._sse_body())
            else:
                self._not_found()

        def do_GET(self) -> None:
            self._record(b"")
            if self.path.split("?", 1)[0].rstrip("/") == "/v1/models":
                self._send_json(200, {"object": "list", "data": [], "models": []})
            else:
                self._not_found()

        def _not_found(self) -> None:
            self._send_json(404, {"error": {"message": "not mocked", "type": "not_found"}})

    return Handler


# --------------------------------------------------------------------------------------
# CODEX_HOME and environment
# --------------------------------------------------------------------------------------


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid TOML basic string


def config_toml(
    base_url: str,
    *,
    history_max_bytes: int | None = None,
    history_persistence: str | None = None,
    trusted_dirs: Sequence[Path] = (),
) -> str:
    """The offline ``config.toml`` text pointing Codex at ``base_url``."""
    lines = [
        f"model = {_toml_str(MOCK_MODEL)}",
        f"model_provider = {_toml_str(MOCK_PROVIDER_ID)}",
        "check_for_update_on_startup = false",
        "",
        f"[model_providers.{MOCK_PROVIDER_ID}]",
        'name = "Mock Responses API"',
        f"base_url = {_toml_str(base_url)}",
        'wire_api = "responses"',
        "requires_openai_auth = false",
        "request_max_retries = 0",
        "stream_max_retries = 0",
        "",
        "[analytics]",
        "enabled = false",
        "",
        "[feedback]",
        "enabled = false",
        "",
        "[features]",
        "plugins = false",
        "apps = false",
    ]
    history: list[str] = []
    if history_persistence is not None:
        history.append(f"persistence = {_toml_str(history_persistence)}")
    if history_max_bytes is not None:
        history.append(f"max_bytes = {int(history_max_bytes)}")
    if history:
        lines += ["", "[history]", *history]
    for directory in trusted_dirs:
        lines += ["", f"[projects.{_toml_str(str(directory))}]", 'trust_level = "trusted"']
    return "\n".join(lines) + "\n"


def make_codex_home(
    path: Path,
    server: MockResponsesServer,
    *,
    history_max_bytes: int | None = None,
    history_persistence: str | None = None,
    trusted_dirs: Sequence[Path] = (),
) -> Path:
    """Create ``path`` as a fresh ``CODEX_HOME`` wired to ``server``; return it."""
    path.mkdir(parents=True, exist_ok=True)
    config = path / "config.toml"
    config.write_text(
        config_toml(
            server.base_url,
            history_max_bytes=history_max_bytes,
            history_persistence=history_persistence,
            trusted_dirs=trusted_dirs,
        )
    )
    config.chmod(0o600)
    return path


def user_home_for(home: Path) -> Path:
    """The isolated ``$HOME`` used next to a ``CODEX_HOME``."""
    return home.parent / f"{home.name}-user-home"


_DROPPED_ENV_PREFIXES = ("CODEX_", "OPENAI_", "RUST_LOG", "AZURE_OPENAI")


def codex_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for running Codex against ``home``: isolated, offline, no API keys."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_DROPPED_ENV_PREFIXES) and not k.lower().endswith("_proxy")
    }
    user_home = user_home_for(home)
    user_home.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "CODEX_HOME": str(home),
            "HOME": str(user_home),
            "XDG_CONFIG_HOME": str(user_home / ".config"),
            "XDG_CACHE_HOME": str(user_home / ".cache"),
            "XDG_DATA_HOME": str(user_home / ".local" / "share"),
            "HTTP_PROXY": DEAD_PROXY,
            "HTTPS_PROXY": DEAD_PROXY,
            "ALL_PROXY": DEAD_PROXY,
            "http_proxy": DEAD_PROXY,
            "https_proxy": DEAD_PROXY,
            "all_proxy": DEAD_PROXY,
            "NO_PROXY": "127.0.0.1,localhost,::1",
            "no_proxy": "127.0.0.1,localhost,::1",
            "NO_COLOR": "1",
            "GIT_TERMINAL_PROMPT": "0",
        }
    )
    if extra:
        env.update(extra)
    return env


# --------------------------------------------------------------------------------------
# One-shot CLI commands
# --------------------------------------------------------------------------------------


def rollout_paths(home: Path) -> set[Path]:
    """All rollout files under ``sessions/`` and ``archived_sessions/``."""
    found: set[Path] = set()
    for sub in ("sessions", "archived_sessions"):
        root = home / sub
        if root.is_dir():
            found.update(p for p in root.rglob("rollout-*.jsonl*") if p.is_file())
    return found


def thread_id_of(rollout: Path) -> str:
    """The thread id encoded at the end of a rollout file name."""
    match = _ROLLOUT_ID_RE.search(rollout.name)
    if match is None:
        raise ValueError(f"not a rollout file name: {rollout.name}")
    return match.group(1)


def find_rollout(home: Path, thread_id: str) -> Path | None:
    """The rollout file of ``thread_id`` (active or archived), if any."""
    for path in rollout_paths(home):
        if path.name.endswith(f"{thread_id}.jsonl"):
            return path
    return None


def run_codex(
    home: Path,
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    timeout: float = 60,
    codex_bin: Path | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``codex ARGS`` against ``home`` with stdin closed; raise on failure if ``check``."""
    binary = _require_binary(codex_bin)
    proc = subprocess.run(
        [str(binary), *args],
        cwd=str(cwd or home.parent),
        env=codex_env(home),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise CodexError(
            f"codex {args[0] if args else ''} exited {proc.returncode}: {_tail(proc.stderr)}"
        )
    return proc


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def codex_exec(
    home: Path,
    prompt: str,
    *,
    cwd: Path | None = None,
    resume: str | None = None,
    timeout: float = 60,
    codex_bin: Path | None = None,
) -> str:
    """Run one ``codex exec`` turn (optionally resuming a thread); return the thread id."""
    before = rollout_paths(home)
    args = ["exec", "--skip-git-repo-check"]
    args += ["resume", resume, prompt] if resume else [prompt]
    proc = run_codex(home, args, cwd=cwd, timeout=timeout, codex_bin=codex_bin)
    match = _SESSION_ID_RE.search(proc.stderr) or _SESSION_ID_RE.search(proc.stdout)
    if match:
        return match.group(1)
    if resume:
        return resume
    new = sorted(rollout_paths(home) - before)
    if len(new) != 1:
        raise CodexError(f"cannot tell the thread id: {len(new)} new rollouts")
    return thread_id_of(new[0])


def codex_archive(home: Path, session: str, *, codex_bin: Path | None = None) -> str:
    """``codex archive SESSION`` (id or name); return its stdout."""
    return run_codex(home, ["archive", session], codex_bin=codex_bin).stdout


def codex_unarchive(home: Path, session: str, *, codex_bin: Path | None = None) -> str:
    """``codex unarchive SESSION`` (id or name); return its stdout."""
    return run_codex(home, ["unarchive", session], codex_bin=codex_bin).stdout


# --------------------------------------------------------------------------------------
# app-server (JSON-RPC over stdio, newline-delimited JSON)
# --------------------------------------------------------------------------------------


class AppServerError(RuntimeError):
    """A JSON-RPC error response from ``codex app-server``."""

    def __init__(self, method: str, error: Mapping[str, Any]) -> None:
        self.code = error.get("code")
        self.error = dict(error)
        super().__init__(f"{method}: {error.get('message', error)} (code {self.code})")


@dataclass
class _Pending:
    event: threading.Event = field(default_factory=threading.Event)
    message: dict[str, Any] | None = None


class AppServer:
    """A ``codex app-server`` child speaking JSON-RPC over stdio.

    Use as a context manager: it performs ``initialize`` + ``initialized`` on entry and
    always terminates and reaps the child on exit.  Notifications are collected in
    :attr:`notifications`; server-to-client requests (approvals etc.) are refused.
    """

    def __init__(
        self,
        home: Path,
        *,
        codex_bin: Path | None = None,
        client_name: str = "codex-indexd-e2e",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.home = home
        self.client_name = client_name
        self._argv = [str(_require_binary(codex_bin)), "app-server", *extra_args]
        self._proc: subprocess.Popen[str] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._notifications: list[dict[str, Any]] = []
        self._notified = threading.Condition(self._lock)
        self._stderr: deque[str] = deque(maxlen=50)
        self._threads: list[threading.Thread] = []
        self.initialize_result: dict[str, Any] = {}

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 20) -> Self:
        """Spawn the child and complete the initialize handshake."""
        self._proc = subprocess.Popen(
            self._argv,
            cwd=str(self.home.parent),
            env=codex_env(self.home),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
            start_new_session=True,
        )
        for target in (self._read_stdout, self._read_stderr):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        try:
            client_info = {"name": self.client_name, "version": "0"}
            self.initialize_result = self.request(
                "initialize", {"clientInfo": client_info}, timeout=timeout
            )
            self.notify("initialized")
        except BaseException:
            self.close()
            raise
        return self

    def close(self, timeout: float = 5) -> int | None:
        """Close stdin, then terminate/kill the child if needed; always reap it."""
        proc = self._proc
        if proc is None:
            return None
        with contextlib.suppress(OSError, ValueError):
            if proc.stdin:
                proc.stdin.close()
        rc = _reap(proc, timeout)
        for thread in self._threads:
            thread.join(timeout=2)
        for stream in (proc.stdout, proc.stderr):
            with contextlib.suppress(OSError, ValueError):
                if stream:
                    stream.close()
        return rc

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The child's pid while it exists."""
        return self._proc.pid if self._proc else None

    @property
    def stderr_tail(self) -> str:
        """The last lines the child wrote to stderr."""
        with self._lock:
            return "\n".join(self._stderr)

    # -- JSON-RPC ----------------------------------------------------------------------

    def _write(self, message: Mapping[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise CodexError("app-server not running")
        with self._write_lock:
            proc.stdin.write(json.dumps(message) + "\n")
            proc.stdin.flush()

    def notify(self, method: str, params: Mapping[str, Any] | None = None) -> None:
        """Send a notification (no response expected)."""
        message: dict[str, Any] = {"method": method}
        if params is not None:
            message["params"] = dict(params)
        self._write(message)

    def request(
        self, method: str, params: Mapping[str, Any] | None = None, timeout: float = 15
    ) -> Any:
        """Send a request and wait for its result; raise :class:`AppServerError` on error."""
        request_id = next(self._ids)
        pending = _Pending()
        with self._lock:
            self._pending[request_id] = pending
        try:
            self._write({"id": request_id, "method": method, "params": dict(params or {})})
            if not pending.event.wait(timeout):
                raise TimeoutError(f"{method}: no response in {timeout}s\n{self.stderr_tail}")
        finally:
            with self._lock:
                self._pending.pop(request_id, None)
        message = pending.message or {}
        if "error" in message:
            raise AppServerError(method, message["error"])
        if message.get("eof"):
            raise CodexError(f"{method}: app-server exited\n{self.stderr_tail}")
        return message.get("result")

    @property
    def notifications(self) -> list[dict[str, Any]]:
        """Snapshot of all notifications received so far."""
        with self._lock:
            return list(self._notifications)

    def wait_for_notification(
        self,
        method: str,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 15,
    ) -> dict[str, Any]:
        """Block until a notification ``method`` (matching ``predicate`` on params) arrives."""
        deadline = time.monotonic() + timeout
        with self._notified:
            while True:
                for note in self._notifications:
                    params = note.get("params") or {}
                    if note.get("method") == method and (predicate is None or predicate(params)):
                        return note
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {method} notification in {timeout}s")
                self._notified.wait(remaining)

    def _read_stdout(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        for raw in proc.stdout:
            line = raw.strip()
            if not line:
                continue
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                with self._lock:
                    self._stderr.append(f"[non-JSON stdout] {line[:200]}")
                continue
            self._dispatch(message)
        with self._lock:  # EOF: fail every waiter
            for pending in self._pending.values():
                pending.message = {"eof": True}
                pending.event.set()
            self._notified.notify_all()

    def _dispatch(self, message: dict[str, Any]) -> None:
        has_id = "id" in message
        if has_id and ("result" in message or "error" in message):
            with self._lock:
                pending = self._pending.get(message["id"])
            if pending is not None:
                pending.message = message
                pending.event.set()
        elif has_id and "method" in message:
            error = {"code": -32601, "message": "not supported by the e2e client"}
            with contextlib.suppress(OSError, CodexError, ValueError):
                self._write({"id": message["id"], "error": error})
        elif "method" in message:
            with self._notified:
                self._notifications.append(message)
                self._notified.notify_all()

    def _read_stderr(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        for line in proc.stderr:
            with self._lock:
                self._stderr.append(line.rstrip())

    # -- convenience -------------------------------------------------------------------

    def thread_list(self, **params: Any) -> dict[str, Any]:
        """``thread/list`` with camelCase params (e.g. ``sourceKinds=["exec"]``)."""
        result: dict[str, Any] = self.request("thread/list", params)
        return result

    def thread_list_all(self, **params: Any) -> list[dict[str, Any]]:
        """All pages of ``thread/list`` (all providers unless ``modelProviders`` given)."""
        params.setdefault("modelProviders", [])
        threads: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = self.thread_list(**params, cursor=cursor)
            threads.extend(page.get("data") or [])
            cursor = page.get("nextCursor")
            if not cursor:
                return threads

    def thread_read(self, thread_id: str, *, include_turns: bool = False) -> dict[str, Any]:
        """``thread/read``; returns the ``thread`` object."""
        result = self.request("thread/read", {"threadId": thread_id, "includeTurns": include_turns})
        thread: dict[str, Any] = result["thread"]
        return thread

    def thread_name_set(self, thread_id: str, name: str) -> None:
        """``thread/name/set`` (updates the DB and appends ``session_index.jsonl``)."""
        self.request("thread/name/set", {"threadId": thread_id, "name": name})


def _reap(proc: subprocess.Popen[Any], timeout: float) -> int:
    """Wait for ``proc``; SIGTERM then SIGKILL its process group if it lingers."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        _signal_group_or_pid(proc.pid, sig)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()


def _signal_group_or_pid(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


# --------------------------------------------------------------------------------------
# Managed app-server daemon (started by the TUI, survives it)
# --------------------------------------------------------------------------------------


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/PID/stat`` after the command name (index 0 = state)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()


def process_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    fields = _proc_stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _start_ticks(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _pid_from_pid_file(path: Path) -> int | None:
    """The pid in a Codex daemon pid file, if it still names the same process."""
    try:
        record = json.loads(path.read_text())
        pid = int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    identity = record.get("processIdentity") or {}
    boot_id, ticks = identity.get("bootId"), identity.get("startTicks")
    if boot_id is not None and boot_id != _boot_id():
        return None
    if ticks is not None and _start_ticks(pid) != int(ticks):
        return None
    return pid


def _pids_running_from(directory: Path) -> set[int]:
    """Pids whose command line mentions ``directory`` (a unique per-test path)."""
    needle = str(directory).encode()
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "cmdline").read_bytes():
                found.add(int(entry.name))
    found.discard(os.getpid())
    return found


def managed_daemon_pids(home: Path) -> set[int]:
    """Live pids of the managed app-server daemon (and its updater) for ``home``."""
    pids: set[int] = set()
    daemon_dir = home / "app-server-daemon"
    if daemon_dir.is_dir():
        for pid_file in daemon_dir.glob("*.pid"):
            pid = _pid_from_pid_file(pid_file)
            if pid is not None:
                pids.add(pid)
    pids |= _pids_running_from(home / "packages" / "app-server-daemon")
    return {pid for pid in pids if process_alive(pid)}


def _daemon_socket_targets(home: Path) -> list[Path]:
    targets: list[Path] = []
    for sub in ("app-server-daemon", "app-server-control"):
        directory = home / sub
        if not directory.is_dir():
            continue
        for link in directory.glob("*.sock"):
            with contextlib.suppress(OSError):
                if link.is_symlink():
                    targets.append(Path(os.readlink(link)))
    return targets


def stop_managed_daemon(
    home: Path, *, codex_bin: Path | None = None, timeout: float = 5
) -> set[int]:
    """Stop the managed app-server daemon of ``home``; return the pids that were signalled.

    Tries ``codex app-server daemon stop`` first, then SIGTERM/SIGKILL for whatever the
    pid files (identity-checked) or the home-specific binary path still show alive,
    including the processes' groups. Also removes the daemon's sockets under /tmp.
    """
    if not (home / "app-server-daemon").is_dir() and not managed_daemon_pids(home):
        return set()
    sockets = _daemon_socket_targets(home)
    binary = codex_bin or find_codex_binary()
    if binary is not None and managed_daemon_pids(home):
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            run_codex(
                home, ["app-server", "daemon", "stop"], timeout=15, codex_bin=binary, check=False
            )
    signalled: set[int] = set()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = managed_daemon_pids(home)
        if not pids:
            break
        for pid in pids:
            _signal_group_or_pid(pid, sig)
        signalled |= pids
        with contextlib.suppress(WaitTimeout):
            wait_for(
                lambda: not managed_daemon_pids(home),
                timeout=timeout,
                what="daemon exit",
                interval=POLL_S,
            )
    for target in sockets:
        if target.parent.name.startswith("codex-daemon-"):
            for stale in (target, target.with_name(target.name + ".lock")):
                with contextlib.suppress(OSError):
                    stale.unlink()
    return signalled


# --------------------------------------------------------------------------------------
# Interactive TUI under tmux
# --------------------------------------------------------------------------------------


def read_history(home: Path) -> list[dict[str, Any]]:
    """Parsed lines of ``history.jsonl`` (malformed lines skipped)."""
    path = home / "history.jsonl"
    if not path.exists():
        return []
    entries: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(line)
            if isinstance(value, dict):
                entries.append(value)
    return entries


def read_rollout(path: Path) -> list[dict[str, Any]]:
    """Parsed complete lines of a plain rollout file (malformed lines skipped)."""
    records: list[dict[str, Any]] = []
    with path.open("rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break  # partial tail: still being written
            with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError):
                value = json.loads(raw)
                if isinstance(value, dict):
                    records.append(value)
    return records


def turn_completed(home: Path, thread_id: str, turns: int = 1) -> bool:
    """True once the thread's rollout records ``turns`` ``task_complete`` events."""
    rollout = find_rollout(home, thread_id)
    if rollout is None:
        return False
    done = [
        r
        for r in read_rollout(rollout)
        if r.get("type") == "event_msg" and (r.get("payload") or {}).get("type") == "task_complete"
    ]
    return len(done) >= turns


def find_tmux_binary() -> Path | None:
    """tmux from PATH, else /usr/bin/tmux."""
    found = shutil.which("tmux")
    if found:
        return Path(found)
    fallback = Path("/usr/bin/tmux")
    return fallback if _is_executable(fallback) else None


class TuiSession:
    """The interactive Codex TUI running in a private tmux server.

    ``start()`` waits for the composer, ``submit(prompt)`` types a prompt and waits for
    its ``history.jsonl`` entry and the finished turn, ``quit()`` sends ``/quit``.
    ``close()`` (also on context exit) kills the tmux server and the managed app-server
    daemon the TUI spawned.
    """

    READY_MARKER = "for shortcuts"
    LOADING_RE = re.compile(r"^\s+loading\s*$", re.MULTILINE)
    """The header shows ``loading`` instead of the cwd until the thread is configured."""

    def __init__(
        self,
        home: Path,
        *,
        cwd: Path | None = None,
        codex_bin: Path | None = None,
        args: Sequence[str] = (),
        width: int = 160,
        height: int = 48,
        tmux_bin: Path | None = None,
    ) -> None:
        self.home = home
        self.cwd = cwd or home.parent
        self.codex_bin = _require_binary(codex_bin)
        self.args = list(args)
        self.width, self.height = width, height
        self._tmux = str(tmux_bin or find_tmux_binary() or "tmux")
        self._sock_dir = Path(tempfile.mkdtemp(prefix="cxtui-"))
        self._socket = self._sock_dir / "tmux.sock"
        self._session = f"codex-{uuid.uuid4().hex[:8]}"
        self._started = False

    # -- tmux plumbing -----------------------------------------------------------------

    def _tmux_cmd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self._tmux, "-S", str(self._socket), *args],
            capture_output=True,
            text=True,
            timeout=15,
            check=check,
            env=codex_env(self.home, {"TERM": "xterm-256color"}),
        )

    def capture(self) -> str:
        """The visible pane text."""
        proc = self._tmux_cmd("capture-pane", "-p", "-J", "-t", self._session, check=False)
        return proc.stdout

    def pane_dead(self) -> bool:
        """True once the Codex process in the pane has exited."""
        proc = self._tmux_cmd(
            "display-message", "-p", "-t", self._session, "#{pane_dead}", check=False
        )
        return proc.returncode != 0 or proc.stdout.strip() == "1"

    def send_text(self, text: str) -> None:
        """Type literal text into the pane; text with line breaks arrives as one bracketed paste.

        Typed line breaks would be Enter presses: the TUI submits on one unless it arrives
        within a paste burst, which depends on the machine's load.
        """
        if "\n" not in text:
            self._tmux_cmd("send-keys", "-t", self._session, "-l", text)
            return
        buffer = f"paste-{uuid.uuid4().hex[:8]}"
        self._tmux_cmd("set-buffer", "-b", buffer, text)
        self._tmux_cmd("paste-buffer", "-p", "-d", "-b", buffer, "-t", self._session)

    def send_key(self, key: str) -> None:
        """Press a tmux key name (``Enter``, ``C-c``, ``Escape``...)."""
        self._tmux_cmd("send-keys", "-t", self._session, key)

    def wait_for_screen(self, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
        """Poll the pane until ``predicate(text)`` holds; return that text."""

        def probe() -> str | None:
            screen = self.capture()
            return screen if predicate(screen) else None

        try:
            return wait_for(probe, timeout=timeout, what=what, interval=POLL_S)
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}\n--- screen ---\n{self.capture()}") from None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 30) -> Self:
        """Launch Codex in a detached tmux session and wait until the composer is ready."""
        env = codex_env(self.home, {"TERM": "xterm-256color"})
        env_flags = [
            arg
            for key in ("CODEX_HOME", "HOME", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
            for arg in ("-e", f"{key}={env[key]}")
        ]
        command = shlex.join([str(self.codex_bin), *self.args])
        self._started = True
        self._tmux_cmd(
            "-f", "/dev/null", "new-session", "-d", "-s", self._session,
            "-x", str(self.width), "-y", str(self.height),
            "-c", str(self.cwd), *env_flags, command,
            ";", "set-option", "-t", self._session, "remain-on-exit", "on",
        )  # fmt: skip
        self.wait_for_screen(self._ready, timeout, "TUI composer")
        return self

    def _ready(self, screen: str) -> bool:
        return self.READY_MARKER in screen and not self.LOADING_RE.search(screen)

    def submit(self, prompt: str, timeout: float = 30) -> dict[str, Any]:
        """Submit ``prompt``; wait for its history entry and the completed turn; return it."""
        existing = len(read_history(self.home))
        first_line = prompt.splitlines()[0][:40]
        self.send_text(prompt)
        self.wait_for_screen(lambda s: first_line in s, timeout, "prompt echoed in composer")
        self.send_key("Enter")

        def new_entry() -> dict[str, Any] | None:
            entries = read_history(self.home)[existing:]
            return next((e for e in entries if e.get("text") == prompt), None)

        entry = wait_for(new_entry, timeout=timeout, what="history.jsonl entry", interval=POLL_S)
        thread_id = str(entry.get("session_id"))
        wait_for(
            lambda: turn_completed(self.home, thread_id),
            timeout=timeout,
            what="turn end",
            interval=POLL_S,
        )
        return entry

    def quit(self, timeout: float = 15) -> None:
        """Type ``/quit`` and wait for the TUI process to exit."""
        self.send_text("/quit")
        self.wait_for_screen(lambda s: "/quit" in s, timeout, "slash command typed")
        self.send_key("Enter")
        wait_for(self.pane_dead, timeout=timeout, what="TUI exit", interval=POLL_S)

    def close(self) -> None:
        """Kill the tmux server, the TUI and the managed daemon; remove the socket dir."""
        if self._started:
            self._tmux_cmd("kill-server", check=False)
            self._started = False
        stop_managed_daemon(self.home, codex_bin=self.codex_bin)
        shutil.rmtree(self._sock_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


__all__ = [
    "CODEX_VERSION",
    "PINNED_CODEX",
    "AppServer",
    "AppServerError",
    "CodexError",
    "MockResponsesServer",
    "RecordedRequest",
    "TuiSession",
    "codex_archive",
    "codex_env",
    "codex_exec",
    "codex_unarchive",
    "config_toml",
    "find_codex_binary",
    "find_rollout",
    "find_tmux_binary",
    "make_codex_home",
    "managed_daemon_pids",
    "read_history",
    "read_rollout",
    "rollout_paths",
    "run_codex",
    "stop_managed_daemon",
    "thread_id_of",
    "turn_completed",
]


# --------------------------------------------------------------------------------------
# codex-indexd (the product under test) and file inspection
# --------------------------------------------------------------------------------------

INDEXD_DIR_VARS = {
    "CODEX_INDEXD_STATE_DIR": "state",
    "CODEX_INDEXD_CACHE_DIR": "cache",
    "CODEX_INDEXD_LOG_DIR": "log",
    "CODEX_INDEXD_CONFIG": "config.toml",
}


def indexd_env(base: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for ``python -m codex_indexd`` with every own dir isolated under ``base``.

    Inherited ``CODEX_*`` variables (``CODEX_HOME``, crash-test hooks...) are dropped.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEX_")}
    env.update({name: str(base / sub) for name, sub in INDEXD_DIR_VARS.items()})
    if extra:
        env.update(extra)
    return env


def run_indexd(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    timeout: float = 60,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m codex_indexd ARGS`` from the repo; raise on a non-zero exit if ``check``."""
    proc = subprocess.run(
        [sys.executable, "-m", "codex_indexd", *args],
        cwd=str(REPO_ROOT),
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise CodexError(
            f"codex_indexd {' '.join(args[:1])} exited {proc.returncode}:\n"
            f"{_tail(proc.stdout)}\n{_tail(proc.stderr)}"
        )
    return proc


def read_jsonl_strict(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSONL file parsed; raises if any line is not a JSON object or the
    file does not end with a newline (empty or missing file: ``[]``)."""
    if not path.exists():
        return []
    data = path.read_bytes()
    if not data:
        return []
    if not data.endswith(b"\n"):
        raise ValueError(f"{path.name} does not end with a newline: {data[-80:]!r}")
    out: list[dict[str, Any]] = []
    for number, raw in enumerate(data.split(b"\n")[:-1], 1):
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise ValueError(f"{path.name}:{number} is not an object: {raw[:80]!r}")
        out.append(value)
    return out


def read_index_lines(home: Path) -> list[dict[str, Any]]:
    """Parsed ``session_index.jsonl`` lines (strict: every line must parse)."""
    return read_jsonl_strict(home / "session_index.jsonl")


def latest_index_names(home: Path) -> dict[str, str]:
    """Thread id -> name of its last ``session_index.jsonl`` line (last line wins)."""
    return {line["id"]: line["thread_name"] for line in read_index_lines(home)}


def rollout_user_texts(home: Path, thread_id: str) -> list[str]:
    """Texts of the user turns recorded in a thread's rollout, in order."""
    rollout = find_rollout(home, thread_id)
    if rollout is None:
        return []
    texts: list[str] = []
    for record in read_rollout(rollout):
        payload = record.get("payload") or {}
        item = payload.get("item") or {}
        if (
            record.get("type") == "event_msg"
            and payload.get("type") == "item_completed"
            and item.get("type") == "UserMessage"
        ):
            texts.append("".join(c.get("text", "") for c in item.get("content") or []))
    return texts


def pids_with_open(path: Path) -> set[int]:
    """Pids that currently hold ``path`` open (scans ``/proc/*/fd``)."""
    target = str(path)
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == target:
                        found.add(int(entry.name))
                        break
    return found


__all__ += [
    "indexd_env",
    "latest_index_names",
    "pids_with_open",
    "read_index_lines",
    "read_jsonl_strict",
    "rollout_user_texts",
    "run_indexd",
]
