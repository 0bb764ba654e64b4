"""Heal Codex's own state DB through Codex's API (`codex app-server`).

We never write Codex's databases. Codex's app-server is the sanctioned writer:

* `thread/name/set {threadId, name}` puts a lost name back (`threads.name` for paginated
  threads, `threads.title` for legacy ones) and appends the index under Codex's lock;
* a few missing rows (up to `MAX_ROW_INSERTS`): `thread/metadata/update` per thread, which
  inserts the row from the rollout before patching it (the patch restates the rollout's own
  git commit), where the binary's schema has the method;
* otherwise, or for what that refused: one `thread/list` scan (`useStateDbOnly: false`,
  every source kind the schema names, every provider, archived and not, all pages) makes
  Codex insert rows for rollouts it has no row for.

Afterwards the DB is read again, read-only, and what was healed is counted. One child at a
time, every call with a timeout, the child always reaped. An item that is still not healed
after `MAX_TRIES` attempts is reported and left alone: the caller persists `attempts`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from codex_indexd.codex.statedb import StateDbError, load_threads
from codex_indexd.engine import HomeFacts
from codex_indexd.heal.appserver import AppServer
from codex_indexd.heal.child import AppServerError, RpcError
from codex_indexd.heal.codex_check import (
    MODES,
    VERSION_TIMEOUT_S,
    CodexCheck,
    check_codex,
)
from codex_indexd.heal.detect import (
    NAME_LOST,
    REASONS,
    ROW_MISSING,
    ROW_STALE,
    Detection,
    attempt_key,
    attempt_keys,
    detect,
)
from codex_indexd.heal.outcome import HealReport, zero_counts
from codex_indexd.heal.requests import insert_rows, scan_threads
from codex_indexd.index.model import ThreadRow
from codex_indexd.log import get_logger
from codex_indexd.records import field, record

log = get_logger("codex_indexd.heal")

MAX_TRIES = 2
MAX_ROW_INSERTS = 50
"""Up to this many missing rows are inserted one by one; more take one `thread/list` scan."""
PAGE_SIZE = 100
MAX_PAGES = 10_000
IDS_SHOWN = 5

_SESSION_LOCK = threading.Lock()  # one app-server child at a time in this process


def _reason_sets(detection: Detection) -> dict[str, set[str]]:
    return detection.by_reason()


def _read_rows(facts: HomeFacts) -> dict[str, ThreadRow]:
    """Read the thread rows again, read-only. Raises StateDbError or FileNotFoundError."""
    path = facts.home.state_db(facts.config) or facts.db_path
    if path is None:
        raise FileNotFoundError("the state DB is gone")
    return load_threads(path)


def _reread(facts: HomeFacts, fallback: Detection | None) -> Detection | None:
    """Detect again from a fresh read of the DB; `fallback` when it cannot be read."""
    try:
        return detect(facts, threads=_read_rows(facts))
    except (StateDbError, OSError) as exc:
        log.warning("heal.reread_failed", home=str(facts.home.root), error=str(exc))
        return fallback


def _tryable(detection: Detection, record: Mapping[str, int]) -> tuple[dict[str, str], set[str]]:
    """Names to set and row ids to scan for, leaving out given-up and archived items."""
    names = {
        tid: name
        for tid, name in detection.names.items()
        if tid not in detection.archived
        and record.get(attempt_key(NAME_LOST, tid, name), 0) < MAX_TRIES
    }
    rows = {
        tid for tid in detection.missing if record.get(attempt_key(ROW_MISSING, tid), 0) < MAX_TRIES
    }
    rows |= {
        tid for tid in detection.stale if record.get(attempt_key(ROW_STALE, tid), 0) < MAX_TRIES
    }
    return names, rows


@record(slots=True)
class _Run:
    attempted: set[str] = field(default_factory=set)  # attempt keys
    names_failed: int = 0
    error: str | None = None
    ran: bool = False
    scanned: bool = False
    inserted: int = 0  # rows asked for one by one (thread/metadata/update) and accepted
    mid: Detection | None = None  # detection after the scan, before renaming


def _run_session(
    facts: HomeFacts,
    check: CodexCheck,
    before: Detection,
    *,
    record: dict[str, int],
    timeout_s: float,
    env: Mapping[str, str] | None,
) -> _Run:
    run = _Run()
    names, rows = _tryable(before, record)
    assert check.binary is not None
    server = AppServer(check.binary, facts.home.root, env=env)
    try:
        server.start(timeout_s)
        run.ran = True
        if rows:
            run.attempted |= {attempt_key(ROW_MISSING, t) for t in rows & before.missing}
            run.attempted |= {attempt_key(ROW_STALE, t) for t in rows & before.stale}
            missing = rows & before.missing
            if check.metadata_update and len(missing) <= MAX_ROW_INSERTS and rows == missing:
                run.inserted = len(missing)
                left = insert_rows(server, facts, missing, timeout_s)
                run.inserted -= len(left)
                after_scan = False  # what it refused, the scan is the last try
            else:
                left, after_scan = rows, check.metadata_update
            if left:
                scan_threads(server, timeout_s, check.source_kinds)
                run.scanned = True
            run.mid = _reread(facts, None)
            still = (run.mid.missing & left) if run.mid is not None and run.scanned else set()
            if still and after_scan and len(still) <= MAX_ROW_INSERTS:
                # a scan pages by start time and can pass over threads that share one second
                insert_rows(server, facts, still, timeout_s)
                run.mid = _reread(facts, run.mid)
            if run.mid is not None:  # rows the scan just inserted can have lost names too
                more, _ = _tryable(run.mid, record)
                names.update({tid: name for tid, name in more.items() if tid not in names})
        for tid, name in sorted(names.items()):
            run.attempted.add(attempt_key(NAME_LOST, tid, name))
            try:
                server.request(
                    "thread/name/set", {"threadId": tid, "name": name}, timeout_s=timeout_s
                )
            except RpcError as exc:
                run.names_failed += 1
                log.warning(
                    "heal.name_set_failed",
                    home=str(facts.home.root),
                    thread_id=tid,
                    code=exc.code,
                    error=exc.rpc_message,
                )
    except AppServerError as exc:
        run.error = str(exc)
        log.warning(
            "heal.codex_failed",
            home=str(facts.home.root),
            kind=exc.kind,
            error=str(exc),
            binary=check.binary,
        )
    finally:
        server.close()
    return run


def _finish(
    report: HealReport,
    before: dict[str, set[str]],
    after: Detection | None,
    record: dict[str, int],
    attempted: set[str],
) -> None:
    """Fill the counts, update the attempts record (in place) and prune it."""
    after_sets = _reason_sets(after) if after is not None else before
    current = attempt_keys(after) if after is not None else None
    for key in attempted:
        if current is not None and key not in current:
            record.pop(key, None)  # healed
        else:
            record[key] = record.get(key, 0) + 1
    if current is not None:
        for key in [k for k in record if k not in current]:
            del record[key]  # resolved some other way, or no longer detected
    for reason in REASONS:
        found = before[reason]
        left = found & after_sets[reason]
        report.detected[reason] = len(found)
        report.ids[reason] = sorted(found)[:IDS_SHOWN]
        report.healed[reason] = len(found - left)
        report.not_healed[reason] = len(left)
        report.not_healed_ids[reason] = sorted(left)[:IDS_SHOWN]
    given_up = zero_counts()
    for key, count in record.items():
        reason = key.split(":", 1)[0]
        if count >= MAX_TRIES and reason in given_up:
            given_up[reason] += 1
    report.given_up = given_up
    report.attempts = record
    if after is not None:
        _add_notes(report, after)


def _add_notes(report: HealReport, after: Detection) -> None:
    archived = len(after.archived)
    if archived:
        report.notes.append(
            f"{archived} archived thread(s) keep a lost name: Codex (0.169, 0.171) renames only "
            "unarchived threads ('thread/name/set' answers 'no rollout found'); unarchive them "
            "in Codex and heal again."
        )
    if after.stale and report.ran:
        report.notes.append(
            f"{len(after.stale)} DB row(s) still point at a rollout path that no longer exists: "
            "Codex's thread/list scan (0.169, 0.171) inserts missing rows but does not move "
            "existing ones; putting the file back where the row says makes it visible again."
        )
    if report.given_up[NAME_LOST] or report.given_up[ROW_MISSING] or report.given_up[ROW_STALE]:
        report.notes.append(
            f"{sum(report.given_up.values())} item(s) did not heal after {MAX_TRIES} tries and "
            "are no longer retried until they change."
        )


def _sets_with(before: Detection, mid: Detection | None) -> dict[str, set[str]]:
    sets = _reason_sets(before)
    if mid is not None:
        sets[NAME_LOST] |= set(mid.names)
    return sets


def heal_home(
    facts: HomeFacts,
    *,
    mode: str = "auto",
    binary: str | None = None,
    timeout_s: float = 20.0,
    attempts: dict[str, int] | None = None,
    env: Mapping[str, str] | None = None,
) -> HealReport:
    """Detect what Codex's DB lost for one home and, unless off, heal it through Codex.

    `attempts` is the caller's persisted record of tries (updated in place and returned as
    `report.attempts`); `env` is the environment for Codex (default: ours) — `CODEX_HOME`
    is always set to the home. Never raises for Codex failures: they land in the report.
    """
    if mode not in MODES:
        raise ValueError(f"codex_api mode must be one of {', '.join(MODES)}, not {mode!r}")
    started = time.monotonic()
    record = attempts if attempts is not None else {}
    before = detect(facts)
    report = HealReport(mode=mode, attempts=record)
    root = str(facts.home.root)

    def done(
        after: Detection | None, attempted: set[str], mid: Detection | None = None
    ) -> HealReport:
        _finish(report, _sets_with(before, mid), after, record, attempted)
        report.duration_s = round(time.monotonic() - started, 3)
        return report

    if not before.db_available:
        kind = facts.db_error.kind if facts.db_error is not None else "missing"
        report.skipped_reason = f"the state DB is {kind}; Codex rebuilds it on its next start"
        return done(None, set())
    if before.empty:
        return done(before, set())
    names, rows = _tryable(before, record)
    if mode != "off" and not names and not rows:
        log.debug("heal.nothing_to_try", home=root, detected=before.counts())
        return done(before, set())
    check = check_codex(mode, binary, env=env, timeout_s=min(timeout_s, VERSION_TIMEOUT_S))
    report.codex_binary, report.codex_version = check.binary, check.version
    if not check.usable:
        report.skipped_reason = check.reason
        report.how_to_enable = check.hint
        emit = log.info if mode == "off" else log.warning
        emit("heal.off", home=root, reason=check.reason, detected=before.counts())
        return done(before, set())
    if not _SESSION_LOCK.acquire(timeout=max(60.0, 3 * timeout_s)):
        report.skipped_reason = "another heal kept Codex busy"
        return done(before, set())
    try:
        run = _run_session(facts, check, before, record=record, timeout_s=timeout_s, env=env)
    finally:
        _SESSION_LOCK.release()
    report.ran, report.error = run.ran, run.error
    after: Detection | None
    try:
        after = detect(facts, threads=_read_rows(facts))
    except (StateDbError, OSError) as exc:
        after = None
        report.error = report.error or f"could not read the state DB back: {exc}"
    done(after, run.attempted, run.mid)
    log.info(
        "heal.done",
        home=root,
        codex_version=check.version,
        ran=report.ran,
        detected=report.detected,
        healed=report.healed,
        not_healed=report.not_healed,
        given_up=report.given_up,
        name_set_errors=run.names_failed,
        scanned=run.scanned,
        inserted=run.inserted,
        error=report.error,
        duration_s=report.duration_s,
    )
    return report
