"""`codex-indexd report`: a redacted diagnostic report to attach to a bug report.

It holds versions, the effective config, status and drift, the last log lines and what
`explain` says about threads with problems. Every text a user typed or a name derived from
it (prompts, titles, thread names, history lines) is replaced by `<redacted>`, and paths
under $HOME are shown as `~`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
from collections import deque
from pathlib import Path

from codex_indexd import __version__
from codex_indexd.codex.home import CodexHome
from codex_indexd.commands.home_check import check_home
from codex_indexd.commands.words import add_codex_homes_argument
from codex_indexd.config import settings as settings_mod
from codex_indexd.engine import HomeFacts, gather, plan_for
from codex_indexd.log import configure_on_first_log
from codex_indexd.store import dirs
from codex_indexd.store.files import log_file

LOG_LINES = 200
MAX_THREADS_EXPLAINED = 20
REDACTED = "<redacted>"
_MIN_SECRET = 3  # shorter strings would redact ordinary words
_MIN_WORD = 8
EPILOG = """\
Nothing you typed to Codex is included: prompts, titles, thread names and history lines
are replaced by <redacted>, and paths under your home directory are shown as ~.

examples:
  codex-indexd report > codex-indexd-report.txt
  codex-indexd report --codex-home ~/.codex --output /tmp/report.txt
"""


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of `codex-indexd report`."""
    parser = argparse.ArgumentParser(
        prog="codex-indexd report",
        description="Write a redacted diagnostic report (versions, config, status, drift, the "
        f"last {LOG_LINES} log lines, findings of threads with problems) for a bug report.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_codex_homes_argument(parser, "report on", "the configured homes")
    parser.add_argument(
        "--output", type=Path, metavar="FILE", help="write the report here (default: stdout)"
    )
    return parser


def secrets_of(facts: HomeFacts) -> set[str]:
    """Return every text of the home a user typed or that is derived from it."""
    found: set[str] = set()
    for row in (facts.threads or {}).values():
        found.update(t for t in (row.title, row.first_user_message, row.name) if t)
    for rollout in facts.rollouts.values():
        found.update(t for t in (rollout.title, rollout.first_user_message) if t)
        found.update(r.name for r in rollout.renames)
        found.update(turn.text for turn in rollout.user_turns if turn.text)
    found.update(line.thread_name for line in facts.index.latest.values())
    found.update(line.text for line in facts.history.parsed if line is not None and line.text)
    lines = {part.strip() for text in found for part in text.splitlines()}
    # long words of a prompt give it away even when quoted in part (e.g. in a log line)
    words = {word for text in found for word in text.split() if len(word) >= _MIN_WORD}
    return {s for s in found | lines | words if len(s) >= _MIN_SECRET}


class Redactor:
    """Replaces known secrets (longest first, also as JSON escapes) and $HOME in text."""

    def __init__(self, secrets: set[str], home: str) -> None:
        variants: set[str] = set()
        for secret in secrets:
            variants.add(secret)
            variants.add(json.dumps(secret)[1:-1])
            variants.add(json.dumps(secret, ensure_ascii=False)[1:-1])
            variants.add(repr(secret)[1:-1])
        ordered = sorted((v for v in variants if len(v) >= _MIN_SECRET), key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._home = home.rstrip("/")

    def __call__(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        if self._home and self._home != "/":
            text = re.sub(re.escape(self._home) + r"(?=/|\b|$)", "~", text)
        return text


def codex_version(binary: str | None) -> str:
    """Return `codex --version`'s output, or why it could not be run."""
    try:
        done = subprocess.run(
            [binary or "codex", "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"not found ({type(exc).__name__})"
    return (done.stdout or done.stderr).strip() or f"exit {done.returncode}"


def last_log_lines(count: int = LOG_LINES) -> list[str]:
    """Return the last `count` lines of our JSON log (rotations included)."""
    base = log_file()
    files = [*sorted(base.parent.glob(base.name + ".*"), reverse=True), base]
    tail: deque[str] = deque(maxlen=count)
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                tail.extend(line.rstrip("\n") for line in handle)
        except OSError:
            continue
    return list(tail)


def home_section(root: Path, resolved: settings_mod.Settings) -> tuple[list[str], set[str]]:
    """Return the report lines for one home and the secrets found in it."""
    from codex_indexd.commands import explain as explain_cmd
    from codex_indexd.commands import status as status_cmd
    from codex_indexd.config.policies import policy_from_settings
    from codex_indexd.heal import detect

    problem = check_home(root)
    if problem is not None:
        return [f"## home {root}", problem.sentence], set()
    facts = gather(CodexHome.at(root))
    secrets = secrets_of(facts)
    policy = policy_from_settings(resolved)
    binary = resolved.codex_api.binary or None
    report = status_cmd.home_report(root, policy, resolved.codex_api.mode, binary)
    out = [f"## home {root}", "### status", json.dumps(status_cmd.finish(report), indent=2)]
    plan = plan_for(facts, policy)
    troubled = sorted(
        set(plan.drift.index_reasons)
        | {h.session_id for h in plan.drift.history_add}
        | {tid for ids in detect(facts).ids().values() for tid in ids}
    )
    out.append(f"### threads with drift (in the index files or Codex's DB): {len(troubled)}")
    for tid in troubled[:MAX_THREADS_EXPLAINED]:
        thread = explain_cmd.thread_report(facts, tid)
        thread["name"] = REDACTED
        out.append(json.dumps(thread, indent=2))
    return out, secrets


def build(homes: list[Path] | None) -> str:
    """Return the whole report, redacted."""
    configure_on_first_log(level="error", log_file=False)
    out = [
        "# codex-indexd diagnostic report",
        f"codex-indexd {__version__}",
        f"python {platform.python_version()} ({sys.executable})",
        f"os {platform.platform()}",
    ]
    try:
        resolved = settings_mod.load({"homes": [str(h) for h in homes] if homes else None})
    except settings_mod.ConfigError as exc:
        out.append(f"config error: {exc}")
        return "\n".join(out) + "\n"
    out.append(f"codex {codex_version(resolved.codex_api.binary or None)}")
    out.append("## effective config")
    out += [f"{k} = {v}  ({s})" for k, v, s in settings_mod.describe(resolved)]
    out.append(f"config file: {resolved.file}")
    secrets: set[str] = set()
    for root in resolved.homes:
        lines, found = home_section(root, resolved)
        out += lines
        secrets |= found
    out.append(f"## last {LOG_LINES} log lines ({dirs.log_dir()})")
    out += last_log_lines()
    redact = Redactor(secrets, os.environ.get("HOME", ""))
    return redact("\n".join(out)) + "\n"


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    text = build(args.codex_home)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(f"report written to {args.output}", file=sys.stderr)
    return 0
