"""Detection of what Codex's state DB lost: pure, from hand-made facts."""

from __future__ import annotations

from pathlib import Path

import pytest

from codex_indexd.codex.home import CodexConfig, CodexHome
from codex_indexd.engine import HomeFacts
from codex_indexd.heal.detect import (
    NAME_LOST,
    ROW_MISSING,
    ROW_STALE,
    attempt_key,
    attempt_keys,
    db_has_name,
    detect,
)
from codex_indexd.index.lines import HistoryFile, IndexFile
from codex_indexd.index.model import IndexLine, Rename, RolloutFacts, ThreadRow
from codex_indexd.index.timefmt import epoch_ms

A = "01a2133b-c369-7d21-8c95-fcf203b4a96c"
B = "01a2133b-c369-7d21-8c95-fcf203b4a96d"
C = "01a2133b-c369-7d21-8c95-fcf203b4a96e"
FIRST = "Explain the apples\nin detail"
HOME = Path("/h")


def rollout(
    tid: str = A,
    *,
    path: str | None = None,
    archived: bool = False,
    renames: list[Rename] | None = None,
    has_meta: bool = True,
) -> RolloutFacts:
    return RolloutFacts(
        tid,
        path or f"/h/sessions/2026/11/25/rollout-x-{tid}.jsonl",
        archived=archived,
        title=FIRST,
        first_user_message=FIRST,
        renames=renames or [],
        has_meta=has_meta,
        history_mode="paginated",
    )


def row(
    tid: str = A,
    *,
    name: str | None = None,
    title: str = FIRST,
    first: str = FIRST,
    mode: str | None = "paginated",
    path: str | None = None,
    archived: bool = False,
) -> ThreadRow:
    return ThreadRow(
        tid,
        path if path is not None else f"/h/sessions/2026/11/25/rollout-x-{tid}.jsonl",
        title,
        first,
        name,
        1,
        2,
        archived,
        "cli",
        mode,
        first,
        "mock",
    )


def facts(
    rows: list[ThreadRow] | None, rollouts: list[RolloutFacts], index: dict[str, str] | None = None
) -> HomeFacts:
    latest = {
        tid: IndexLine(tid, name, "2026-11-25T10:00:00Z") for tid, name in (index or {}).items()
    }
    return HomeFacts(
        home=CodexHome(HOME),
        config=CodexConfig(),
        threads=None if rows is None else {r.thread_id: r for r in rows},
        db_path=None if rows is None else HOME / "state_5.sqlite",
        rollouts={r.thread_id: r for r in rollouts},
        index=IndexFile(latest=latest),
        history=HistoryFile(),
    )


def every_path_exists(path: str) -> bool:
    return True


def test_paginated_thread_without_db_name_but_index_name_is_lost() -> None:
    found = detect(facts([row()], [rollout()], {A: "Apple thread"}), exists=every_path_exists)
    assert found.names == {A: "Apple thread"}
    assert found.counts() == {NAME_LOST: 1, ROW_MISSING: 0, ROW_STALE: 0}
    assert found.ids() == {NAME_LOST: [A], ROW_MISSING: [], ROW_STALE: []}


def test_a_db_name_is_not_lost_even_when_the_index_differs() -> None:
    found = detect(
        facts([row(name="Other")], [rollout()], {A: "Apple thread"}), exists=every_path_exists
    )
    assert found.empty


@pytest.mark.parametrize("derived", [FIRST, "Explain the apples", "  "])
def test_names_derived_from_messages_are_not_user_names(derived: str) -> None:
    found = detect(facts([row()], [rollout()], {A: derived}), exists=every_path_exists)
    assert found.names == {}


def test_legacy_title_equal_to_first_message_counts_as_no_name() -> None:
    legacy = row(mode="legacy")
    assert not db_has_name(legacy)
    found = detect(facts([legacy], [rollout()], {A: "Legacy name"}), exists=every_path_exists)
    assert found.names == {A: "Legacy name"}


def test_legacy_title_rename_is_a_db_name() -> None:
    legacy = row(mode="legacy", title="Legacy name")
    assert db_has_name(legacy)
    assert detect(facts([legacy], [rollout()], {A: "Legacy name"}), exists=every_path_exists).empty


