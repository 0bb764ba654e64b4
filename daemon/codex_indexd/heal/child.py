"""Running `codex` children boundedly: their own process group, a timeout on every wait, a
cap on what is read from them, and always reaped (with the rest of their group killed)."""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

STDERR_LINES = 20
_READ = 1 << 16
_VERSION_RE = re.compile(r"(\d+)\.(\d+)\.(\d+)")


class AppServerError(Exception):
    """The app-server could not answer. `kind`: spawn, timeout, exited, protocol or rpc."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class RpcError(AppServerError):
    """A JSON-RPC error response; the child is still usable."""

    def __init__(self, method: str, error: Mapping[str, Any]) -> None:
        code = error.get("code")
        self.code = code if isinstance(code, int) else None
        self.rpc_message = str(error.get("message", ""))[:300]
        super().__init__("rpc", f"{method}: {self.rpc_message} (code {self.code})")


def child_env(codex_home: Path, env: Mapping[str, str] | None) -> dict[str, str]:
    """Return the child's environment: `env` (default ours) with `CODEX_HOME` set."""
    out = dict(os.environ if env is None else env)
    out["CODEX_HOME"] = str(codex_home)
    return out


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _exited(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait up to `timeout` for the child to exit, leaving it unreaped where the OS allows.

    An unreaped child keeps its process-group id taken, so the group can be signalled
    afterwards without any risk of hitting a recycled id.
    """
    deadline = time.monotonic() + timeout
    waitid = getattr(os, "waitid", None)
    while True:
        if proc.returncode is not None:
            return True
        if waitid is not None:
            try:
                if waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                    return True
            except ChildProcessError:
                proc.poll()
                return True
        elif proc.poll() is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def reap(proc: subprocess.Popen[bytes], grace_s: float = 2.0) -> int | None:
    """End `proc` (a session leader) and every process of its group; return its exit status.

    Waits `grace_s` for a voluntary exit, then SIGTERM, then SIGKILL, to the whole group.
    Processes the child left behind in its group are killed too.
    """
    pgid = proc.pid
    if not _exited(proc, grace_s):
        _kill_group(pgid, signal.SIGTERM)
        if not _exited(proc, grace_s):
            _kill_group(pgid, signal.SIGKILL)
            _exited(proc, max(grace_s, 5.0))
    _kill_group(pgid, signal.SIGKILL)  # stragglers; the leader is a zombie or gone
    try:
        return proc.wait(timeout=max(grace_s, 5.0))
    except (subprocess.TimeoutExpired, ChildProcessError):
        return proc.returncode


def run_bounded(
    argv: list[str],
    *,
    what: str,
    env: Mapping[str, str],
    timeout_s: float,
    read_stderr: bool = False,
    cwd: Path | None = None,
    limit: int = 1 << 16,
    enough: Callable[[bytes], bool] | None = None,
    grace_s: float = 2.0,
) -> tuple[int | None, bytes]:
    """Run `argv` in its own process group (stdin closed) and read its stdout, or its stderr
    when `read_stderr`, until EOF or until `enough(output)`; return its exit status and the
    last `limit` bytes read. `what` says what a timeout means ("X did not answer"). Raises
    AppServerError (`spawn` when it cannot run, `timeout` when it does not finish in
    `timeout_s`); the child and its group are always reaped."""
    pipe, devnull = subprocess.PIPE, subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            argv,
            stdin=devnull,
            stdout=devnull if read_stderr else pipe,
            stderr=pipe if read_stderr else devnull,
            cwd=None if cwd is None else str(cwd),
            env=dict(env),
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        raise AppServerError("spawn", f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    stream = proc.stderr if read_stderr else proc.stdout
    assert stream is not None
    out = b""
    status: int | None = None
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(stream, selectors.EVENT_READ)
            deadline = time.monotonic() + timeout_s
            while enough is None or not enough(out):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AppServerError("timeout", f"{what} in {timeout_s:g}s")
                if not sel.select(remaining):
                    continue
                chunk = os.read(stream.fileno(), 4096)
                if not chunk:
                    break
                out = (out + chunk)[-limit:]
    finally:
        stream.close()
        status = reap(proc, grace_s=min(grace_s, timeout_s))
    return status, out


def run_version(
    binary: str, *, env: Mapping[str, str] | None = None, timeout_s: float = 10.0
) -> tuple[int, int, int] | None:
    """Return `binary --version` as (major, minor, patch), or None when it does not say.
    Raises AppServerError (`spawn`, `timeout`)."""

    def answered(out: bytes) -> bool:
        return b"\n" in out and _VERSION_RE.search(out.decode("utf-8", "replace")) is not None

    _, out = run_bounded(
        [binary, "--version"],
        what=f"{binary} --version did not answer",
        env=os.environ if env is None else env,
        timeout_s=timeout_s,
        limit=4096,
        enough=answered,
    )
    match = _VERSION_RE.search(out.decode("utf-8", "replace"))
    if match is None:
        return None
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch
