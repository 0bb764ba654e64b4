"""`codex-indexd repair`: one reconcile of a Codex home, run by hand.

Default is a non-destructive merge; `--rebuild` replaces the files like the seed script did.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from codex_indexd.codex.home import CodexHome
from codex_indexd.codex.indexfiles import read_history
from codex_indexd.commands.progress import progress_bar
from codex_indexd.commands.words import drift_sentence, plural
from codex_indexd.engine import (
    ApplyResult,
    HomeFacts,
    apply_plan,
    gather,
    plan_for,
    recover,
)
from codex_indexd.index.model import OnlyFile, Policy
from codex_indexd.index.plan import Plan
from codex_indexd.log import get_logger, set_configure_hook
from codex_indexd.write.backup import BackupPolicy

log = get_logger("codex_indexd.repair")
SHOW_IDS = 5
EPILOG = """\
exit status: 0 success, 1 failure (the report says why), 2 bad config file or options.
Defaults are the original script's (100 threads, no orphans); the daemon restores every
thread and orphans too (policy.* in the config file).

examples:
  codex-indexd repair --dry-run
  codex-indexd repair --max-threads 0 --include-orphans --json
"""


def _nonnegative(value: str) -> int:
    parsed = int(value)
    if parsed < 0:
        raise argparse.ArgumentTypeError("value must be >= 0")
    return parsed


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "repair",
        help="rebuild or merge session_index.jsonl and history.jsonl once",
        description="Repair Codex's session_index.jsonl and history.jsonl from the rollouts and "
        "the state DB. Default: merge (add what is missing, fix stale names, keep every line).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--codex-home",
        type=Path,
        default=None,
        metavar="PATH",
        help="the Codex home to repair (default: $CODEX_HOME, else ~/.codex)",
    )
    parser.add_argument(
        "--only",
        choices=[o.value for o in OnlyFile],
        default="both",
        help="repair only one of the two files (default: both)",
    )
    parser.add_argument(
        "--max-threads",
        type=_nonnegative,
        default=100,
        help="most recently updated conversations to restore; 0 = no limit (default 100)",
    )
    parser.add_argument(
        "--include-orphans",
        action="store_true",
        help="include rollouts that have no row in the state DB",
    )
    parser.add_argument(
        "--ignore-history-max-bytes",
        action="store_true",
        help="ignore [history] max_bytes from Codex's config.toml",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="change nothing; print what would change"
    )
    parser.add_argument(
        "--no-backup", action="store_true", help="do not keep backups of rewritten files"
    )
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="replace both files from scratch (the seed script's semantics)",
    )
    parser.add_argument("--json", action="store_true", help="print a machine-readable report")
    parser.add_argument(
        "--heal-db",
        action="store_true",
        help="also ask Codex (codex app-server) to restore lost names and missing rows "
        "in its state DB",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="least severe log lines printed on stderr (default: warning)",
    )
    parser.set_defaults(handler=main)


def policy_from(args: argparse.Namespace, facts: HomeFacts) -> Policy:
    max_bytes = None if args.ignore_history_max_bytes else facts.config.history_max_bytes
    return Policy(
        max_threads=args.max_threads,
        include_orphans=args.include_orphans,
        only=OnlyFile(args.only),
        history_max_bytes=max_bytes,
        history_enabled=facts.config.history_persistence != "none",
    )


def first_ids(reasons: dict[str, Any], reason: str) -> list[str]:
    return [tid for tid, why in reasons.items() if why == reason][:SHOW_IDS]


def build_report(
    args: argparse.Namespace,
    facts: HomeFacts,
    plan: Plan,
    result: ApplyResult | None,
    error: str | None,
) -> dict[str, Any]:
    """Return the JSON report (ids, counts and paths only; never prompt text)."""
    drift = plan.drift
    history_ids = sorted({line.session_id for line in drift.history_add})
    return {
        "status": "failed" if error else "success",
        "error": error,
        "codex_home": str(facts.home.root),
        "mode": "rebuild" if args.rebuild else "merge",
        "dry_run": args.dry_run,
        "conversations": len(plan.selection.entries),
        "source": str(facts.db_path) if plan.selection.used_db else "sessions",
        "orphans_skipped": plan.selection.skipped_orphans,
        "max_threads": args.max_threads,
        "rollout_files": facts.rollout_files,
        "drift": drift.counts(),
        "drift_ids": {
            reason: first_ids(drift.index_reasons, reason)
            for reason in sorted({r.value for r in drift.index_reasons.values()})
        }
        | ({"history_missing": history_ids[:SHOW_IDS]} if history_ids else {}),
        "index_lines_added": result.index.lines_added if result and result.index else 0,
        "history_lines_added": result.history.lines_added if result and result.history else 0,
        "history_left_out": result.history.left_out if result and result.history else 0,
        "backups": [
            str(w.backup) for w in (result.index, result.history) if result and w and w.backup
        ]
        if result
        else [],
        "warnings": [
            {"event": w.event, "path": w.path, "detail": w.detail} for w in facts.warnings
        ],
    }


def summary_lines(
    args: argparse.Namespace, facts: HomeFacts, plan: Plan, report: dict[str, Any]
) -> list[str]:
    """Return the seed's summary lines, plus what merge mode adds."""
    home = facts.home
    selection = plan.selection
    out = [f"conversations refreshed: {len(selection.entries)}"]
    if selection.used_db and facts.db_path is not None:
        out.append(f"source: active threads from {facts.db_path.name}")
    else:
        out.append("source: sessions/ fallback (state_5.sqlite missing or empty)")
    if selection.used_db and not args.include_orphans:
        out.append(f"orphan sessions skipped: {selection.skipped_orphans}")
    out.append(
        "max conversations: unlimited"
        if args.max_threads == 0
        else f"max conversations: {args.max_threads}"
    )
    out.extend(count_lines(args, facts, plan))
    verb = "would update" if args.dry_run else "updated"
    if plan.writes_index and (args.rebuild or plan.drift.index_append):
        out.append(f"file: {verb} {home.session_index}")
    if plan.policy.only in (OnlyFile.HISTORY, OnlyFile.BOTH):
        if not plan.policy.history_enabled:
            out.append('history: not written ([history] persistence = "none")')
        elif plan.policy.history_max_bytes is not None:
            out.append(f"history max bytes: applied {plan.policy.history_max_bytes}")
        elif args.ignore_history_max_bytes:
            out.append("history max bytes: ignored by flag")
        else:
            out.append("history max bytes: not configured")
        if plan.writes_history and (args.rebuild or plan.drift.history_add):
            out.append(f"file: {verb} {home.history}")
    out.extend(f"file: created {path}" for path in report["backups"])
    if not args.rebuild:
        counts = report["drift"]
        prefix = "would add" if args.dry_run else "added"
        index_counts = {k: v for k, v in counts.items() if k.startswith("index_")}
        out.append(
            f"index lines {prefix}: {len(plan.drift.index_append)}"
            + (f" ({drift_sentence(index_counts)})" if plan.drift.index_append else "")
        )
        added = len(plan.drift.history_add) if args.dry_run else report["history_lines_added"]
        out.append(f"history lines {prefix}: {added}")
        left_out = plan.drift.history_over_cap + report.get("history_left_out", 0)
        if left_out:
            out.append(f"history lines left out: {left_out} (over [history] max_bytes)")
        if args.dry_run:
            for reason, ids in report["drift_ids"].items():
                out.append(
                    f"  {drift_sentence({reason: len(ids)}).split(' ', 1)[1]}: {', '.join(ids)}"
                    + (" …" if counts.get(reason, 0) > len(ids) else "")
                )
    if facts.warnings:
        out.append(f"warnings: {len(facts.warnings)} (skipped input; see the log lines above)")
    difference = daemon_difference(args, facts, plan)
    if difference:
        out.append(difference)
    return out