def test_paginated_title_that_differs_from_first_message_is_not_a_name() -> None:
    # e.g. an image-only first turn: first_user_message "[Image]", title = later text
    paginated = row(title="Later text", first="[Image]")
    assert not db_has_name(paginated)
    assert detect(facts([paginated], [rollout()], {A: "Mine"}), exists=every_path_exists).names == {
        A: "Mine"
    }


def test_rollout_rename_event_is_a_source_and_the_newest_rename_wins() -> None:
    old_index = {A: "Old index name"}  # dated 2026-11-25T10:00:00Z
    newer = Rename("From the rollout", "2026-11-25T11:00:00Z", epoch_ms("2026-11-25T11:00:00Z"))
    found = detect(facts([row()], [rollout(renames=[newer])], old_index), exists=every_path_exists)
    assert found.names == {A: "From the rollout"}
    older = Rename("Older event", "2026-11-25T09:00:00Z", epoch_ms("2026-11-25T09:00:00Z"))
    found = detect(facts([row()], [rollout(renames=[older])], old_index), exists=every_path_exists)
    assert found.names == {A: "Old index name"}
    only_event = detect(facts([row()], [rollout(renames=[newer])]), exists=every_path_exists)
    assert only_event.names == {A: "From the rollout"}


def test_no_rollout_means_nothing_to_rename() -> None:
    assert detect(facts([row()], [], {A: "Apple thread"}), exists=every_path_exists).empty


def test_archived_threads_are_detected_and_marked() -> None:
    found = detect(
        facts([row(archived=True)], [rollout(archived=True)], {A: "Kept"}), exists=every_path_exists
    )
    assert found.names == {A: "Kept"}
    assert found.archived == {A}


def test_row_missing_needs_a_usable_session_meta() -> None:
    found = detect(
        facts([row()], [rollout(), rollout(B), rollout(C, has_meta=False)]),
        exists=every_path_exists,
    )
    assert found.missing == {B}
    assert found.counts()[ROW_MISSING] == 1


def test_row_stale_when_db_path_is_gone_and_the_file_lives_elsewhere() -> None:
    moved = rollout(path="/h/archived_sessions/rollout-x.jsonl")
    gone = {"/h/sessions/2026/11/25/rollout-x-" + A + ".jsonl"}

    def exists(path: str) -> bool:
        return path not in gone

    assert detect(facts([row()], [moved]), exists=exists).stale == {A}
    # the DB path still exists (a duplicate, or the same file under another spelling): not stale
    assert detect(facts([row()], [moved]), exists=every_path_exists).stale == set()
    # same path, or no path in the DB: not stale
    assert detect(facts([row()], [rollout()]), exists=exists).stale == set()
    assert detect(facts([row(path="")], [moved]), exists=exists).stale == set()


def test_no_db_means_no_detection() -> None:
    found = detect(facts(None, [rollout()], {A: "Apple"}))
    assert not found.db_available
    assert found.empty


def test_threads_override_replaces_the_gathered_rows() -> None:
    base = facts([row()], [rollout()], {A: "Apple"})
    assert detect(base, threads={A: row(name="Apple")}, exists=every_path_exists).empty


def test_ids_are_sorted_and_capped() -> None:
    tids = [f"01a2133b-c369-7d21-8c95-fcf203b4a9{i:02d}" for i in range(9)]
    found = detect(facts([], [rollout(t) for t in reversed(tids)]), exists=every_path_exists)
    assert found.counts()[ROW_MISSING] == 9
    assert found.ids(limit=3)[ROW_MISSING] == tids[:3]


def test_attempt_keys_hash_the_name_and_never_store_it() -> None:
    key = attempt_key(NAME_LOST, A, "Secret project name")
    assert key.startswith(f"{NAME_LOST}:{A}:")
    assert "Secret" not in key
    assert attempt_key(NAME_LOST, A, "Another") != key
    found = detect(
        facts([row()], [rollout(), rollout(B)], {A: "Secret project name"}),
        exists=every_path_exists,
    )
    assert attempt_keys(found) == {
        key: (NAME_LOST, A),
        attempt_key(ROW_MISSING, B): (ROW_MISSING, B),
    }
