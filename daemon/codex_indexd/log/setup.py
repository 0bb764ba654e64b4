"""structlog through stdlib logging: JSON lines to a rotating file, readable lines on stderr.

watchdog's and sqlite's own stdlib records go through the same handlers. No call site may
pass prompt text; events carry ids, paths, counts and reasons only.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

from codex_indexd.log.deferred import asyncio_deferred

with asyncio_deferred():
    import structlog

from codex_indexd.store import dirs
from codex_indexd.store.files import LOG_FILE_NAME

MAX_BYTES = 5 * 1024 * 1024
BACKUP_COUNT = 5

_shared: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


class _PrivateRotatingHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler whose files are created 0600."""

    def _open(self):  # type: ignore[no-untyped-def]
        old = os.umask(0o077)
        try:
            return super()._open()
        finally:
            os.umask(old)


def _formatter(renderer: structlog.types.Processor) -> structlog.stdlib.ProcessorFormatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )


def configure(
    *, level: str = "info", log_file: bool = True, stderr: bool = True, log_dir: Path | None = None
) -> Path | None:
    """Configure logging once for the process; return the JSON log file path (or None)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    file_path: Path | None = None
    if stderr:
        handler = logging.StreamHandler(sys.stderr)
        if sys.stderr.isatty():
            renderer: structlog.types.Processor = structlog.dev.ConsoleRenderer(colors=True)
        else:
            renderer = structlog.processors.LogfmtRenderer(
                key_order=["level", "event"], drop_missing=True
            )
        handler.setFormatter(_formatter(renderer))
        root.addHandler(handler)
    if log_file:
        directory = dirs.private_dir(log_dir or dirs.log_dir())
        os.chmod(directory, 0o700)
        file_path = directory / LOG_FILE_NAME
        file_handler = _PrivateRotatingHandler(
            file_path, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8"
        )
        file_handler.setFormatter(_formatter(structlog.processors.JSONRenderer()))
        root.addHandler(file_handler)
    structlog.configure(
        processors=[*_shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    return file_path