def db_drift(facts: HomeFacts) -> dict[str, Any]:
    """What Codex's own DB lost (names, rows), for the report."""
    from codex_indexd.heal import detect

    found = detect(facts)
    return {"counts": found.counts(), "ids": found.ids(), "db_available": found.db_available}


def run_heal(facts: HomeFacts, resolved: Any) -> dict[str, Any]:
    """Ask Codex's app-server to heal its DB once; return a JSON-able summary."""
    from codex_indexd.heal import heal_home
    from codex_indexd.store.heal_attempts import load_attempts, save_attempts

    mode, binary = resolved["codex_api.mode"], resolved["codex_api.binary"] or None
    attempts = load_attempts(facts.home.root)
    heal = heal_home(facts, mode=mode, binary=binary, attempts=attempts)
    save_attempts(facts.home.root, heal.attempts)
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


def count_lines(args: argparse.Namespace, facts: HomeFacts, plan: Plan) -> list[str]:
    """Return one line saying how many rollouts there are, how many threads are restored,
    and why the others are not (archived, no usable session_meta, over --max-threads,
    orphans)."""
    restored = len(plan.selection.entries)
    archived = {t for t, r in (facts.threads or {}).items() if r.archived}
    archived |= {t for t, r in facts.rollouts.items() if r.archived}
    unusable = sum(1 for w in facts.warnings if w.event == "rollout.skipped")
    over = 0
    if args.max_threads:
        unlimited = plan_for(facts, replace(plan.policy, max_threads=0))
        over = len(unlimited.selection.entries) - restored
    parts = [
        (len(archived), "archived"),
        (unusable, "without a usable session_meta"),
        (over, f"over --max-threads {args.max_threads}"),
        (plan.selection.skipped_orphans, "orphans (no DB row; --include-orphans adds them)"),
    ]
    excluded = ", ".join(f"{n} {why}" for n, why in parts if n)
    return [
        f"rollouts: {plural(facts.rollout_files, 'file')}; "
        f"{plural(restored, 'thread')} restored"
        + (f"; not restored: {excluded}" if excluded else "")
    ]


