"""Applying a plan through Codex's protocols, and finishing what a crash interrupted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from codex_indexd.codex.home import CodexHome
from codex_indexd.engine.gather import HomeFacts
from codex_indexd.index.lines import IndexFile, parse_index_bytes
from codex_indexd.index.model import IndexLine
from codex_indexd.index.plan import (
    HistoryAppend,
    Plan,
    encode_index_entry,
    history_append,
    rebuilt_history_bytes,
    rebuilt_index_bytes,
)
from codex_indexd.log import get_logger
from codex_indexd.records import field, record, replace
from codex_indexd.store.files import OurFiles
from codex_indexd.write.backup import BackupPolicy
from codex_indexd.write.locks import INDEX_LOCK_TIMEOUT_S, LockBusy
from codex_indexd.write.safety import UnsafeTarget

if TYPE_CHECKING:
    from codex_indexd.write.index_writer import WriteResult

log = get_logger("codex_indexd.engine")


@record(frozen=True, slots=True)
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
    from codex_indexd.write.history_writer import recover_history
    from codex_indexd.write.index_writer import recover_index

    targets = Targets.for_home(home)
    recover_index(home.session_index, home.session_index_lock, targets.index_journal)
    outcome = recover_history(home.history, targets.journal)
    for stray in home.root.glob(".session_index.*.codex-indexd.tmp"):
        stray.unlink(missing_ok=True)
        log.warning("index.temp_removed", path=str(stray))
    return outcome


@record(slots=True)
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
        entries = tuple(
            replace(entry, thread_name=changed[entry.thread_id].thread_name)
            if entry.thread_id in changed
            else entry
            for entry in plan.selection.entries
        )
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
    # The writers are imported here: reading and planning (a dry run, status, explain) never
    # load them.
    from codex_indexd.write.history_writer import append_history, write_history
    from codex_indexd.write.index_writer import append_index, replace_index

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
