"""One-shot facts of a home: every rollout, the state DB, both index files."""

from __future__ import annotations

from pathlib import Path

from codex_indexd.codex.home import CodexConfig, CodexHome
from codex_indexd.codex.indexfiles import read_history, read_index
from codex_indexd.codex.scan_queue import StartedScan
from codex_indexd.codex.statedb import StateDbError, load_threads
from codex_indexd.engine.reading import InputWarning, Progress, scan_rollouts
from codex_indexd.index.lines import HistoryFile, IndexFile
from codex_indexd.index.model import NO_RENAMES, Policy, RolloutFacts, ThreadRow
from codex_indexd.index.plan import Plan, make_plan, plan_selection
from codex_indexd.index.select import Selection
from codex_indexd.log import get_logger
from codex_indexd.records import field, record

log = get_logger("codex_indexd.engine")


@record(slots=True)
class HomeFacts:
    """Everything read from one Codex home."""

    home: CodexHome
    config: CodexConfig
    threads: dict[str, ThreadRow] | None
    db_path: Path | None
    rollouts: dict[str, RolloutFacts]
    index: IndexFile
    history: HistoryFile
    warnings: list[InputWarning] = field(default_factory=list)
    db_error: StateDbError | None = None
    rollout_files: int = 0


def read_state_db(
    home: CodexHome, config: CodexConfig, warnings: list[InputWarning]
) -> tuple[dict[str, ThreadRow] | None, Path | None, StateDbError | None]:
    """Return the thread rows (None when the DB is absent or unreadable), its path, the error."""
    db_path = home.state_db(config)
    if db_path is None:
        return None, None, None
    try:
        return load_threads(db_path), db_path, None
    except StateDbError as exc:
        warnings.append(InputWarning(f"db.{exc.kind}", str(db_path), exc.detail))
        return None, db_path, exc


def _at_rest(facts: RolloutFacts) -> RolloutFacts:
    """Return the facts of a finished scan, with the one shared empty rename list in place of
    an empty list of their own (56 bytes a thread; one-shot facts are never read on)."""
    if not facts.renames:
        facts.renames = NO_RENAMES
    return facts


def gather(
    home: CodexHome, progress: Progress | None = None, started: StartedScan | None = None
) -> HomeFacts:
    """Read everything a plan needs from one home (its rollouts as `started` listed them,
    when given). Unreadable parts become warnings."""
    warnings: list[InputWarning] = []
    config = home.config()
    scans, count = scan_rollouts(home, warnings, progress, started)
    # Codex writes a rename into the DB before its index line: read the index first, so every
    # index line seen has its DB value seen too (never a new line with the old row).
    index = read_index(home.session_index)
    threads, db_path, db_error = read_state_db(home, config, warnings)
    facts = HomeFacts(
        home=home,
        config=config,
        threads=threads,
        db_path=db_path,
        rollouts={tid: _at_rest(scan.facts) for tid, scan in scans.items()},
        index=index,
        history=read_history(home.history),
        warnings=warnings,
        db_error=db_error,
        rollout_files=count,
    )
    for warning in warnings:
        log.warning(warning.event, path=warning.path, detail=warning.detail)
    for parsed, path in ((facts.index, home.session_index), (facts.history, home.history)):
        if parsed.refused is not None:  # logged by the reader
            warnings.append(InputWarning("index_file.refused", str(path), parsed.refused))
    return facts


def plan_for(facts: HomeFacts, policy: Policy) -> Plan:
    """Return the plan for gathered facts (pure)."""
    return make_plan(facts.threads, facts.rollouts, facts.index, facts.history, policy)


def selection_for(facts: HomeFacts, policy: Policy, only: set[str] | None = None) -> Selection:
    """Return the threads the plan for gathered facts would restore (pure), without planning
    their history; with `only` (and `policy.max_threads == 0`), just those of them."""
    return plan_selection(facts.threads, facts.rollouts, facts.index, policy, only=only)
