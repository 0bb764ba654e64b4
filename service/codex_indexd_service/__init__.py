"""codex-indexd as a user service: systemd user unit, launchd agent, and where their output goes.

Entry points: :func:`codex_indexd_service.service_command.main` (``codex-indexd service …``) and
:func:`codex_indexd_service.journal_hint.journal_hint` (the journal hint of ``codex-indexd logs``).
"""

from __future__ import annotations

__all__ = ("APP", "LABEL", "UNIT_NAME")

APP = "codex-indexd"
UNIT_NAME = "codex-indexd.service"
LABEL = "com.github.codex-indexd"
