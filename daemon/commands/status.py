"""`codex-indexd status`: is the daemon running, and what is wrong in each home.

Exit 0 when all is well, 1 when there is drift, an error, or no daemon running.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from codex_indexd import logs
from codex_indexd import settings as settings_mod
from codex_indexd.codex.home import CodexHome
from codex_indexd.diagnose import lock_holders
from codex_indexd.engine import gather, plan_for
from codex_indexd.index.model import Policy
from codex_indexd.status_file import instance_lock_path, read_status
from codex_indexd.write.locks import holder_pid


def heal_report(facts: Any, mode: str, binary: str | None) -> tuple[dict[str, int], list[str]]:
    """Return the DB drift counts and, when healing cannot run, why and how to enable it."""
    from codex_indexd.heal import check_codex, detect

    found = detect(facts)
    counts = {k: v for k, v in found.counts().items() if v}
    notes: list[str] = []
    if counts:
        check = check_codex(mode, binary, timeout_s=5.0)
        if not check.usable:
            notes.append(
                f"Codex's DB lost {', '.join(f'{k} {v}' for k, v in counts.items())}, and healing "
                f"through Codex is off: {check.reason}. {check.hint}"
            )
    return counts, notes


def home_report(
    root: Path, policy: Policy, heal_mode: str = "auto", heal_binary: str | None = None
) -> dict[str, Any]:
    """Return the status of one home: the daemon's record plus a live drift check."""
    home = CodexHome.at(root)
    record = read_status(home.root) or {}
    pid = holder_pid(instance_lock_path(home.root))
    facts = gather(home)
    live_policy = Policy(
        max_threads=policy.max_threads,
        include_orphans=policy.include_orphans,
        history_sources=policy.history_sources,
        history_max_bytes=facts.config.history_max_bytes,
        history_enabled=facts.config.history_persistence != "none",
    )
    plan = plan_for(facts, live_policy)
    warnings: list[str] = []
    errors: list[str] = []
    if facts.config.history_persistence == "none":
        warnings.append(
            'history persistence is off in Codex\'s config.toml ([history] persistence = "none"): '
            "history.jsonl is never written"
        )
    holders = lock_holders(home.session_index_lock)
    if holders:
        warnings.append(
            f"session_index.jsonl.lock is held right now by pid {', '.join(map(str, holders))}"
        )
    if record.get("lock_busy"):
        last = record.get("last_lock_busy", {})
        warnings.append(
            f"a Codex lock was busy {record['lock_busy']} time(s); "
            f"last on {last.get('path')} at {last.get('at')}"
        )
    if facts.db_error is not None:
        errors.append(f"state DB unreadable ({facts.db_error.kind}): {facts.db_error.detail}")
    elif facts.db_path is None:
        warnings.append(
            "no state DB (state_<N>.sqlite) found: names come from rollouts and the index only"
        )
    refused = (w for w in facts.warnings if w.event == "index_file.refused")
    errors.extend(f"{w.path} {w.detail}; not reading it" for w in refused)
    for kind, info in (record.get("errors") or {}).items():
        errors.append(f"{kind}: {info.get('detail') or info.get('file')} (at {info.get('at')})")
    db_drift, heal_notes = heal_report(facts, heal_mode, heal_binary)
    warnings.extend(heal_notes)
    for name in record.get("paused_files") or []:
        errors.append(f"writes to {name} are paused: another writer keeps undoing our repairs")
    return {
        "codex_home": str(home.root),
        "daemon_pid": pid,
        "sessions": facts.rollout_files,
        "threads": len(facts.threads) if facts.threads is not None else None,
        "db_path": str(facts.db_path) if facts.db_path else None,
        "watcher": record.get("watcher") if pid else None,
        "service_manager": record.get("service_manager") if pid else None,
        "started_at": record.get("started_at") if pid else None,
        "last_reconcile": {
            "at": record.get("last_reconcile_at"),
            "reason": record.get("last_reconcile_reason"),
        },
        "last_repair": record.get("last_repair"),
        "drift": plan.drift.counts(),
        "db_drift": db_drift,
        "last_heal": record.get("last_heal"),
        "skipped_input": len(facts.warnings),
        "warnings": warnings,
        "errors": errors,
    }


def render(report: dict[str, Any]) -> list[str]:
    out = [f"home {report['codex_home']}"]
    if report["daemon_pid"]:
        out.append(
            f"  daemon: running (pid {report['daemon_pid']}, since {report['started_at']}, "
            f"managed by {report['service_manager']})"
        )
        out.append(f"  watcher: {report['watcher']}")
    else:
        out.append(
            "  daemon: NOT running — start it with 'codex-indexd service install' "
            "(or 'codex-indexd run')"
        )
    threads = report["threads"] if report["threads"] is not None else "no DB"
    out.append(f"  sessions: {report['sessions']} rollout files, threads: {threads}")
    last = report["last_reconcile"]
    out.append(
        f"  last reconcile: {last.get('at') or 'never'}"
        + (f" ({last['reason']})" if last.get("reason") else "")
    )
    repair = report["last_repair"]
    if repair:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(repair.get("reasons", {}).items()))
        out.append(
            f"  last repair: {repair['at']}: +{repair['index_lines_added']} index lines, "
            f"+{repair['history_lines_added']} history lines ({reasons})"
        )
    else:
        out.append("  last repair: never")
    drift = report["drift"]
    out.append(
        "  drift now: "
        + (", ".join(f"{k} {v}" for k, v in sorted(drift.items())) if drift else "none")
    )
    if report["db_drift"]:
        out.append(
            "  Codex DB drift: "
            + ", ".join(f"{k} {v}" for k, v in sorted(report["db_drift"].items()))
        )
    if report["last_heal"]:
        out.append(f"  last DB heal: {report['last_heal']['at']}: {report['last_heal']['summary']}")
    if report["skipped_input"]:
        out.append(
            f"  skipped input: {report['skipped_input']} file(s) or line(s) "
            "(see 'codex-indexd repair --dry-run')"
        )
    out.extend(f"  warning: {w}" for w in report["warnings"])
    out.extend(f"  ERROR: {e}" for e in report["errors"])
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="codex-indexd status", description=__doc__)
    parser.add_argument("--codex-home", type=Path, action="append", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    logs.set_configure_hook(
        lambda: __import__("codex_indexd.logsetup").logsetup.configure(
            level="error", log_file=False
        )
    )
    try:
        resolved = settings_mod.load(
            {"homes": [str(p) for p in args.codex_home] if args.codex_home else None}
        )
    except settings_mod.ConfigError as exc:
        print(f"codex-indexd: config error: {exc}", file=sys.stderr)
        return 2
    from codex_indexd.runner import policy_from_settings

    policy = policy_from_settings(resolved)
    mode, binary = resolved["codex_api.mode"], resolved["codex_api.binary"] or None
    reports = [home_report(home, policy, mode, binary) for home in resolved.homes]
    if args.json:
        print(json.dumps({"homes": reports}, indent=2))
    else:
        for report in reports:
            print("\n".join(render(report)))
    bad = any(r["drift"] or r["db_drift"] or r["errors"] or not r["daemon_pid"] for r in reports)
    return 1 if bad else 0
