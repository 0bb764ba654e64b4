"""What the daemon knows and says of the service manager that started it."""

from __future__ import annotations

import os
from collections.abc import Mapping

from codex_indexd.write.locks import AlreadyRunning

EXIT_ALREADY_RUNNING = 75


def service_manager(environ: Mapping[str, str] | None = None) -> str:
    """Return which service manager started this process, from its environment."""
    env = os.environ if environ is None else environ
    if env.get("INVOCATION_ID") or env.get("NOTIFY_SOCKET"):
        return "systemd"
    if env.get("XPC_SERVICE_NAME", "").startswith("com."):
        return "launchd"
    if env.get("CODEX_INDEXD_STARTED_BY"):
        return str(env["CODEX_INDEXD_STARTED_BY"])
    return "none (started by hand)"


def lock_holder_message(exc: AlreadyRunning) -> str:
    """Return the sentence for a home another daemon already serves."""
    return (
        f"codex-indexd is already running for this Codex home (pid {exc.pid or '?'}; "
        f"lock {exc.path}). "
        "Stop it first, or use 'codex-indexd status'."
    )
