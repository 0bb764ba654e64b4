"""The note on the daemon's policy compares which threads each restores; with no thread limit
only the orphans are selected again, and that gives the ids a whole selection gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from codex_indexd.codex.home import CodexHome
from codex_indexd.commands.repair_summary import restored_under
from codex_indexd.engine import gather, plan_for
from codex_indexd.engine.gather import selection_for
from codex_indexd.index.model import Policy
from codex_indexd.records import replace
from tests.support.homes import db_row, new_thread, write_db, write_rollout


def _home(tmp_path: Path, *, with_db: bool) -> CodexHome:
    home = tmp_path / "h"
    threads = [new_thread(i, archived=i % 5 == 4) for i in range(12)]
    for thread in threads:
        write_rollout(home, thread)
    if with_db:  # threads 8.. have no row: orphans (one of them archived)
        write_db(home, [db_row(home, t) for t in threads[:8]])
    return CodexHome.at(home)


@pytest.mark.parametrize("with_db", [True, False], ids=["db", "no-db"])
@pytest.mark.parametrize(("ours", "theirs"), [(False, True), (True, False)])
@pytest.mark.parametrize("their_limit", [0, 3])
def test_restored_under_equals_a_whole_selection(
    tmp_path: Path, with_db: bool, ours: bool, theirs: bool, their_limit: int
) -> None:
    facts = gather(_home(tmp_path, with_db=with_db))
    plan = plan_for(facts, Policy(max_threads=0, include_orphans=ours))
    policy = replace(plan.policy, max_threads=their_limit, include_orphans=theirs)
    expected = selection_for(facts, policy).thread_ids
    assert restored_under(facts, plan, policy) == expected
    if with_db and their_limit == 0:
        # the orphans make the difference: 3 live ones (one of the four is archived)
        assert len(expected ^ plan.selection.thread_ids) == 3
