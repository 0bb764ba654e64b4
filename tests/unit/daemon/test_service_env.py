"""Which service manager started the daemon, from its environment; the lock-holder sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from codex_indexd.daemon.service_env import lock_holder_message, service_manager
from codex_indexd.write.locks import AlreadyRunning


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"INVOCATION_ID": "abc"}, "systemd"),
        ({"NOTIFY_SOCKET": "/run/x"}, "systemd"),
        ({"XPC_SERVICE_NAME": "com.github.codex-indexd"}, "launchd"),
        (
            {"CODEX_INDEXD_STARTED_BY": "service install (background)"},
            "service install (background)",
        ),
        ({}, "none (started by hand)"),
    ],
)
def test_service_manager_from_the_environment(environ: dict[str, str], expected: str) -> None:
    assert service_manager(environ) == expected


def test_lock_holder_message_names_pid_and_lock() -> None:
    exc = AlreadyRunning(Path("/state/locks/h.lock"), "4242")
    text = lock_holder_message(exc)
    assert "pid 4242" in text and "/state/locks/h.lock" in text
