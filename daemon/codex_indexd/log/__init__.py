"""Our logging: lazy loggers for every module (`get_logger`), the process's setup
(`setup.configure`), what a line may say of an exception (`redact`), and reading the JSON log
back (`entries`, `follow`)."""

from __future__ import annotations

from codex_indexd.log.lazy import get_logger, set_configure_hook

__all__ = ("configure_on_first_log", "get_logger", "set_configure_hook")


def configure_on_first_log(*, level: str, log_file: bool) -> None:
    """Configure logging (`setup.configure`) just before the first log line, if any: a
    command that logs nothing never imports structlog."""

    def hook() -> None:
        from codex_indexd.log.setup import configure

        configure(level=level, log_file=log_file)

    set_configure_hook(hook)
