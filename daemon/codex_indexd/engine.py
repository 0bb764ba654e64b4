"""The engine shared by `repair` and `run`: gather facts, plan (pure), apply via the writers."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from codex_indexd.codex.home import CodexConfig, CodexHome, iter_rollout_paths
from codex_indexd.codex.indexfiles import (
    HistoryFile,
    IndexFile,
    parse_index_bytes,
    read_history,
    read_index,
)
from codex_indexd.codex.rollout import RolloutScan, choose_rollout, scan_file
from codex_indexd.codex.statedb import StateDbError, load_threads
from codex_indexd.index.model import IndexLine, Policy, RolloutFacts, ThreadRow
from codex_indexd.index.plan import (
    HistoryAppend,
    Plan,
    encode_index_entry,
    history_append,
    make_plan,
    rebuilt_history_bytes,
    rebuilt_index_bytes,
)
from codex_indexd.log import get_logger
from codex_indexd.store.files import OurFiles
from codex_indexd.write.backup import BackupPolicy
from codex_indexd.write.history_writer import append_history, recover_history, write_history
from codex_indexd.write.index_writer import WriteResult, append_index, recover_index, replace_index
from codex_indexd.write.locks import INDEX_LOCK_TIMEOUT_S, LockBusy
from codex_indexd.write.safety import UnsafeTarget

log = get_logger("codex_indexd.engine")
Progress = Callable[[int, int | None], None]


@dataclass(slots=True)
class InputWarning:
    """Something skipped while reading, for the report (never holds prompt text)."""

    event: str
    path: str
    detail: str = ""


@dataclass(slots=True)
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


def report_scan(scan: RolloutScan, path: Path, size: int, warnings: list[InputWarning]) -> None:
    """Log and record what a finished scan skipped."""
    if scan.bare:
        warnings.append(
            InputWarning("rollout.skipped", str(path), "bare 2025 format; Codex ignores it")
        )
    elif not scan.facts.has_meta:
        warnings.append(InputWarning("rollout.skipped", str(path), "no usable session_meta"))
    if scan.malformed:
        warnings.append(
            InputWarning("rollout.malformed_lines", str(path), f"{scan.malformed} lines")
        )
    if scan.too_long:
        warnings.append(InputWarning("rollout.line_too_long", str(path), f"{scan.too_long} lines"))
    if scan.offset < size and not path.name.endswith(".zst"):
        warnings.append(
            InputWarning("rollout.partial_tail", str(path), f"{size - scan.offset} bytes")
        )


# Below this many bytes of rollouts a second process costs more than it saves (measured on
# 2 shared cores: 25 % slower at 200 MiB, 17 % faster at 1 GiB).
PARALLEL_SCAN_BYTES = 512 * 1024 * 1024
ScanResult = tuple[RolloutScan, int] | str  # the scan and the file's size, or why it failed


def scan_rollouts(
    home: CodexHome, warnings: list[InputWarning], progress: Progress | None = None
) -> tuple[dict[str, RolloutScan], int]:
    """Scan every rollout of the home; return usable scans by thread id and the file count."""
    found: list[tuple[Path, bool]] = [(p, False) for p in iter_rollout_paths(home.sessions)]
    found += [(p, True) for p in iter_rollout_paths(home.archived_sessions)]
    results = _scan_all(found, progress)
    scans: dict[str, RolloutScan] = {}
    for (path, _archived), result in zip(found, results, strict=True):
        if isinstance(result, str):
            warnings.append(InputWarning("rollout.unreadable", str(path), result))
            continue
        scan, size = result
        report_scan(scan, path, size, warnings)
        if scan.usable:
            keep_scan(scans, scan, warnings)
    return scans, len(found)


def _scan_one(path: Path, archived: bool) -> ScanResult:
    scan = RolloutScan.start(path, archived=archived)
    try:
        scan = scan_file(scan, path)
        return scan, path.stat().st_size
    except OSError as exc:
        return str(exc)


def _scan_all(found: list[tuple[Path, bool]], progress: Progress | None) -> list[ScanResult]:
    """Scan the files in order; a large cold scan is split with one forked child (files
    largest first, each to the lighter side) where the process has no other threads."""
    import threading

    sizes = [_size(path) for path, _ in found]
    if sum(sizes) < PARALLEL_SCAN_BYTES or threading.active_count() > 1 or not hasattr(os, "fork"):
        out: list[ScanResult] = []
        for done, (path, archived) in enumerate(found, 1):
            if progress is not None:
                progress(done, len(found))
            out.append(_scan_one(path, archived))
        return out
    ours: list[int] = []
    theirs: list[int] = []
    load = [0, 0]
    for i in sorted(range(len(found)), key=lambda i: -sizes[i]):
        side = 0 if load[0] <= load[1] else 1
        (ours if side == 0 else theirs).append(i)
        load[side] += sizes[i]
    results: list[ScanResult | None] = [None] * len(found)
    child = _fork_scanner([found[i] for i in theirs])
    for done, i in enumerate(ours, 1):
        if progress is not None:
            progress(done, len(found))
        results[i] = _scan_one(*found[i])
    for i, result in zip(theirs, child(), strict=True):
        results[i] = result
    if progress is not None:
        progress(len(found), len(found))
    return [r if r is not None else "not scanned" for r in results]


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0


def _fork_scanner(work: list[tuple[Path, bool]]) -> Callable[[], list[ScanResult]]:
    """Start a child that scans `work`; return a call that waits for its results (falling
    back to scanning here when the child fails)."""
    import pickle

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: scan, send, exit without running the parent's cleanup
        code = 0
        try:
            os.close(read_end)
            data = pickle.dumps([_scan_one(path, archived) for path, archived in work])
            with os.fdopen(write_end, "wb") as out:
                out.write(data)
        except BaseException:
            code = 1
        os._exit(code)
    os.close(write_end)

    def collect() -> list[ScanResult]:
        with os.fdopen(read_end, "rb") as source:
            data = source.read()
        _, status = os.waitpid(pid, 0)
        if status == 0:
            try:
                results: list[ScanResult] = pickle.loads(data)
                if len(results) == len(work):
                    return results
            except (pickle.PickleError, EOFError, ValueError):
                pass
        log.warning("rollout.scan_child_failed", status=status)
        return [_scan_one(path, archived) for path, archived in work]

    return collect


def keep_scan(
    scans: dict[str, RolloutScan], scan: RolloutScan, warnings: list[InputWarning]
) -> None:
    """Add a scan, resolving two files with the same thread id (live first, then more lines)."""
    thread_id = scan.facts.thread_id
    other = scans.get(thread_id)
    if other is None:
        scans[thread_id] = scan
        return
    winner = choose_rollout((scan, other)) or other
    loser = other if winner is scan else scan
    scans[thread_id] = winner
    warnings.append(
        InputWarning(
            "rollout.duplicate_id", loser.facts.path, f"same thread id as {winner.facts.path}"
        )
    )


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


def gather(home: CodexHome, progress: Progress | None = None) -> HomeFacts:
    """Read everything a plan needs from one home. Unreadable parts become warnings."""
    warnings: list[InputWarning] = []
    config = home.config()
    scans, count = scan_rollouts(home, warnings, progress)
    threads, db_path, db_error = read_state_db(home, config, warnings)
    facts = HomeFacts(
        home=home,
        config=config,
        threads=threads,
        db_path=db_path,
        rollouts={tid: scan.facts for tid, scan in scans.items()},
        index=read_index(home.session_index),
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


@dataclass(frozen=True, slots=True)
class Targets:
    """Where our side files for one home live."""

    backup_dir: Path
    journal: Path
    index_journal: Path

    @classmethod
    def for_home(cls, home: CodexHome) -> Targets:
        ours = OurFiles.for_home(home.root)
        return cls(ours.backups, ours.history_journal, ours.index_journal)


def recover(home: CodexHome) -> str | None:
    """Finish what a crash interrupted: the history journal and our stray temp files."""
    targets = Targets.for_home(home)
    recover_index(home.session_index, home.session_index_lock, targets.index_journal)
    outcome = recover_history(home.history, targets.journal)
    for stray in home.root.glob(".session_index.*.codex-indexd.tmp"):
        stray.unlink(missing_ok=True)
        log.warning("index.temp_removed", path=str(stray))
    return outcome


@dataclass(slots=True)
class ApplyResult:
    """What each writer did; a file whose write failed has its error in `errors` instead."""

    index: WriteResult | None = None
    history: WriteResult | None = None
    errors: dict[str, Exception] = field(default_factory=dict)

    def raise_first(self) -> None:
        """Re-raise the first error, if any."""
        for error in self.errors.values():
            raise error


def _index_lines_for(plan: Plan, seen: dict[str, IndexLine]) -> Callable[[IndexFile], list[bytes]]:
    def lines_for(current: IndexFile) -> list[bytes]:
        out: list[bytes] = []
        for entry in plan.drift.index_append:
            now = current.latest.get(entry.thread_id)
            if now != seen.get(entry.thread_id):
                continue  # renamed by Codex since we planned; the next reconcile decides
            if now is not None and now.thread_name == entry.thread_name:
                continue
            out.append(encode_index_entry(entry))
        return out

    return lines_for


def _rebuilt_index(plan: Plan, seen: dict[str, IndexLine]) -> Callable[[bytes], bytes]:
    """Build the replacement index from the bytes under the lock; a rename Codex appended
    since we planned keeps its name."""

    def build(current: bytes) -> bytes:
        parsed = parse_index_bytes(current)
        changed = {tid: line for tid, line in parsed.latest.items() if seen.get(tid) != line}
        entries = [
            replace(entry, thread_name=changed[entry.thread_id].thread_name)
            if entry.thread_id in changed
            else entry
            for entry in plan.selection.entries
        ]
        return rebuilt_index_bytes(replace(plan.selection, entries=entries), parsed)

    return build


def apply_plan(
    facts: HomeFacts,
    plan: Plan,
    *,
    rebuild: bool,
    backup: BackupPolicy,
    index_lock_timeout_s: float = INDEX_LOCK_TIMEOUT_S,
) -> ApplyResult:
    """Write what the plan says through Codex's protocols, each file on its own: a busy lock or
    a refusal on one file does not stop the other. Failures (LockBusy, UnsafeTarget, OSError)
    are returned in `errors`, keyed by file name."""
    home = facts.home
    targets = Targets.for_home(home)
    result = ApplyResult()
    seen = facts.index.latest
    if plan.writes_index and (rebuild or plan.drift.index_append):
        try:
            if rebuild:
                result.index = replace_index(
                    home.session_index,
                    home.session_index_lock,
                    _rebuilt_index(plan, seen),
                    backup_dir=targets.backup_dir,
                    backup=backup,
                    lock_timeout_s=index_lock_timeout_s,
                )
            else:
                result.index = append_index(
                    home.session_index,
                    home.session_index_lock,
                    _index_lines_for(plan, seen),
                    journal=targets.index_journal,
                    lock_timeout_s=index_lock_timeout_s,
                )
        except (LockBusy, UnsafeTarget, OSError) as exc:
            result.errors[home.session_index.name] = exc
    if plan.writes_history and (rebuild or plan.drift.history_add):
        desired, policy, planned = plan.desired_history, plan.policy, plan.drift.history_add

        def build(current: bytes) -> bytes:
            return rebuilt_history_bytes(current, desired, policy)

        def decide(size: int, read_at: Callable[[int, int], bytes]) -> HistoryAppend | None:
            return history_append(size, read_at, planned, policy, facts.history)

        try:
            if rebuild:
                result.history = write_history(
                    home.history,
                    targets.journal,
                    build,
                    backup_dir=targets.backup_dir,
                    backup=backup,
                )
            else:
                result.history = append_history(home.history, targets.journal, decide)
        except (LockBusy, UnsafeTarget, OSError) as exc:
            result.errors[home.history.name] = exc
    return result
