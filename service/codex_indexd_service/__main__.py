"""``python -m codex_indexd_service …`` runs the service CLI on its own (the e2e test runs it
with a stand-in daemon). Without the daemon's link it cannot fall back to a background
daemon where no user service manager is reachable; ``codex-indexd service`` can."""

from __future__ import annotations

import sys

from codex_indexd_service.service_command import main

raise SystemExit(main(sys.argv[1:]))
