"""Loggers that import structlog only when they first log.

`repair` on a clean home logs nothing, so it never pays for importing structlog (about
10 MB of RSS, a third of its peak); the daemon configures logging at start anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_configure: Callable[[], None] | None = None


def set_configure_hook(hook: Callable[[], None] | None) -> None:
    """Run `hook` (a `codex_indexd.log.setup.configure` call) just before the first log line,
    if any."""
    global _configure
    _configure = hook


class LazyLogger:
    """A structlog bound logger, created on first use."""

    __slots__ = ("_name", "_real")

    def __init__(self, name: str) -> None:
        self._name = name
        self._real: Any = None

    def __getattr__(self, attr: str) -> Any:
        # Every log call comes here (the logger has no such attributes itself): a hook set
        # since this logger last logged runs first, whichever logger logs first after it.
        global _configure
        if _configure is not None:
            hook, _configure = _configure, None
            hook()
        if self._real is None:
            from codex_indexd.log.deferred import asyncio_deferred

            with asyncio_deferred():
                import structlog

            self._real = structlog.get_logger(self._name)
        return getattr(self._real, attr)


def get_logger(name: str) -> Any:
    """Return a logger for `name` that costs nothing until it logs."""
    return LazyLogger(name)
