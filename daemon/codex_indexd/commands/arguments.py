"""The arguments of `repair`, `run` and `explain`, apart from their code: building the parser
imports none of the three commands, only the one that runs (when its handler is called)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from codex_indexd.commands.words import add_codex_homes_argument

MIN_PREFIX = 6
"""The shortest id prefix `explain` looks up."""
ONLY_CHOICES = ("session-index", "history", "both")
LOG_LEVELS = ("debug", "info", "warning", "error")
"""The values of `repair --only`: those of `codex_indexd.index.model.OnlyFile`."""

REPAIR_EPILOG = """\
exit status: 0 success, 1 failure (the report says why), 2 bad config file or options.
Defaults are the original script's (100 threads, no orphans); the daemon restores every
thread and orphans too (policy.* in the config file).

examples:
  codex-indexd repair --dry-run
  codex-indexd repair --max-threads 0 --include-orphans --json
"""

RUN_EPILOG = """\
exit status (--once): 0 every home served, 1 a home is missing or cannot be read, 2 a bad
config file or no usable home. The daemon exits 0 on SIGTERM/SIGINT, 2 on a bad config, 75
when another codex-indexd already serves a home. SIGHUP re-reads the config file (homes
are added and dropped; a change that needs a restart is logged and shown by status).

examples:
  codex-indexd run --once --codex-home ~/.codex
  codex-indexd run --log-level debug --poll
"""

EXPLAIN_EPILOG = f"""\
A thread can be named by its id, a unique id prefix (at least {MIN_PREFIX} characters), its
name (any case; every thread with that name is explained) or its rollout file's path.

exit status:
  0  visible in 'codex resume' and Codex can open it (or hidden only because it is archived)
  1  hidden or broken for a reason you did not choose (the findings say why)
  2  no such thread, an ambiguous id prefix, a Codex home that cannot be read, or a bad
     config file

examples:
  codex-indexd explain 019a3c1e
  codex-indexd explain "fix the flaky test" --json | jq '.threads[] | {{id, visible}}'
"""


def _repair(args: argparse.Namespace) -> int:
    from codex_indexd.commands.repair import main

    return main(args)


def _run(args: argparse.Namespace) -> int:
    from codex_indexd.commands.run import main

    return main(args)


def _explain(args: argparse.Namespace) -> int:
    from codex_indexd.commands.explain import main

    return main(args)


def _nonnegative(value: str) -> int:
    """argparse type: a whole number of threads, 0 or more; raises ArgumentTypeError."""
    try:
        parsed = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a whole number of threads (0 = no limit), got {value!r}"
        ) from None
    if parsed < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or more, got {parsed}")
    return parsed


def _milliseconds(text: str) -> int:
    """argparse type: a whole number of milliseconds, 0..60000."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a whole number of milliseconds, got {text!r}"
        ) from None
    if not 0 <= value <= 60_000:
        raise argparse.ArgumentTypeError(f"must be between 0 and 60000 ms, got {value}")
    return value


def add_repair(sub: Any) -> None:
    """Register `repair`; its handler imports the command when it runs."""
    parser = sub.add_parser(
        "repair",
        help="rebuild or merge session_index.jsonl and history.jsonl once",
        description="Repair Codex's session_index.jsonl and history.jsonl from the rollouts and "
        "the state DB. Default: merge (add what is missing, fix stale names, keep every line).",
        epilog=REPAIR_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--codex-home",
        type=Path,
        default=None,
        metavar="PATH",
        help="the Codex home to repair (default: $CODEX_HOME, else the first of the config "
        "file's homes, else ~/.codex)",
    )
    parser.add_argument(
        "--only",
        choices=ONLY_CHOICES,
        default="both",
        help="repair only one of the two files (default: both)",
    )
    parser.add_argument(
        "--max-threads",
        type=_nonnegative,
        default=100,
        metavar="N",
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
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object, also when the repair fails: {status, error, changed, "
        "counts, drift, index_lines_added, history_lines_added, db_drift, ...}",
    )
    parser.add_argument(
        "--heal-db",
        action="store_true",
        help="also ask Codex (codex app-server) to restore lost names and missing rows "
        "in its state DB",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=LOG_LEVELS,
        help="least severe log lines printed on stderr (default: warning)",
    )
    parser.set_defaults(handler=_repair, early_scan=None)  # early_scan: set by the CLI


def add_run(sub: Any) -> None:
    """Register `run`; its handler imports the daemon when it runs."""
    parser = sub.add_parser(
        "run",
        help="watch Codex homes and keep their indexes right (foreground)",
        description="Watch Codex homes and keep session_index.jsonl and history.jsonl right, "
        "in the foreground (the user service runs this).",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_codex_homes_argument(parser, "watch", "the config file's homes, $CODEX_HOME, ~/.codex")
    parser.add_argument(
        "--debounce-ms",
        type=_milliseconds,
        default=None,
        metavar="MS",
        help="quiet period after a change before the indexes are updated (default 300)",
    )
    parser.add_argument(
        "--poll",
        action="store_true",
        default=None,
        help="poll the files instead of using inotify/FSEvents (network file systems)",
    )
    parser.add_argument(
        "--once", action="store_true", help="one reconcile of every home, then exit"
    )
    parser.add_argument(
        "--log-level",
        default=None,
        choices=LOG_LEVELS,
        help="least severe log lines written (default: log_level in the config file, or info)",
    )
    parser.set_defaults(handler=_run)


def add_explain(sub: Any) -> None:
    """Register `explain`; its handler imports the command when it runs."""
    parser = sub.add_parser(
        "explain",
        help="say why a thread is or is not visible in Codex",
        description="Say why a thread is or is not listed by Codex (read-only).",
        epilog=EXPLAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "thread", help="a thread id, id prefix (6+ characters), name, or rollout path"
    )
    parser.add_argument(
        "--codex-home",
        type=Path,
        default=None,
        metavar="PATH",
        help="the Codex home to look in (default: $CODEX_HOME, else the first of the config "
        "file's homes, else ~/.codex)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: {query, codex_home, exit_code, threads: [{id, name, "
        "rollout_path, visible, turns, findings: [{code, message, ...}]}]}",
    )
    parser.set_defaults(handler=_explain)
