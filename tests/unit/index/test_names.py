"""Name precedence: DB name, legacy DB title rename, latest index or rollout rename, title,
first line of the first message, id."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from codex_indexd.index.model import IndexLine, Rename, RolloutFacts, ThreadRow
from codex_indexd.index.names import (
    db_name,
    desired_name,
    first_line,
    latest_rename,
    rename_supersedes_db,
)

TID = "01a2133b-c369-7d21-8c95-fcf203b4a96c"


def row(
    *,
    name: str | None = None,
    title: str = "Explain apples\nmore",
    first: str = "Explain apples\nmore",
    updated_ms: int = 2_000_000,
) -> ThreadRow:
    return ThreadRow(TID, None, title, first, name, 1_000_000, updated_ms, False)


def facts(
    *renames: Rename, title: str | None = "Rollout title", first: str | None = "Rollout first"
) -> RolloutFacts:
    return RolloutFacts(TID, "/x", title=title, first_user_message=first, renames=list(renames))


def idx(name: str, ms: int) -> IndexLine:
    from codex_indexd.index.timefmt import iso_from_ms

    return IndexLine(TID, name, iso_from_ms(ms))


def test_db_name_first() -> None:
    assert desired_name(TID, row(name="Chosen"), facts(), idx("Old", 1_500_000)) == "Chosen"


def test_legacy_title_rename_when_it_differs_from_first_message() -> None:
    assert desired_name(TID, row(title="Renamed"), facts(), None) == "Renamed"


def test_rename_made_after_the_db_name_is_never_overridden() -> None:
    # the index saw the DB name, then an index-only rename followed
    assert (
        desired_name(TID, row(name="Chosen"), facts(), idx("Newer", 2_500_000), ["Chosen"])
        == "Newer"
    )
    older = Rename("Legacy rename", "2026-01-01T00:00:00Z", 2_500_000)
    newer_event = Rename("From rollout", "2026-01-01T00:00:01Z", 2_600_000)
    assert (
        desired_name(TID, row(title="Legacy rename"), facts(older, newer_event), None)
        == "From rollout"
    )


def test_db_rename_whose_index_line_was_lost_wins() -> None:
    # Codex 0.169 bumps updated_at_ms by 1 ms on a rename: timestamps cannot tell; the DB
    # name never reached the index (lock timeout), so the old index line is stale.
    assert (
        desired_name(TID, row(name="New name", updated_ms=1_000), facts(), idx("Old name", 5_000))
        == "New name"
    )
    assert (
        desired_name(TID, row(name="New name"), facts(), idx("Old name", 5_000), ["Older"])
        == "New name"
    )


def test_index_or_rollout_rename_before_title() -> None:
    assert desired_name(TID, row(), facts(), idx("Index name", 1_000)) == "Index name"
    event = Rename("Event name", "x", None)
    assert desired_name(TID, None, facts(event), None) == "Event name"


def test_title_then_first_line_then_id() -> None:
    assert desired_name(TID, row(), facts(), None) == "Explain apples\nmore"
    assert (
        desired_name(TID, row(title="", first="\n  first line \nsecond"), None, None)
        == "first line"
    )
    assert desired_name(TID, None, facts(title=None, first="Only first\nx"), None) == "Only first"
    assert desired_name(TID, None, facts(title=None, first=None), None) == TID


def test_db_name_is_the_name_else_a_title_that_differs_from_the_first_message() -> None:
    assert db_name(row(name="Chosen")) == "Chosen"
    assert db_name(row(title="Renamed", first="Explain apples")) == "Renamed"
    assert db_name(row()) is None  # title == first message: no rename
    assert db_name(row(title="", first="x")) is None


def test_an_index_line_naming_the_thread_by_its_id_is_no_rename() -> None:
    assert latest_rename(idx(TID, 1_000), None) is None
    assert latest_rename(idx("   ", 1_000), None) is None
    found = latest_rename(idx("Picked", 1_000), None)
    assert found is not None and found.name == "Picked"


def test_the_newest_rename_wins_and_the_rollout_wins_a_tie() -> None:
    older = Rename("Older event", "a", 1_000_000)
    newer = Rename("Newer event", "b", 3_000_000)
    found = latest_rename(idx("Index name", 2_000_000), facts(older, newer))
    assert found is not None and found.name == "Newer event"
    found = latest_rename(idx("Index name", 4_000_000), facts(older, newer))
    assert found is not None and found.name == "Index name"
    tie = Rename("Tie event", "c", 2_000_000)
    found = latest_rename(idx("Index name", 2_000_000), facts(tie))
    assert found is not None and found.name == "Tie event"


@given(st.text(max_size=40))
def test_first_line_is_a_stripped_line_of_the_text(text: str) -> None:
    got = first_line(text)
    assert got == got.strip()
    assert got in text
    non_blank = [line.strip() for line in text.splitlines() if line.strip()]
    assert got == (non_blank[0] if non_blank else ""), "the first non-blank line, or nothing"


names_st = st.none() | st.sampled_from(["", "Alpha", "Beta", "Gamma\nline two", "  "])


@given(
    name=names_st,
    title=names_st,
    first=names_st,
    index_name=names_st,
    index_ms=st.integers(0, 5_000_000),
    event_name=names_st,
    event_ms=st.none() | st.integers(0, 5_000_000),
    rollout_title=names_st,
    rollout_first=names_st,
    earlier=st.lists(st.sampled_from(["Alpha", "Beta"]), max_size=2),
)
def test_the_name_is_always_one_of_the_candidates(
    *,
    name: str | None,
    title: str | None,
    first: str | None,
    index_name: str | None,
    index_ms: int,
    event_name: str | None,
    event_ms: int | None,
    rollout_title: str | None,
    rollout_first: str | None,
    earlier: list[str],
) -> None:
    thread = None if title is None else row(name=name, title=title, first=first or "")
    events = [] if event_name is None else [Rename(event_name, "x", event_ms)]
    rollout = facts(*events, title=rollout_title, first=rollout_first)
    line = None if index_name is None else idx(index_name, index_ms)
    got = desired_name(TID, thread, rollout, line, earlier)
    candidates = {TID, index_name, event_name, rollout_title, first_line(rollout_first)}
    if thread is not None:
        candidates |= {thread.name, thread.title, first_line(thread.first_user_message)}
    assert got in candidates
    if thread is not None and thread.name and not earlier and not events:
        assert got == thread.name, "the DB name wins unless a later rename is known"


def reference_name(
    thread: ThreadRow | None,
    rollout: RolloutFacts | None,
    line: IndexLine | None,
    earlier: list[str],
) -> str:
    """The precedence through `latest_rename` alone, every rename as a Rename."""
    rename = latest_rename(line, rollout)
    if thread is not None and (from_db := db_name(thread)) is not None:
        if rename is not None and rename_supersedes_db(rename, from_db, earlier, rollout):
            return rename.name
        return from_db
    if rename is not None:
        return rename.name
    if thread is not None and (thread.title or thread.first_user_message):
        return thread.title or first_line(thread.first_user_message)
    if rollout is not None and (rollout.title or rollout.first_user_message):
        return rollout.title or first_line(rollout.first_user_message)
    return TID


@given(
    name=names_st,
    title=names_st,
    index_name=st.none() | st.sampled_from(["", " ", "Alpha", "Beta", TID, f" {TID} "]),
    events=st.lists(st.tuples(names_st, st.none() | st.integers(0, 5)), max_size=2),
    has_rollout=st.booleans(),
    earlier=st.lists(st.sampled_from(["Alpha", "Beta", "Gamma\nline two"]), max_size=2),
)
def test_the_name_without_rollout_renames_is_the_one_latest_rename_gives(
    *,
    name: str | None,
    title: str | None,
    index_name: str | None,
    events: list[tuple[str | None, int | None]],
    has_rollout: bool,
    earlier: list[str],
) -> None:
    thread = None if title is None else row(name=name, title=title, first="Alpha")
    renames = [Rename(n, "x", ms) for n, ms in events if n is not None]
    rollout = facts(*renames) if has_rollout else None
    line = None if index_name is None else idx(index_name, 3)
    expected = reference_name(thread, rollout, line, earlier)
    assert desired_name(TID, thread, rollout, line, earlier) == expected
