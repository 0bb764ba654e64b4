"""What `repair` reports: the JSON report and the summary lines (the seed script's, plus what
a merge adds), with ids, counts and paths only, never prompt text."""

from __future__ import annotations

import argparse
from typing import Any

from codex_indexd.commands.counts import ThreadCounts, thread_counts
from codex_indexd.commands.words import drift_sentence, ids_label, plural
from codex_indexd.config.policies import policy_from_settings
from codex_indexd.engine import ApplyResult, HomeFacts
from codex_indexd.engine.gather import selection_for
from codex_indexd.index.model import OnlyFile, Policy
from codex_indexd.index.plan import Plan
from codex_indexd.records import replace

SHOW_IDS = 5


def ids_by_reason(plan: Plan) -> dict[str, list[str]]:
    """Return the ids of the threads with drift, by reason (index reasons and
    `history_missing`), in plan order."""
    found: dict[str, list[str]] = {}
    for tid, why in plan.drift.index_reasons.items():
        found.setdefault(str(getattr(why, "value", why)), []).append(tid)
    history_ids = sorted({line.session_id for line in plan.drift.history_add})
    if history_ids:
        found["history_missing"] = history_ids
    return dict(sorted(found.items()))


def build_report(
    args: argparse.Namespace,
    facts: HomeFacts,
    plan: Plan,
    result: ApplyResult | None,
    error: str | None,
) -> dict[str, Any]:
    """Return the JSON report (ids, counts and paths only; never prompt text)."""
    drift = plan.drift
    by_reason = ids_by_reason(plan)
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
        "counts": thread_counts(facts, plan).as_json(),
        "drift": drift.counts(),
        "drift_ids": {reason: ids[:SHOW_IDS] for reason, ids in by_reason.items()},
        "drift_threads": {reason: len(ids) for reason, ids in by_reason.items()},
        "index_lines_added": result.index.lines_added if result and result.index else 0,
        "history_lines_added": result.history.lines_added if result and result.history else 0,
        "history_left_out": drift.history_over_cap
        + (result.history.left_out if result and result.history else 0),
        "history_lines_held": len(plan.drift.history_pending),
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
    out.append(
        f"rollouts: {plural(facts.rollout_files, 'file')}; "
        + ThreadCounts.from_json(report["counts"]).sentence(
            f"--max-threads {args.max_threads}", "--include-orphans"
        )
    )
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
        left_out = report["history_left_out"]
        if left_out:
            out.append(f"history lines left out: {left_out} (over [history] max_bytes)")
        if plan.drift.history_pending:
            out.append(
                f"history lines held: {len(plan.drift.history_pending)} (turns seconds old: "
                "the TUI writes their lines itself; a later run adds any that never come)"
            )
        if args.dry_run:
            for reason, ids in report["drift_ids"].items():
                more = " …" if report["drift_threads"][reason] > len(ids) else ""
                out.append(f"  {ids_label(reason)}: {', '.join(ids)}{more}")
    if facts.warnings:
        out.append(f"warnings: {len(facts.warnings)} (skipped input; see the log lines above)")
    difference = daemon_difference(args, facts, plan)
    if difference:
        out.append(difference)
    return out


def restored_under(facts: HomeFacts, plan: Plan, policy: Policy) -> set[str]:
    """Return the ids of the threads `policy` restores from `facts` (those `plan` was made
    from): only which threads, their history is not planned.

    When neither limits the thread count, whether a thread is restored does not depend on the
    others, and `include_orphans` only decides for orphans (live rollouts without a DB row):
    the plan's own selection is kept and the orphans alone are selected again.
    """
    ours = plan.selection
    if policy.max_threads != 0 or plan.policy.max_threads != 0:
        return selection_for(facts, policy).thread_ids
    if not ours.used_db:  # no DB rows: every live rollout, orphans or not
        return ours.thread_ids
    threads = facts.threads or {}
    orphans = {tid for tid, r in facts.rollouts.items() if not r.archived and tid not in threads}
    return (ours.thread_ids - orphans) | selection_for(facts, policy, only=orphans).thread_ids


def daemon_difference(args: argparse.Namespace, facts: HomeFacts, plan: Plan) -> str | None:
    """Return one line when the daemon's policy (the config file's) restores a different set
    of threads than this repair's options; None when both agree."""
    daemon = policy_from_settings(args.settings)
    if (daemon.max_threads, daemon.include_orphans) == (args.max_threads, args.include_orphans):
        return None
    theirs = restored_under(
        facts,
        plan,
        replace(
            plan.policy,
            max_threads=daemon.max_threads,
            include_orphans=daemon.include_orphans,
        ),
    )
    if theirs == plan.selection.thread_ids:
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
        f"({plural(len(theirs), 'thread')} here). Pass {flags} to match it."
    )
