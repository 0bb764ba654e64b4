"""Which threads are restored, and the index entry each one should have."""

from __future__ import annotations

from datetime import UTC, datetime

from codex_indexd.index.model import IndexEntry, IndexLine, Policy, RolloutFacts, ThreadRow
from codex_indexd.index.names import desired_name
from codex_indexd.index.timefmt import (
    EPOCH,
    ONE_US,
    epoch_us_from_ms,
    iso_from_datetime,
    iso_from_ms,
    parse_rfc3339,
    stamp_text,
)
from codex_indexd.records import record


@record(frozen=True, slots=True)
class Selection:
    """The restored threads, newest first, with their desired index entries."""

    entries: tuple[IndexEntry, ...]
    skipped_orphans: int
    used_db: bool

    @property
    def thread_ids(self) -> set[str]:
        return {entry.thread_id for entry in self.entries}


def _from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def updated_at(
    thread: ThreadRow | None, rollout: RolloutFacts | None
) -> tuple[datetime, str] | None:
    """Return when a thread was last active, and how to write it.

    The rollout's last line time is used unless the DB's `updated_at_ms` is later; without
    either, the creation time. None when nothing is known.
    """
    best: tuple[datetime, str] | None = None
    if rollout is not None and rollout.last_timestamp:
        last = stamp_text(rollout.last_timestamp)
        parsed = parse_rfc3339(last)
        if parsed is not None:
            best = (parsed, last)
    if thread is not None and thread.updated_at_ms is not None:
        db_dt = _from_ms(thread.updated_at_ms)
        if best is None or db_dt > best[0]:
            best = (db_dt, iso_from_ms(thread.updated_at_ms))
    if best is not None:
        return best
    if thread is not None and thread.created_at_ms is not None:
        return _from_ms(thread.created_at_ms), iso_from_ms(thread.created_at_ms)
    if rollout is not None and rollout.created_at:
        parsed = parse_rfc3339(stamp_text(rollout.created_at))
        if parsed is not None:
            return parsed, iso_from_datetime(parsed)
    return None


def updated_at_us(thread: ThreadRow | None, rollout: RolloutFacts | None) -> tuple[int, str] | None:
    """Return `updated_at` with the time as exact epoch microseconds instead of a datetime
    (the same choice; a planning hot path: no datetime for the DB's time)."""
    best_us: int | None = None
    raw: str | None = None
    if rollout is not None and rollout.last_timestamp:
        raw = stamp_text(rollout.last_timestamp)
        parsed = parse_rfc3339(raw)
        if parsed is not None:
            best_us = (parsed - EPOCH) // ONE_US
    if thread is not None and (ms := thread.updated_at_ms) is not None:
        db_us = epoch_us_from_ms(ms)
        if best_us is None or db_us > best_us:
            return db_us, iso_from_ms(ms)
    if best_us is not None:
        assert raw is not None
        return best_us, raw
    when = updated_at(thread, rollout)  # the creation time, if any
    return None if when is None else ((when[0] - EPOCH) // ONE_US, when[1])


def select_threads(
    threads: dict[str, ThreadRow] | None,
    rollouts: dict[str, RolloutFacts],
    index_latest: dict[str, IndexLine],
    policy: Policy,
    earlier_names: dict[str, list[str]] | None = None,
    *,
    only: set[str] | None = None,
) -> Selection:
    """Return the restored threads: non-archived DB threads (plus orphans when asked), or every
    live rollout when the DB is missing or empty; newest first, at most `policy.max_threads`.

    With `only`, just those of the restored threads (valid when `max_threads` is 0, where
    whether a thread is restored does not depend on the others).
    """
    # A partial plan looks at `only` alone: its cost must not grow with the home.
    pool = rollouts.keys() if only is None else [tid for tid in only if tid in rollouts]
    live_rollouts = {tid for tid in pool if not rollouts[tid].archived}
    used_db = bool(threads)
    skipped = 0
    if threads:
        candidates = set(threads) if only is None else {tid for tid in only if tid in threads}
        orphans = live_rollouts - candidates
        if policy.include_orphans:
            candidates |= orphans
        else:
            skipped = len(orphans)
    else:
        threads = {}
        candidates = live_rollouts

    ranked: list[tuple[int, str, IndexEntry]] = []
    get_thread, get_rollout, get_line = threads.get, rollouts.get, index_latest.get
    get_earlier = (earlier_names or {}).get
    for thread_id in candidates:
        thread = get_thread(thread_id)
        if thread is not None and thread.archived:
            continue
        rollout = get_rollout(thread_id)
        when = updated_at_us(thread, rollout)
        if when is None:
            continue
        us, text = when
        earlier = get_earlier(thread_id, ())
        name = desired_name(thread_id, thread, rollout, get_line(thread_id), earlier)
        # `datetime.timestamp()` of an aware datetime is its microseconds / 10**6.
        entry = IndexEntry(thread_id, name, text, int(us / 1_000_000 * 1_000_000))
        ranked.append((us, thread_id, entry))
    ranked.sort(reverse=True)  # newest first, ties by id (ids are unique: entries never compared)
    if policy.max_threads > 0:
        ranked = ranked[: policy.max_threads]
    return Selection(tuple(entry for _, _, entry in ranked), skipped, used_db)
