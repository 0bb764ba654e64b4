"""Name precedence for a thread: which name the index should carry (Codex 0.169's order)."""

from __future__ import annotations

from collections.abc import Collection

from codex_indexd.index.model import IndexLine, Rename, RolloutFacts, ThreadRow
from codex_indexd.index.timefmt import epoch_ms


def first_line(text: str | None) -> str:
    """Return the first non-blank line of `text`, stripped (or the stripped text)."""
    if not text:
        return ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped:
            return stripped
    return text.strip()


def _index_rename(index_line: IndexLine | None) -> str | None:
    """Return the name of the index's latest line when it is one a user chose (not blank, not
    the thread's id: see `latest_rename`)."""
    if index_line is None:
        return None
    stripped = index_line.thread_name.strip()
    if not stripped or stripped == index_line.thread_id:
        return None
    return index_line.thread_name


def latest_rename(index_line: IndexLine | None, rollout: RolloutFacts | None) -> Rename | None:
    """Return the newest user rename from the index's latest line and the rollout's events."""
    # A line naming the thread by its own id is a fallback someone wrote before the thread had
    # a message (the seed script did, and so do we), not a name a user chose.
    from_index = (
        index_line is not None
        and bool(index_line.thread_name.strip())
        and index_line.thread_name.strip() != index_line.thread_id
    )
    if rollout is None or not rollout.renames:
        if not from_index:
            return None
        assert index_line is not None
        # The only rename: its time is never compared, so it is not parsed (a hot path).
        return Rename(index_line.thread_name, index_line.updated_at, None)
    candidates: list[Rename] = []
    if from_index:
        assert index_line is not None
        candidates.append(
            Rename(index_line.thread_name, index_line.updated_at, epoch_ms(index_line.updated_at))
        )
    candidates.extend(rollout.renames)
    # Undated renames sort first; among equals the later source (rollout) wins.
    return max(enumerate(candidates), key=lambda pair: (pair[1].epoch_ms or -1, pair[0]))[1]


def db_name(thread: ThreadRow) -> str | None:
    """Return the DB's name: `name`, else a legacy `title` rename (title ≠ first message)."""
    if thread.name:
        return thread.name
    if thread.title and thread.title != thread.first_user_message:
        return thread.title
    return None


def rename_supersedes_db(
    rename: Rename, from_db: str, earlier: Collection[str], rollout: RolloutFacts | None
) -> bool:
    """True when `rename` was made after the DB name was set: the DB name shows up among the
    thread's earlier renames (index lines before the latest, or older rollout events).

    Timestamps cannot decide this: Codex 0.169 bumps `updated_at_ms` by only 1 ms on a rename,
    so an index line written before a DB-only rename still looks newer than the row.
    """
    if rename.name == from_db:
        return False
    if from_db in earlier:
        return True
    if rollout is not None and rename.epoch_ms is not None:
        return any(
            r.name == from_db and r.epoch_ms is not None and r.epoch_ms < rename.epoch_ms
            for r in rollout.renames
        )
    return False


def desired_name(
    thread_id: str,
    thread: ThreadRow | None,
    rollout: RolloutFacts | None,
    index_line: IndexLine | None,
    earlier_index_names: Collection[str] = (),
) -> str:
    """Return the name the index should carry for a thread.

    Precedence: DB `name`; DB `title` when it differs from `first_user_message`; the latest
    index or rollout rename; the title; the first line of the first user message; the id.
    A rename made after the DB value (see `rename_supersedes_db`) is never overridden by it.
    """
    if rollout is None or not rollout.renames:
        # The index's latest line is the only rename there can be (the common case, taken
        # without a Rename): undated, it supersedes the DB name only by `earlier` names.
        renamed = _index_rename(index_line)
        if thread is not None:
            from_db = db_name(thread)
            if from_db is not None:
                if renamed is not None and renamed != from_db and from_db in earlier_index_names:
                    return renamed
                return from_db
        if renamed is not None:
            return renamed
    else:
        rename = latest_rename(index_line, rollout)
        if thread is not None:
            from_db = db_name(thread)
            if from_db is not None:
                if rename is not None and rename_supersedes_db(
                    rename, from_db, earlier_index_names, rollout
                ):
                    return rename.name
                return from_db
        if rename is not None:
            return rename.name
    if thread is not None and thread.title:
        return thread.title
    if thread is not None and thread.first_user_message:
        return first_line(thread.first_user_message)
    if rollout is not None and rollout.title:
        return rollout.title
    if rollout is not None and rollout.first_user_message:
        return first_line(rollout.first_user_message)
    return thread_id


def derived_names(row: ThreadRow | None, rollout: RolloutFacts | None) -> set[str]:
    """Names Codex or we derive from messages (not chosen by a user)."""
    out: set[str] = set()
    for text in ((row.title, row.first_user_message) if row else ()) + (
        (rollout.title or "", rollout.first_user_message or "") if rollout else ()
    ):
        if text:
            out.update({text, first_line(text)})
    return out


def is_user_name(name: str, row: ThreadRow | None, rollout: RolloutFacts | None) -> bool:
    """True when `name` is not blank and not one Codex or we derive from the messages."""
    return bool(name.strip()) and name not in derived_names(row, rollout)
