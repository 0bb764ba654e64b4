"""`codex-indexd status`: is the daemon running, and what is wrong in each home.

Exit 0 when every home is healthy and watched by a running daemon, 1 when a home has drift
or an error (a bad home, an unreadable DB, a failed write), 2 on a bad config file or
command line, 3 when every home is healthy but no daemon runs for one of them (as
`systemctl status` does for a stopped unit).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from codex_indexd.codex.home import CodexHome
from codex_indexd.commands.counts import ThreadCounts, thread_counts
from codex_indexd.commands.home_check import HomeProblem, check_home, origin_of
from codex_indexd.commands.words import (
    add_codex_homes_argument,
    drift_sentence,
    error_sentence,
    parse_command_line,
    plural,
)
from codex_indexd.config import settings as settings_mod
from codex_indexd.config.policies import policy_from_settings
from codex_indexd.engine import gather, plan_for
from codex_indexd.engine.policy import home_policy
from codex_indexd.heal.drift import status_info
from codex_indexd.index.model import Policy
from codex_indexd.log import configure_on_first_log
from codex_indexd.store.files import OurFiles
from codex_indexd.store.status_file import read_status
from codex_indexd.write.locks import holder_pid, lock_holders

EXIT_HEALTHY, EXIT_PROBLEMS, EXIT_USAGE, EXIT_NOT_RUNNING = 0, 1, 2, 3
EPILOG = """\
exit status:
  0  healthy: the daemon runs, no drift, no errors
  1  drift or errors in a home (the report says which)
  2  bad config file or command line
  3  healthy, but no daemon is running for a home

examples:
  codex-indexd status
  codex-indexd status --json | jq '.ok, .homes[].drift'
"""


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
                f"Codex's DB has drift ({drift_sentence(counts)}), and healing through Codex is "
                f"off: {check.reason}. {check.hint}"
            )
    return counts, notes


def home_report(
    root: Path, policy: Policy, heal_mode: str = "auto", heal_binary: str | None = None
) -> dict[str, Any]:
    """Return the status of one home: the daemon's record plus a live drift check."""
    home = CodexHome.at(root)
    record = read_status(home.root) or {}
    pid = holder_pid(OurFiles.for_home(home.root).instance_lock)
    facts = gather(home)
    live_policy = home_policy(policy, facts.config)
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
            f"a Codex lock was busy {plural(record['lock_busy'], 'time')}; "
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
        errors.append(error_sentence(kind, info.get("detail") or info.get("file"), info.get("at")))
    db_drift, heal_notes = heal_report(facts, heal_mode, heal_binary)
    warnings.extend(heal_notes)
    if pid and record.get("restart_needed"):
        keys = ", ".join(record["restart_needed"])
        warnings.append(
            f"the daemon must be restarted to apply {keys} (changed in the config file since it "
            f"started): {restart_advice(record.get('service_manager'))}"
        )
    for name in record.get("paused_files") or []:
        errors.append(f"writes to {name} are paused: another writer keeps undoing our repairs")
    return {
        "codex_home": str(home.root),
        "daemon_pid": pid,
        "other_daemons": [] if pid else other_daemons(home.root),
        "sessions": facts.rollout_files,
        "threads": len(facts.threads) if facts.threads is not None else None,
        "counts": thread_counts(facts, plan).as_json(),
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
        "info": status_info(facts, heal_mode, heal_binary),
        "warnings": warnings,
        "errors": errors,
    }


def other_daemons(root: Path) -> list[dict[str, Any]]:
    """Return the running daemons that serve other homes than `root`: `{pid, homes, manager}`
    each, from their status records (a record counts while its pid holds its home's lock)."""
    found: dict[int, dict[str, Any]] = {}
    try:
        paths = sorted(OurFiles.for_home(root).status.parent.glob("*.json"))
    except OSError:
        return []
    for path in paths:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or not record.get("running"):
            continue
        home, pid = record.get("codex_home"), record.get("pid")
        if not isinstance(home, str) or not isinstance(pid, int) or home == str(root):
            continue
        if holder_pid(OurFiles.for_home(Path(home)).instance_lock) != pid:
            continue  # stopped, or killed before it could say so
        entry = found.setdefault(
            pid, {"pid": pid, "homes": [], "manager": record.get("service_manager")}
        )
        entry["homes"].append(home)
    return list(found.values())


def restart_advice(manager: str | None) -> str:
    """Return how to restart a daemon started by `manager` (the daemon's own record)."""
    if manager == "systemd":
        return "systemctl --user restart codex-indexd"
    if manager == "launchd":
        return "codex-indexd service install (it restarts the agent)"
    if manager and manager.startswith("service install"):
        return "codex-indexd service install (it restarts the background daemon)"
    return "stop 'codex-indexd run' and start it again"


def problem_report(problem: HomeProblem) -> dict[str, Any]:
    """Return the status of a home that cannot be used: an error and nothing else."""
    pid = holder_pid(OurFiles.for_home(problem.path).instance_lock)
    return {
        "codex_home": str(problem.path),
        "ok": False,
        "daemon_running": pid is not None,
        "daemon_pid": pid,
        "other_daemons": [],
        "home_problem": problem.as_json(),
        "sessions": 0,
        "threads": None,
        "counts": None,
        "db_path": None,
        "watcher": None,
        "service_manager": None,
        "started_at": None,
        "last_reconcile": {"at": None, "reason": None},
        "last_repair": None,
        "drift": {},
        "db_drift": {},
        "last_heal": None,
        "skipped_input": 0,
        "warnings": [],
        "errors": [problem.sentence],
    }


