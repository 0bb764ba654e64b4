"""Name precedence: DB name, legacy title rename, index or rollout rename, title, message."""

from __future__ import annotations

from codex_indexd.index.model import IndexLine, Rename, RolloutFacts, ThreadRow
from codex_indexd.index.names import desired_name

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
