"""Find threads the way people refer to them: id, id prefix, name in any case, rollout path."""

from __future__ import annotations

import os
import re
from pathlib import Path

from codex_indexd.codex.home import thread_id_from_name
from codex_indexd.commands.arguments import MIN_PREFIX
from codex_indexd.engine import HomeFacts
from codex_indexd.engine.diagnose import find_threads, known_ids
from codex_indexd.records import field, record

_PREFIX_RE = re.compile(r"[0-9a-fA-F-]+")


@record(frozen=True, slots=True)
class Matches:
    """Thread ids found for a query, and how: `id`, `path`, `name`, `name_casefold`,
    `prefix`, or `ambiguous_prefix` (then `ids` lists the candidates, none is chosen)."""

    ids: list[str] = field(default_factory=list)
    how: str = "none"

    @property
    def ambiguous(self) -> bool:
        return self.how == "ambiguous_prefix"


def _names(facts: HomeFacts) -> list[tuple[str, str]]:
    """Every (thread id, name) pair the home knows: DB name and title, index, renames."""
    pairs: list[tuple[str, str]] = []
    for tid, row in (facts.threads or {}).items():
        pairs += [(tid, n) for n in (row.name, row.title) if n]
    pairs += [(tid, line.thread_name) for tid, line in facts.index.latest.items()]
    for tid, rollout in facts.rollouts.items():
        pairs += [(tid, rename.name) for rename in rollout.renames]
    return pairs


def _by_path(facts: HomeFacts, query: str) -> list[str]:
    """Threads whose rollout is the file `query` names (absolute, relative or ~)."""
    wanted = os.path.realpath(Path(query).expanduser())
    found = [
        tid for tid, rollout in facts.rollouts.items() if os.path.realpath(rollout.path) == wanted
    ]
    found += [
        tid
        for tid, row in (facts.threads or {}).items()
        if row.rollout_path and os.path.realpath(row.rollout_path) == wanted and tid not in found
    ]
    if not found:
        from_name = thread_id_from_name(os.path.basename(query))
        if from_name is not None and from_name in known_ids(facts):
            found.append(from_name)
    return found


def _looks_like_path(query: str) -> bool:
    return os.sep in query or query.endswith((".jsonl", ".jsonl.zst")) or query.startswith("~")


def find(facts: HomeFacts, query: str) -> Matches:
    """Return the threads `query` refers to, trying in order: the full id, a rollout path,
    the exact name, the name ignoring case, a unique id prefix of at least 6 characters."""
    text = query.strip()
    if not text:
        return Matches()
    if _looks_like_path(text):
        ids = _by_path(facts, text)
        if ids:
            return Matches(ids, "path")
    exact = find_threads(facts, text)
    if exact:
        return Matches(exact, "id" if text.lower() in exact else "name")
    folded = text.casefold()
    by_case: list[str] = []
    for tid, name in _names(facts):
        if name.strip().casefold() == folded and tid not in by_case:
            by_case.append(tid)
    if by_case:
        return Matches(by_case, "name_casefold")
    if len(text) >= MIN_PREFIX and _PREFIX_RE.fullmatch(text):
        prefix = text.lower()
        ids = sorted(tid for tid in known_ids(facts) if tid.startswith(prefix))
        if len(ids) == 1:
            return Matches(ids, "prefix")
        if ids:
            return Matches(ids, "ambiguous_prefix")
    return Matches()
