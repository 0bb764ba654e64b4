"""`codex-indexd repair` once its start (`commands.repair`) is done: the facts gathered (the
rollouts' scan already begun), the plan, the writes unless a dry run, the report."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from codex_indexd import records
from codex_indexd.codex.home import CodexHome
from codex_indexd.codex.indexfiles import read_history
from codex_indexd.codex.scan_queue import StartedScan
from codex_indexd.commands.progress import progress_bar
from codex_indexd.commands.repair_summary import build_report, summary_lines
from codex_indexd.engine import HomeFacts, gather, recover
from codex_indexd.engine.policy import home_policy
from codex_indexd.engine.reconcile import Reconciled, reconcile, write_all
from codex_indexd.heal import detect
from codex_indexd.index.history import TUI_TURN_WINDOW_S, threads_with_recent_turns
from codex_indexd.index.model import OnlyFile, Policy
from codex_indexd.log import get_logger
from codex_indexd.write.backup import BackupPolicy

log = get_logger("codex_indexd.repair")


def policy_from(args: argparse.Namespace, facts: HomeFacts) -> Policy:
    """Return this repair's policy: the options, and the home's Codex config."""
    base = Policy(
        max_threads=args.max_threads,
        include_orphans=args.include_orphans,
        only=OnlyFile(args.only),
    )
    return home_policy(base, facts.config, ignore_history_max_bytes=args.ignore_history_max_bytes)


def db_drift(facts: HomeFacts) -> dict[str, Any]:
    """What Codex's own DB lost (names, rows), for the report."""
    found = detect(facts)
    return {"counts": found.counts(), "ids": found.ids(), "db_available": found.db_available}


def run_heal(facts: HomeFacts, resolved: Any) -> dict[str, Any]:
    """Ask Codex's app-server to heal its DB once; return a JSON-able summary."""
    from codex_indexd.heal import heal_once

    mode, binary = resolved.codex_api.mode, resolved.codex_api.binary or None
    heal = heal_once(facts, mode=mode, binary=binary)
    return {
        "summary": heal.summary(),
        "detected": heal.detected,
        "healed": heal.healed,
        "not_healed": heal.not_healed,
        "given_up": heal.given_up,
        "skipped_reason": heal.skipped_reason,
        "how_to_enable": heal.how_to_enable,
        "error": heal.error,
        "notes": heal.notes,
        "error_exit": bool(heal.error),
    }


def reconcile_home(args: argparse.Namespace, home: CodexHome, facts: HomeFacts) -> Reconciled:
    """Plan and, unless a dry run, apply; when Codex trimmed history.jsonl after we read it
    (the write found it changed and wrote nothing), read it again and plan again."""

    def reread(facts: HomeFacts) -> HomeFacts:
        return records.replace(facts, history=read_history(home.history))

    # The TUI writes its own history line shortly after the turn: a turn this recent is left
    # to it (a later repair or the daemon adds it if it never comes). A rebuild holds none.
    fresh = (
        frozenset()
        if args.rebuild
        else threads_with_recent_turns(facts.rollouts, time.time(), TUI_TURN_WINDOW_S)
    )
    return reconcile(
        facts,
        policy_from(args, facts),
        backup=BackupPolicy(enabled=not args.no_backup),
        # A dry run writes nothing: its plan needs no rebuild's list of every turn.
        rebuild=args.rebuild and not args.dry_run,
        fresh=fresh,
        prepare=(lambda plan: None) if args.dry_run else write_all,
        reread=reread,
    )


def repair_home(args: argparse.Namespace, home: CodexHome, started: StartedScan) -> int:
    """Repair `home` (its rollouts as `started` listed them); print the summary (or JSON).
    Return 0 on success, 1 on failure. Raises OSError (reported by `repair.main`)."""
    error: str | None = None
    if not args.dry_run:
        recover(home)
    with progress_bar(home) as progress:
        facts = gather(home, progress, started)
    outcome = reconcile_home(args, home, facts)
    facts, plan, result = outcome.facts, outcome.plan, outcome.result
    if result is not None and result.errors:
        error = "; ".join(
            f"{name}: {type(exc).__name__}: {exc}" for name, exc in result.errors.items()
        )
        log.error("repair.failed", error=error)
    report = build_report(args, facts, plan, result, error)
    report["db_drift"] = db_drift(facts)
    if args.heal_db and not args.dry_run:
        heal = run_heal(facts, args.settings)
        report["db_heal"] = heal
        if heal.get("error_exit"):
            error = error or heal["summary"]
            report["status"] = "failed"
            report["error"] = error
    changed = result is not None and any(
        w.lines_added or w.rewritten for w in (result.index, result.history) if w
    )
    report["changed"] = changed
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        from codex_indexd.commands.words import drift_sentence, ids_label

        for line in summary_lines(args, facts, plan, report):
            print(line)
        drift_db = report["db_drift"]
        if any(drift_db["counts"].values()):
            print(
                f"state DB drift: {drift_sentence(drift_db['counts'])}"
                + ("" if args.heal_db else " (--heal-db asks Codex to fix it)")
            )
            if args.dry_run:
                for reason, ids in drift_db["ids"].items():
                    if ids:
                        print(f"  {ids_label(reason)}: {', '.join(ids)}")
        if "db_heal" in report:
            print(report["db_heal"]["summary"])
        if error:
            print("status: failed")
            print(f"error: {error}")
        else:
            print("status: success")
            if changed:
                print("next step: restart Codex")
    return 1 if error else 0
