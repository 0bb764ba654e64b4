"""The one reconcile path of `repair`, `run --once` and the daemon: plan, apply, and when the
write found `history.jsonl` changed since it was read (Codex trimmed it), read it again and
plan again. What each caller records of the outcome is its own (a report, the daemon's
status)."""

from __future__ import annotations

from collections.abc import Callable

from codex_indexd.collector import paused_gc
from codex_indexd.engine.apply import ApplyResult, apply_plan
from codex_indexd.engine.gather import HomeFacts
from codex_indexd.index.model import Policy
from codex_indexd.index.plan import Plan, make_plan
from codex_indexd.records import record, replace
from codex_indexd.write.backup import BackupPolicy
from codex_indexd.write.locks import INDEX_LOCK_TIMEOUT_S

# Given the plan, return the plan to write (the same, or one derived from it with less in
# it), or None to write nothing.
Prepare = Callable[[Plan], Plan | None]
# Return the facts with `history.jsonl` read again.
Reread = Callable[[HomeFacts], HomeFacts]
STALE_RETRIES = 3


def write_all(plan: Plan) -> Plan:
    """The `Prepare` that writes everything planned."""
    return plan


@record(frozen=True, slots=True)
class Reconciled:
    """The outcome: the facts and the plan last used, the plan handed to the writers and what
    they did (both None when nothing was written)."""

    facts: HomeFacts
    plan: Plan
    written: Plan | None = None
    result: ApplyResult | None = None


def _plan(
    facts: HomeFacts,
    policy: Policy,
    *,
    only: set[str] | None = None,
    fresh: frozenset[str] = frozenset(),
    with_desired: bool,
) -> Plan:
    """Return `make_plan` of `facts` with the collector paused; `with_desired` only for a
    rebuild, the one plan that writes every turn."""
    with paused_gc():
        return make_plan(
            facts.threads,
            facts.rollouts,
            facts.index,
            facts.history,
            policy,
            only=only,
            fresh=fresh,
            with_desired=with_desired,
        )


def reconcile(
    facts: HomeFacts,
    policy: Policy,
    *,
    backup: BackupPolicy,
    rebuild: bool = False,
    only: set[str] | None = None,
    fresh: frozenset[str] = frozenset(),
    prepare: Prepare = write_all,
    reread: Reread | None = None,
    index_lock_timeout_s: float = INDEX_LOCK_TIMEOUT_S,
) -> Reconciled:
    """Plan from `facts` (limited to `only`, holding `fresh` TUI turns: see `make_plan`), write
    what `prepare` keeps of the plan, and, with `reread`, retry up to STALE_RETRIES times on a
    stale `history.jsonl` with a full plan (a merge). Write failures are in the result's
    `errors`; nothing raises for them. The garbage collector is paused while planning."""
    plan = _plan(facts, policy, only=only, fresh=fresh, with_desired=rebuild)
    written = prepare(plan)
    if written is None:
        return Reconciled(facts, plan)
    result = apply_plan(
        facts,
        written,
        rebuild=rebuild,
        backup=backup,
        index_lock_timeout_s=index_lock_timeout_s,
    )
    for _ in range(STALE_RETRIES if reread is not None else 0):
        if reread is None or result.history is None or not result.history.stale:
            break
        facts = reread(facts)
        plan = _plan(facts, policy, with_desired=False)  # a merge now
        again = prepare(plan)
        if again is None:
            break
        written = again
        retried = apply_plan(
            facts,
            written,
            rebuild=False,
            backup=backup,
            index_lock_timeout_s=index_lock_timeout_s,
        )
        result = replace(retried, index=result.index or retried.index)
    return Reconciled(facts, plan, written, result)
