"""What Codex's own state DB has lost, computed from gathered facts.

Three reasons, each a set of thread ids:

* `name_lost_in_db` — the DB row has no name (`threads.name` empty; for a legacy thread also
  `title` equal to its first message) while the latest `session_index.jsonl` line or a
  rollout `thread_name_updated` event holds a name a user chose (not one derived from the
  messages). Only threads whose rollout we can read count: `thread/name/set` needs it.
* `row_missing` — a rollout with a usable `session_meta` has no DB row.
* `row_stale` — the row's `rollout_path` does not exist while the rollout lives elsewhere.

Pure apart from the existence check of DB paths, which callers (and tests) can replace.
Names are kept for the healer but never logged: they may be close to prompt text.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Protocol

from codex_indexd.index.lines import IndexFile
from codex_indexd.index.model import IndexLine, RolloutFacts, ThreadRow
from codex_indexd.index.names import is_user_name, latest_rename
from codex_indexd.records import field, record

NAME_LOST = "name_lost_in_db"
ROW_MISSING = "row_missing"
ROW_STALE = "row_stale"
REASONS = (NAME_LOST, ROW_MISSING, ROW_STALE)
IDS_SHOWN = 5

Exists = Callable[[str], bool]


class Facts(Protocol):
    """What detection reads of a home's facts (`engine.HomeFacts` has it)."""

    @property
    def threads(self) -> Mapping[str, ThreadRow] | None: ...
    @property
    def rollouts(self) -> Mapping[str, RolloutFacts]: ...
    @property
    def index(self) -> IndexFile: ...


@record(slots=True)
class Detection:
    """What the state DB lacks. `names` maps a thread id to the user's name to restore."""

    names: dict[str, str] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    stale: set[str] = field(default_factory=set)
    archived: set[str] = field(default_factory=set)  # among `names`: Codex 0.169 cannot rename them
    db_available: bool = True

    def by_reason(self) -> dict[str, set[str]]:
        return {
            NAME_LOST: set(self.names),
            ROW_MISSING: set(self.missing),
            ROW_STALE: set(self.stale),
        }

    def counts(self) -> dict[str, int]:
        """Counts by reason (every reason present, zero included)."""
        return {reason: len(ids) for reason, ids in self.by_reason().items()}

    def ids(self, limit: int = IDS_SHOWN) -> dict[str, list[str]]:
        """The first few ids of each reason (sorted, so reports are stable)."""
        return {reason: sorted(ids)[:limit] for reason, ids in self.by_reason().items()}

    @property
    def total(self) -> int:
        return len(self.names) + len(self.missing) + len(self.stale)

    @property
    def empty(self) -> bool:
        return self.total == 0


def db_has_name(row: ThreadRow) -> bool:
    """True when Codex 0.169 would show a name from the DB row itself: `name`, or for a legacy
    thread a `title` that differs from `first_user_message`."""
    if (row.name or "").strip():
        return True
    if row.history_mode == "paginated":
        return False  # paginated threads are named by `threads.name` only
    # legacy (or an older schema without history_mode): a title that differs from the first message
    return bool(row.title.strip()) and row.title != row.first_user_message


def lost_name(row: ThreadRow, rollout: RolloutFacts | None, line: IndexLine | None) -> str | None:
    """Return the user's name the DB lost for one thread, or None."""
    if rollout is None or db_has_name(row):
        return None
    rename = latest_rename(line, rollout)
    if rename is None or not is_user_name(rename.name, row, rollout):
        return None
    return rename.name


def _exists(path: str) -> bool:
    return os.path.exists(path) or (path.endswith(".jsonl") and os.path.exists(path + ".zst"))


def detect(
    facts: Facts,
    *,
    threads: Mapping[str, ThreadRow] | None = None,
    exists: Exists = _exists,
) -> Detection:
    """Return what the DB lacks. `threads` replaces `facts.threads` (a fresh read after a heal)."""
    rows = facts.threads if threads is None else threads
    if rows is None:
        return Detection(db_available=False)
    out = Detection()
    for tid, rollout in facts.rollouts.items():
        if not rollout.has_meta:
            continue
        row = rows.get(tid)
        if row is None:
            out.missing.add(tid)
            continue
        name = lost_name(row, rollout, facts.index.latest.get(tid))
        if name is not None:
            out.names[tid] = name
            if row.archived or rollout.archived:
                out.archived.add(tid)
        if (
            row.rollout_path
            and row.rollout_path != rollout.path
            and not exists(row.rollout_path)
            and exists(rollout.path)
        ):
            out.stale.add(tid)
    return out


def attempt_key(reason: str, thread_id: str, name: str | None = None) -> str:
    """Key of one healing attempt in the caller's persisted record.

    A name key carries a short hash of the name, so a new name the user chooses later gets
    fresh tries; the name itself is never stored.
    """
    if name is None:
        return f"{reason}:{thread_id}"
    import hashlib

    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
    return f"{reason}:{thread_id}:{digest}"


def attempt_keys(detection: Detection) -> dict[str, tuple[str, str]]:
    """Every current item's attempt key → (reason, thread id)."""
    keys: dict[str, tuple[str, str]] = {}
    for tid, name in detection.names.items():
        keys[attempt_key(NAME_LOST, tid, name)] = (NAME_LOST, tid)
    for tid in detection.missing:
        keys[attempt_key(ROW_MISSING, tid)] = (ROW_MISSING, tid)
    for tid in detection.stale:
        keys[attempt_key(ROW_STALE, tid)] = (ROW_STALE, tid)
    return keys