def daemon_difference(args: argparse.Namespace, facts: HomeFacts, plan: Plan) -> str | None:
    """Return one line when the daemon's policy (the config file's) restores a different set
    of threads than this repair's options; None when both agree."""
    from codex_indexd.config.policies import policy_from_settings

    daemon = policy_from_settings(args.settings)
    if (daemon.max_threads, daemon.include_orphans) == (args.max_threads, args.include_orphans):
        return None
    theirs = plan_for(
        facts,
        replace(
            plan.policy,
            max_threads=daemon.max_threads,
            include_orphans=daemon.include_orphans,
        ),
    )
    if theirs.selection.thread_ids == plan.selection.thread_ids:
        return None
    limit = "all threads" if daemon.max_threads == 0 else f"{daemon.max_threads} threads"
    orphans = "with orphans" if daemon.include_orphans else "without orphans"
    flags = f"--max-threads {daemon.max_threads}" + (
        " --include-orphans" if daemon.include_orphans else ""
    )
    return (
        f"note: this repair restores {plural(len(plan.selection.entries), 'thread')} "
        f"(--max-threads {args.max_threads}"
        + (", --include-orphans" if args.include_orphans else ", no orphans")
        + f"); the daemon restores {limit} {orphans} "
        f"({plural(len(theirs.selection.entries), 'thread')} here). Pass {flags} to match it."
    )


def _failed(args: argparse.Namespace, root: Path, error: str, code: int = 1) -> int:
    """Report a repair that could not start: JSON with `error`, or the seed's two lines."""
    if args.json:
        report = {"status": "failed", "error": error, "codex_home": str(root)}
        print(json.dumps(report | {"dry_run": args.dry_run}, indent=2))
    else:
        print(f"status: failed\nerror: {error}")
    return code


def apply_with_retries(
    args: argparse.Namespace, home: CodexHome, facts: HomeFacts, plan: Plan
) -> tuple[HomeFacts, Plan, ApplyResult]:
    """Apply the plan; when Codex trimmed history.jsonl after we read it (the write found it
    changed and wrote nothing), read it again and plan again, up to three times. Return the
    facts and plan last used and the result."""
    backup = BackupPolicy(enabled=not args.no_backup)
    result = apply_plan(facts, plan, rebuild=args.rebuild, backup=backup)
    for _ in range(3):
        if result.history is None or not result.history.stale:
            break
        facts = dataclasses.replace(facts, history=read_history(home.history))
        plan = plan_for(facts, policy_from(args, facts))
        retried = apply_plan(facts, plan, rebuild=False, backup=backup)
        result = dataclasses.replace(retried, index=result.index or retried.index)
    return facts, plan, result


def main(args: argparse.Namespace) -> int:
    """Run one repair; print the summary (or JSON, also on failure). Exit 0 on success,
    1 on failure, 2 on a bad config file."""
    from codex_indexd.commands.home_check import check_home
    from codex_indexd.config import settings as settings_mod

    def configure_logging() -> None:
        from codex_indexd.log import setup as logsetup

        logsetup.configure(level=args.log_level, log_file=False)

    set_configure_hook(configure_logging)
    home = CodexHome.at(args.codex_home)
    try:
        args.settings = settings_mod.load()
    except settings_mod.ConfigError as exc:
        if not args.json:
            print(f"codex-indexd: config error: {exc}", file=sys.stderr)
        return _failed(args, home.root, f"config error: {exc}", 2)
    problem = check_home(home.root, "--codex-home" if args.codex_home else "")
    if problem is not None:
        return _failed(args, home.root, problem.sentence)
    try:
        return _repair(args, home)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        log.error("repair.failed", error=f"{type(exc).__name__}{where}")
        return _failed(args, home.root, f"{exc.strerror or exc}{where}")


def _repair(args: argparse.Namespace, home: CodexHome) -> int:
    error: str | None = None
    result: ApplyResult | None = None
    if not args.dry_run:
        recover(home)
    with progress_bar(home) as progress:
        facts = gather(home, progress)
    plan = plan_for(facts, policy_from(args, facts))
    if not args.dry_run:
        facts, plan, result = apply_with_retries(args, home, facts, plan)
        if result.errors:
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
        for line in summary_lines(args, facts, plan, report):
            print(line)
        drift_db = report["db_drift"]
        if any(drift_db["counts"].values()):
            counts = ", ".join(f"{k} {v}" for k, v in drift_db["counts"].items() if v)
            print(
                f"state DB drift: {counts}"
                + ("" if args.heal_db else " (--heal-db asks Codex to fix it)")
            )
            if args.dry_run:
                for reason, ids in drift_db["ids"].items():
                    if ids:
                        print(f"  {reason}: {', '.join(ids)}")
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
