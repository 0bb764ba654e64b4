"""``python -m codex_indexd_service …`` runs the service CLI (used by the e2e test)."""

from __future__ import annotations

import sys

from codex_indexd_service.service_command import main

raise SystemExit(main(sys.argv[1:]))
