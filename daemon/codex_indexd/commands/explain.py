"""`codex-indexd explain <thread>`: why a thread is, or is not, visible in Codex."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from codex_indexd.codex.home import CodexHome
from codex_indexd.commands.arguments import MIN_PREFIX
from codex_indexd.commands.home_check import check_home
from codex_indexd.commands.lookup import Matches, find
from codex_indexd.engine import HomeFacts, gather
from codex_indexd.engine.diagnose import (
    Finding,
    explain,
    name_source,
    opens,
    visible,
    visible_in_scan,
)
from codex_indexd.log import set_configure_hook

EXIT_VISIBLE, EXIT_HIDDEN, EXIT_UNKNOWN = 0, 1, 2
# Hidden because the user asked for it: reported with a note, not as a problem.
CHOSEN = frozenset({"archived"})
# diagnose's own summary of the rollout; shown here as fields (path, turns) instead.
_ROLLOUT_CODE = "rollout"


def plural(count: int, word: str) -> str:
    """Return "1 turn", "2 turns"."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def usable(findings: list[Finding]) -> bool:
    """`codex resume` shows the thread and Codex can open it, or only the user hid it."""
    problems = [f for f in findings if f.code not in CHOSEN]
    return visible(problems) and opens(problems)


def thread_report(facts: HomeFacts, thread_id: str) -> dict[str, Any]:
    """Return one thread's JSON object: who it is, whether Codex shows it, and why."""
    findings = explain(facts, thread_id)
    rollout = facts.rollouts.get(thread_id)
    row = (facts.threads or {}).get(thread_id)
    name, name_from = name_source(facts, thread_id)
    rollout_path = rollout.path if rollout else (row.rollout_path if row else None)
    return {
        "id": thread_id,
        "name": name,
        "name_source": name_from,
        "rollout_path": rollout_path,
        "visible": visible(findings),
        "visible_in_scan": visible_in_scan(findings),
        "opens": opens(findings),
        "archived": any(f.code == "archived" for f in findings),
        "ok": usable(findings),
        "turns": len(rollout.user_turns) if rollout else None,
        "findings": [
            {
                "code": f.code,
                "message": f.message,
                "hides": f.hides,
                "hides_in_scan": f.hides_in_scan,
                "breaks": f.breaks,
            }
            for f in findings
            if f.code != _ROLLOUT_CODE
        ],
    }


def render(report: dict[str, Any]) -> list[str]:
    """Return the human lines for one thread (sentences, no internal codes)."""
    if not report["visible"] and report["archived"] and report["ok"]:
        state = "archived, so 'codex resume' lists it only with archived threads"
    elif not report["visible"]:
        state = "HIDDEN from 'codex resume'"
    elif not report["opens"]:
        state = "listed by 'codex resume' but Codex cannot open it"
    else:
        state = "visible in 'codex resume'"
    scan = "shows" if report["visible_in_scan"] else "skips"
    out = [f"thread {report['id']} {report['name']!r}: {state} (a scanning thread/list {scan} it)"]
    if report["rollout_path"]:
        turns = report["turns"]
        detail = f" ({plural(turns, 'user turn')})" if turns is not None else ""
        out.append(f"  rollout: {report['rollout_path']}{detail}")
    for finding in report["findings"]:
        if finding["code"] in CHOSEN:
            marker = "note:"
        elif finding["hides"] or finding["breaks"]:
            marker = "✗"
        elif finding["hides_in_scan"]:
            marker = "~"
        else:
            marker = "·"
        out.append(f"  {marker} {finding['message']}")
    if report["archived"] and report["ok"]:
        out.append("  note: archived on purpose, so this is not a problem.")
    return out


def _quiet_logging() -> None:
    """Only errors, on stderr: explain is read-only and its output is the report."""
    from codex_indexd.log import setup as logsetup

    logsetup.configure(level="error", log_file=False)


def _not_found(query: str, root: Path, matches: Matches) -> str:
    if matches.ambiguous:
        more = len(matches.ids) - 10
        shown = ", ".join(matches.ids[:10]) + (f" and {more} more" if more > 0 else "")
        return (
            f"{query!r} is the start of {len(matches.ids)} thread ids in {root}: {shown}. "
            "Give more characters."
        )
    return (
        f"no thread with id, id prefix, name or rollout path {query!r} in {root}. "
        "'codex-indexd explain' needs at least "
        f"{MIN_PREFIX} characters of an id; names match in any case."
    )


def main(args: argparse.Namespace) -> int:
    """Print the findings; exit 0 when every match is visible and opens (or is archived),
    1 when one is hidden or broken, 2 when nothing matches or the home cannot be read."""
    set_configure_hook(_quiet_logging)
    home = CodexHome.at(args.codex_home)
    result: dict[str, Any] = {"query": args.thread, "codex_home": str(home.root)}
    if args.codex_home is None:  # the home the config file names, as status and repair do
        from codex_indexd.config import settings as settings_mod

        try:
            home = CodexHome.at(settings_mod.load().homes[0])
        except settings_mod.ConfigError as exc:
            return _fail(args, result, f"codex-indexd: config error: {exc}")
        result["codex_home"] = str(home.root)
    problem = check_home(home.root, "--codex-home" if args.codex_home else "")
    if problem is not None:
        return _fail(args, result, problem.sentence)
    facts = gather(home)
    matches = find(facts, args.thread)
    if not matches.ids or matches.ambiguous:
        result["candidates"] = matches.ids
        return _fail(args, result, _not_found(args.thread, home.root, matches))
    reports = [thread_report(facts, tid) for tid in matches.ids]
    code = EXIT_VISIBLE if all(r["ok"] for r in reports) else EXIT_HIDDEN
    if args.json:
        result |= {"matched_by": matches.how, "exit_code": code, "error": None}
        print(json.dumps(result | {"threads": reports}, indent=2))
    else:
        if len(reports) > 1:
            print(f"{len(reports)} threads are named {args.thread!r}:")
        for report in reports:
            print("\n".join(render(report)))
    return code


def _fail(args: argparse.Namespace, result: dict[str, Any], message: str) -> int:
    if args.json:
        result |= {"exit_code": EXIT_UNKNOWN, "error": message, "threads": []}
        print(json.dumps(result, indent=2))
    else:
        print(message, file=sys.stderr)
    return EXIT_UNKNOWN
