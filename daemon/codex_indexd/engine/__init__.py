"""The engine shared by `repair`, `status` and the daemon: read a home's facts (one-shot with
`gather`, or kept current by the live view in `engine.live`), plan (pure, `index.plan`), and
apply the plan through the writers."""

from codex_indexd.codex.scan_queue import PARALLEL_SCAN_BYTES
from codex_indexd.engine.apply import ApplyResult, Targets, apply_plan, recover
from codex_indexd.engine.gather import HomeFacts, gather, plan_for, read_state_db
from codex_indexd.engine.reading import (
    InputWarning,
    Progress,
    keep_scan,
    report_scan,
    scan_rollouts,
)

__all__ = [
    "PARALLEL_SCAN_BYTES",
    "ApplyResult",
    "HomeFacts",
    "InputWarning",
    "Progress",
    "Targets",
    "apply_plan",
    "gather",
    "keep_scan",
    "plan_for",
    "read_state_db",
    "recover",
    "report_scan",
    "scan_rollouts",
]
