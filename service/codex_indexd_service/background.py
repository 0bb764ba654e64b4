"""Fallback when no user service manager is reachable (containers, WSL without systemd):
start the daemon detached, so `service install` still leaves a running daemon."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from typing import TextIO

from codex_indexd_service.command_runner import Runner
from codex_indexd_service.context import Context
from codex_indexd_service.daemon_link import DaemonLink

# Set in the environment of a daemon started here, so `status` can say who started it.
STARTED_BY = "CODEX_INDEXD_STARTED_BY"


def manager_reachable(ctx: Context, run: Runner) -> bool:
    """True when `systemctl --user` answers (or on macOS, where launchd is always there)."""
    if ctx.manager != "systemd":
        return True
    return run.run(("systemctl", "--user", "show-environment")).ok


def start_detached(ctx: Context, link: DaemonLink, out: TextIO, timeout_s: float = 15.0) -> int:
    """Start `codex-indexd run` in its own session, wait until it holds its lock; exit code."""
    lock = link.lock_of(ctx.codex_home)
    running = link.holder_pid(lock)
    if running:
        # `install` (re)starts: the running daemon may be older code or an older config.
        print(f"Restarting the background daemon (pid {running}) to run this code.", file=out)
        if stop_detached(ctx, link, out):
            return 1
    log_dir = link.log_dir
    log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    stderr_log = log_dir / "daemon-stderr.log"
    fd = os.open(stderr_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = subprocess.Popen(
            ctx.argv,
            env={**os.environ, STARTED_BY: "service install (background, no user manager)"},
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(fd)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if link.holder_pid(lock) == proc.pid:
            print(
                f"No user service manager is reachable here, so the daemon was started in the "
                f"background instead (pid {proc.pid}); it will not come back after a reboot. "
                f"Output: {stderr_log}.",
                file=out,
            )
            return 0
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    print(f"error: the daemon did not start (exit {proc.poll()}); see {stderr_log}", file=out)
    return 1


def stop_detached(ctx: Context, link: DaemonLink, out: TextIO, timeout_s: float = 10.0) -> int:
    """Stop the daemon `start_detached` started for this home (SIGTERM, then wait until it
    let go of its lock); exit code."""
    lock = link.lock_of(ctx.codex_home)
    pid = link.holder_pid(lock)
    if pid is None:
        print(f"No codex-indexd daemon runs for {ctx.codex_home}; nothing to stop.", file=out)
        return 0
    with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while link.holder_pid(lock) == pid:
        if time.monotonic() > deadline:
            print(f"error: the daemon (pid {pid}) did not stop within {timeout_s:g} s", file=out)
            return 1
        time.sleep(0.05)
    print(f"Stopped the background codex-indexd daemon (pid {pid}).", file=out)
    return 0


def status(ctx: Context, link: DaemonLink, out: TextIO) -> int:
    """Report the background daemon (no user manager is reachable); 0 while it runs, 3 not."""
    pid = link.holder_pid(link.lock_of(ctx.codex_home))
    print("manager:    none reachable (systemctl --user does not answer)", file=out)
    if pid is None:
        print(f"state:      not running for {ctx.codex_home}", file=out)
        print("            start it with: codex-indexd service install", file=out)
        return 3
    print(f"state:      running in the background (pid {pid}) for {ctx.codex_home}", file=out)
    print(
        "            started by `codex-indexd service install` without a service manager: "
        "it will not come back after a reboot",
        file=out,
    )
    return 0