def finish(report: dict[str, Any]) -> dict[str, Any]:
    """Add the verdict fields (`ok`, `daemon_running`) to one home's report."""
    report.setdefault("home_problem", None)
    report["daemon_running"] = report["daemon_pid"] is not None
    report["ok"] = not (report["drift"] or report["db_drift"] or report["errors"])
    return report


def exit_code(reports: list[dict[str, Any]]) -> int:
    """1 when a home has drift or errors, else 3 when a daemon is missing, else 0."""
    if not all(r["ok"] for r in reports):
        return EXIT_PROBLEMS
    if not all(r["daemon_running"] for r in reports):
        return EXIT_NOT_RUNNING
    return EXIT_HEALTHY


def render(report: dict[str, Any]) -> list[str]:
    out = [f"home {report['codex_home']}"]
    if report.get("home_problem"):
        out.append(f"  ERROR: {report['home_problem']['message']}")
        return out
    if report["daemon_pid"]:
        out.append(
            f"  daemon: running (pid {report['daemon_pid']}, since {report['started_at']}, "
            f"managed by {report['service_manager']})"
        )
        out.append(f"  watcher: {report['watcher']}")
    elif report.get("other_daemons"):
        others = report["other_daemons"]
        served = ", ".join(sorted({h for d in others for h in d["homes"]}))
        pids = ", ".join(str(d["pid"]) for d in others)
        out.append(
            f"  daemon: NOT serving this home — a daemon runs (pid {pids}) for {served} only: "
            "its homes came from --codex-home or CODEX_HOME (the config file's homes are then "
            "not used), or its config file does not list this one; add the home to the config "
            "file's homes and restart it without them ("
            + restart_advice(others[0]["manager"])
            + ")"
        )
    else:
        out.append(
            "  daemon: NOT running — start it with 'codex-indexd service install' "
            "(or 'codex-indexd run')"
        )
    rows = (
        plural(report["threads"], "row") + " in Codex's DB"
        if report["threads"] is not None
        else "no state DB"
    )
    restored = ThreadCounts.from_json(report["counts"]).sentence(
        "policy.max_threads", "policy.include_orphans = true"
    )
    out.append(f"  sessions: {plural(report['sessions'], 'rollout file')}; {rows}")
    out.append(f"  threads (the daemon's policy): {restored}")
    last = report["last_reconcile"]
    out.append(
        f"  last reconcile: {last.get('at') or 'never'}"
        + (f" ({last['reason']})" if last.get("reason") else "")
    )
    repair = report["last_repair"]
    if repair:
        reasons = drift_sentence(repair.get("reasons", {}))
        out.append(
            f"  last repair: {repair['at']}: "
            f"+{plural(repair['index_lines_added'], 'index line')}, "
            f"+{plural(repair['history_lines_added'], 'history line')} (fixed: {reasons})"
        )
    else:
        out.append("  last repair: never")
    out.append("  drift now: " + drift_sentence(report["drift"]))
    if report["db_drift"]:
        out.append("  Codex DB drift: " + drift_sentence(report["db_drift"]))
    if report["last_heal"]:
        out.append(f"  last DB heal: {report['last_heal']['at']}: {report['last_heal']['summary']}")
    if report["skipped_input"]:
        out.append(
            f"  skipped input: {plural(report['skipped_input'], 'file or line', 'files or lines')}"
            " (see 'codex-indexd repair --dry-run')"
        )
    out.extend(f"  info: {line}" for line in report.get("info", []))
    out.extend(f"  warning: {w}" for w in report["warnings"])
    out.extend(f"  ERROR: {e}" for e in report["errors"])
    return out


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of `codex-indexd status`."""
    parser = argparse.ArgumentParser(
        prog="codex-indexd status",
        description="Show whether the daemon runs and what is wrong in each Codex home "
        "(read-only).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_codex_homes_argument(parser, "check", "the config file's homes, $CODEX_HOME, ~/.codex")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: {ok, exit_code, homes: [{codex_home, ok, daemon_running, "
        "drift, errors, ...}]}",
    )
    return parser


def main(argv: list[str]) -> int:
    args = parse_command_line(build_parser(), argv)
    configure_on_first_log(level="error", log_file=False)
    try:
        resolved = settings_mod.load(
            {"homes": [str(p) for p in args.codex_home] if args.codex_home else None}
        )
    except settings_mod.ConfigError as exc:
        if args.json:
            print(json.dumps({"ok": False, "exit_code": EXIT_USAGE, "error": str(exc)}))
        print(f"codex-indexd: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    policy = policy_from_settings(resolved)
    mode, binary = resolved.codex_api.mode, resolved.codex_api.binary or None
    origin = origin_of(resolved.sources["homes"], resolved.file)
    reports: list[dict[str, Any]] = []
    for home in resolved.homes:
        problem = check_home(home, origin)
        if problem is not None:
            reports.append(problem_report(problem))
        else:
            reports.append(finish(home_report(home, policy, mode, binary)))
    code = exit_code(reports)
    if args.json:
        verdict = {
            "ok": code == EXIT_HEALTHY,
            "healthy": code in (EXIT_HEALTHY, EXIT_NOT_RUNNING),
            "exit_code": code,
            "homes": reports,
        }
        print(json.dumps(verdict, indent=2))
    else:
        for report in reports:
            print("\n".join(render(report)))
    return code
