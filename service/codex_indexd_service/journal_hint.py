"""Where the service's own output is, for `codex-indexd logs`: under systemd its stdout and
stderr go to the journal, and the hint names the `journalctl` command that shows them."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from codex_indexd_service import UNIT_NAME
from codex_indexd_service.command_runner import Runner
from codex_indexd_service.context import resolve
from codex_indexd_service.manager import detect
from codex_indexd_service.systemd import journal_command

__all__ = ("journal_hint",)

_JOURNAL_PRIORITY = {
    "debug": "debug",
    "info": "info",
    "warning": "warning",
    "error": "err",
    "critical": "crit",
}


def journal_hint(
    *,
    follow: bool,
    lines: int | None,
    since: datetime | None,
    level: str | None,
    runner: Runner | None = None,
) -> str | None:
    """Return the hint (two lines) when the service runs, or is installed, under systemd on
    this machine; None otherwise. The command shows the same entries: `lines`, `since`, the
    minimum `level`, followed when `follow`."""
    if not sys.platform.startswith("linux"):
        return None
    found = detect(runner=runner)
    if found.manager != "systemd" and not resolve("systemd").unit_path.exists():
        return None
    stamp = since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if since else None
    command = journal_command(
        follow=follow, lines=lines, since=stamp, priority=_JOURNAL_PRIORITY.get(level or "")
    )
    quoted = " ".join(f'"{a}"' if " " in a else a for a in command)
    return (
        f"hint: {UNIT_NAME} runs under systemd; its stdout/stderr are in the journal:\n"
        f"      {quoted}"
    )
