"""Which service manager runs codex-indexd (for ``status`` and the ``logs`` hint)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from codex_indexd_service import LABEL, UNIT_NAME
from codex_indexd_service.command_runner import Runner, SubprocessRunner
from codex_indexd_service.context import Manager

__all__ = ("Detection", "detect")

_ACTIVE = {"active", "activating", "reloading", "deactivating"}


@dataclass(frozen=True)
class Detection:
    """The manager found (None if none) and how it was found."""

    manager: Manager | None
    reason: str
    running_under: bool = False  # True when *this* process was started by that manager


def detect(
    env: Mapping[str, str] | None = None,
    runner: Runner | None = None,
    platform: str | None = None,
) -> Detection:
    """Tell whether systemd or launchd runs us, or else runs the installed service.

    Order: our own environment (``INVOCATION_ID``/``NOTIFY_SOCKET`` set by systemd,
    ``XPC_SERVICE_NAME`` set by launchd to our label), then asking the manager
    (``systemctl --user is-active``, ``launchctl print``).
    """
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    for key in ("INVOCATION_ID", "NOTIFY_SOCKET"):
        if env.get(key):
            return Detection("systemd", f"{key} is set: this process runs under systemd", True)
    if env.get("XPC_SERVICE_NAME") == LABEL:
        return Detection("launchd", f"XPC_SERVICE_NAME={LABEL}: this process is the agent", True)
    runner = runner or SubprocessRunner()
    if platform.startswith("linux"):
        result = runner.run(("systemctl", "--user", "is-active", UNIT_NAME))
        state = result.stdout.strip()
        if state in _ACTIVE:
            return Detection("systemd", f"systemctl --user is-active {UNIT_NAME}: {state}")
    elif platform == "darwin":
        uid = os.getuid()
        result = runner.run(("launchctl", "print", f"gui/{uid}/{LABEL}"))
        if result.ok:
            return Detection("launchd", f"launchctl print gui/{uid}/{LABEL} found the agent")
    return Detection(None, "no service manager runs codex-indexd")
