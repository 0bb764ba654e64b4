"""One definition of the thread counts `status` and `repair` show: how many rollouts a home
has, how many threads a policy restores, and why the others are not restored."""

from __future__ import annotations

from typing import Any

from codex_indexd.commands.words import plural
from codex_indexd.engine import HomeFacts
from codex_indexd.engine.gather import selection_for
from codex_indexd.index.plan import Plan
from codex_indexd.records import record, replace


@record(frozen=True, slots=True)
class ThreadCounts:
    """Rollout files, threads restored, and the threads left out by reason."""

    rollout_files: int
    restored: int
    archived: int  # archived in Codex (on purpose): never restored
    unusable: int  # rollouts without a usable session_meta (skipped input)
    over_max_threads: int  # beyond the policy's max_threads (0 when unlimited)
    orphans: int  # rollouts without a DB row, left out by the policy

    def as_json(self) -> dict[str, Any]:
        """Return the counts as `status --json` and `repair --json` show them."""
        return {
            "rollout_files": self.rollout_files,
            "restored": self.restored,
            "not_restored": {
                "archived": self.archived,
                "no_usable_session_meta": self.unusable,
                "over_max_threads": self.over_max_threads,
                "orphans": self.orphans,
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ThreadCounts:
        """Return the counts `as_json` gave; raises KeyError on another shape."""
        left = data["not_restored"]
        return cls(
            rollout_files=data["rollout_files"],
            restored=data["restored"],
            archived=left["archived"],
            unusable=left["no_usable_session_meta"],
            over_max_threads=left["over_max_threads"],
            orphans=left["orphans"],
        )

    def sentence(self, max_threads_option: str, orphans_option: str) -> str:
        """Return e.g. "38 threads restored; not restored: 1 archived, 1 orphan (no DB row;
        --include-orphans adds it)"; the options name what sets the limit and takes orphans
        in (a command line flag or a config key)."""
        it = "it" if self.orphans == 1 else "them"
        reasons = (
            (self.archived, "archived"),
            (self.unusable, "without a usable session_meta"),
            (self.over_max_threads, f"over {max_threads_option}"),
            (
                self.orphans,
                plural(self.orphans, "orphan").split(" ", 1)[1]
                + f" (no DB row; {orphans_option} adds {it})",
            ),
        )
        excluded = ", ".join(f"{n} {why}" for n, why in reasons if n)
        return f"{plural(self.restored, 'thread')} restored" + (
            f"; not restored: {excluded}" if excluded else ""
        )


def thread_counts(facts: HomeFacts, plan: Plan) -> ThreadCounts:
    """Return the counts of `plan` (made from `facts`): restored threads and why the other
    rollouts are not restored (archived, no usable session_meta, over max_threads, orphans)."""
    restored = len(plan.selection.entries)
    archived = {t for t, r in (facts.threads or {}).items() if r.archived}
    archived |= {t for t, r in facts.rollouts.items() if r.archived}
    unusable = sum(1 for w in facts.warnings if w.event == "rollout.skipped")
    over = 0
    if plan.policy.max_threads:
        unlimited = selection_for(facts, replace(plan.policy, max_threads=0))
        over = len(unlimited.entries) - restored
    return ThreadCounts(
        rollout_files=facts.rollout_files,
        restored=restored,
        archived=len(archived),
        unusable=unusable,
        over_max_threads=over,
        orphans=plan.selection.skipped_orphans,
    )
