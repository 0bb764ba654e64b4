"""Why a thread is or is not visible in Codex, and which of Codex's listings hide it.

Codex 0.169 and 0.171 list threads in two ways that hide different things. Each rule below
was checked against the real CLI (tests/e2e/test_explain_e2e.py, on both versions):

* The `codex resume` picker shows rows of the state DB only, like `thread/list` with
  `useStateDbOnly: true`: a rollout without a row is missing, and so is a row whose
  `rollout_path` no longer exists or whose `preview` is empty. It also drops a row whose
  rollout has no `session_meta`, and it shows every model provider's threads.
  `Finding.hides`.
* `thread/list` as app-server clients get it by default (no `useStateDbOnly`, no
  `modelProviders`) scans `sessions/`: it lists a rollout without a row (and inserts the
  row), skips a rollout without `session_meta` or without any user message, and keeps only
  threads whose `session_meta.model_provider` is the one config.toml selects.
  `Finding.hides_in_scan`.

Both hide archived threads and non-interactive sources (exec, sub-agents). Neither reads
`session_index.jsonl` for their own threads. Codex 0.169 names a thread only when asked to;
0.171's TUI names every new thread itself (the first prompt, cut to one short line).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from codex_indexd.codex.rollout_file import session_meta
from codex_indexd.engine import HomeFacts
from codex_indexd.index.model import RolloutFacts, ThreadRow
from codex_indexd.index.names import (
    db_name,
    desired_name,
    is_user_name,
    latest_rename,
)
from codex_indexd.records import record

INTERACTIVE_SOURCES = frozenset({"cli", "vscode", '{"custom":"atlas"}', '{"custom":"chatgpt"}'})
"""The sources Codex 0.169 and 0.171 list by default (in the DB's and our compact spelling);
every other source, custom ones included, is listed only when asked for. Checked against the
real CLI in tests/e2e/test_sources_e2e.py."""


@record(frozen=True, slots=True)
class Finding:
    """One check: a stable code, words for people, and what it does to the thread in Codex.

    `hides`: the `codex resume` picker skips the thread.
    `hides_in_scan`: `thread/list` with default parameters (it scans `sessions/`) skips it.
    `breaks`: Codex cannot open or resume the thread, even where a list shows it.
    """

    code: str
    message: str
    hides: bool = False
    hides_in_scan: bool = False
    breaks: bool = False


def known_ids(facts: HomeFacts) -> set[str]:
    """Every thread id some file of the home mentions."""
    ids = set(facts.threads or ()) | set(facts.rollouts) | set(facts.index.latest)
    ids.update(line.session_id for line in facts.history.parsed if line is not None)
    return ids


def _skipped_rollouts(facts: HomeFacts, thread_id: str) -> list[str]:
    """Rollout files named after `thread_id` that were skipped (no usable `session_meta`)."""
    return [
        w.path
        for w in facts.warnings
        if w.event == "rollout.skipped" and thread_id in Path(w.path).name
    ]


def find_threads(facts: HomeFacts, query: str) -> list[str]:
    """Return thread ids matching an id or a name (DB name/title, index name, rollout rename).

    An id no file mentions (no DB row, rollout, index or history line) matches nothing.
    """
    try:
        import uuid

        thread_id = str(uuid.UUID(query.strip()))
    except ValueError:
        pass
    else:
        known = thread_id in known_ids(facts) or bool(_skipped_rollouts(facts, thread_id))
        return [thread_id] if known else []
    wanted = query.strip()
    found: list[str] = []
    for tid, row in (facts.threads or {}).items():
        if wanted in (row.name, row.title):
            found.append(tid)
    for tid, line in facts.index.latest.items():
        if line.thread_name.strip() == wanted and tid not in found:
            found.append(tid)
    for tid, rollout in facts.rollouts.items():
        if any(r.name == wanted for r in rollout.renames) and tid not in found:
            found.append(tid)
    return found


def name_source(facts: HomeFacts, thread_id: str) -> tuple[str, str]:
    """Return the desired name and which source it comes from."""
    row = (facts.threads or {}).get(thread_id)
    rollout = facts.rollouts.get(thread_id)
    index_line = facts.index.latest.get(thread_id)
    name = desired_name(thread_id, row, rollout, index_line, facts.index.earlier_names(thread_id))
    rename = latest_rename(index_line, rollout)
    if row is not None and row.name == name:
        source = "state DB threads.name"
    elif row is not None and db_name(row) == name:
        source = "state DB threads.title (a legacy rename)"
    elif rename is not None and rename.name == name and is_user_name(name, row, rollout):
        in_index = index_line is not None and index_line.thread_name == name
        source = "session_index.jsonl" if in_index else "rollout thread_name_updated event"
    elif name == thread_id:
        source = "the thread id (no title, no message)"
    else:
        source = "the first user message"
    return name, source


def _is_exec(source: str | None) -> bool:
    return source == "exec"


@record(frozen=True, slots=True)
class _Thread:
    """What the home says about one thread, for the checks below."""

    thread_id: str
    row: ThreadRow | None
    rollout: RolloutFacts | None
    skipped: list[str]  # rollout files of this id without a usable session_meta
    meta: dict[str, Any]  # the rollout's session_meta payload ({} when unknown)

    @property
    def source(self) -> str | None:
        from_row = self.row.source if self.row is not None else None
        return from_row or (self.rollout.source if self.rollout is not None else None)

    @property
    def row_provider(self) -> str | None:
        return self.row.model_provider if self.row is not None else None

    @property
    def rollout_provider(self) -> str | None:
        value = self.meta.get("model_provider")
        return value if isinstance(value, str) and value else None


def _storage_findings(facts: HomeFacts, t: _Thread) -> list[Finding]:
    """Rollout file and DB row: present, parsable, pointing at each other."""
    out: list[Finding] = []
    row, rollout = t.row, t.rollout
    if rollout is None and t.skipped:
        row_note = (
            (" (thread/list with useStateDbOnly still returns its DB row, but the picker drops it)")
            if row is not None
            else ""
        )
        out.append(
            Finding(
                "rollout_unparsable",
                f'The rollout {t.skipped[0]} has no usable session_meta (Codex: "does not start '
                f"with session metadata\"): 'codex resume' does not show it{row_note}, a scanning "
                "thread/list skips it, and Codex cannot open or resume it.",
                hides=True,
                hides_in_scan=True,
                breaks=True,
            )
        )
    elif rollout is None and row is not None:
        out.append(
            Finding(
                "rollout_missing",
                "The DB row remains but the rollout file is gone from sessions/ and "
                "archived_sessions/: every list skips the thread (thread/read by id still answers, "
                "without the conversation).",
                hides=True,
                hides_in_scan=True,
            )
        )
    elif rollout is None:
        out.append(
            Finding(
                "rollout_missing",
                "No rollout file and no DB row: only session_index.jsonl or history.jsonl still "
                "mention this thread; Codex does not know it (the conversation is gone).",
                hides=True,
                hides_in_scan=True,
                breaks=True,
            )
        )
    if facts.threads is None:
        reason = facts.db_error.kind if facts.db_error else "missing"
        out.append(
            Finding(
                "db_unavailable",
                f"The state DB is {reason}; "
                "Codex rebuilds it from the rollouts when it next starts.",
            )
        )
    elif row is None and rollout is not None:
        out.append(
            Finding(
                "no_db_row",
                "The rollout has no row in the state DB, so 'codex resume' does not show it. A "
                "thread/list call that scans sessions/ (app-server's default) lists it and inserts "
                "the row; 'codex-indexd repair --heal-db' has Codex do that now.",
                hides=True,
            )
        )
    if (
        row is not None
        and row.rollout_path
        and rollout is not None
        and not os.path.exists(row.rollout_path)
    ):
        out.append(
            Finding(
                "row_stale_path",
                f"The DB points at {row.rollout_path}, which no longer exists; the file is at "
                f"{rollout.path}. 'codex resume' does not show the thread; a scanning thread/list "
                "and opening it by id still find the file, but neither fixes the row. Moving the "
                "file back to the path the DB names makes it visible again.",
                hides=True,
            )
        )
    return out


def _filter_findings(facts: HomeFacts, t: _Thread) -> list[Finding]:
    """The filters Codex's lists apply: archive, source, model provider, preview."""
    out: list[Finding] = []
    row, rollout = t.row, t.rollout
    if (row is not None and row.archived) or (rollout is not None and rollout.archived):
        out.append(
            Finding(
                "archived",
                "The thread is archived: lists show it only when asked for archived threads "
                "('codex unarchive <id>' brings it back).",
                hides=True,
                hides_in_scan=True,
            )
        )
    source = t.source
    if source is not None and source not in INTERACTIVE_SOURCES:
        kinds = 'sourceKinds ["exec"]' if _is_exec(source) else "the matching sourceKinds"
        out.append(
            Finding(
                "non_interactive_source",
                f"Its source is {source!r}: 'codex resume' and thread/list show only interactive "
                "threads (cli, vscode, and the custom sources atlas and chatgpt) unless asked; "
                f"'codex resume --include-non-interactive' and thread/list with {kinds} show it.",
                hides=True,
                hides_in_scan=True,
            )
        )
    selected = facts.config.model_provider
    others = [p for p in (t.rollout_provider, t.row_provider) if p and p != selected]
    if others:
        # The scan filters on the rollout's provider, DB-only lists on the row's.
        scanned = t.rollout_provider or t.row_provider
        out.append(
            Finding(
                "other_model_provider",
                f"It was made with model provider {others[0]!r}, but config.toml selects "
                f"{selected!r}: thread/list returns only the selected provider's threads unless "
                "called with modelProviders: [], so app-server clients that do not ask miss it. "
                "'codex resume' shows every provider's threads.",
                hides_in_scan=scanned is not None and scanned != selected,
            )
        )
    if (
        rollout is not None
        and rollout.first_user_message is None
        and not t.meta.get("forked_from_id")
    ):
        out.append(
            Finding(
                "no_user_message",
                "The rollout has no user message (only injected context): a scanning thread/list "
                "skips it; 'codex resume' shows it while its DB row has a preview.",
                hides_in_scan=True,
            )
        )
    if row is not None and row.preview is not None and not row.preview.strip():
        out.append(
            Finding(
                "empty_preview",
                "Its preview in the DB is empty, so 'codex resume' does not show it (a scanning "
                "thread/list takes the preview from the rollout).",
                hides=True,
            )
        )
    return out


def _name_findings(facts: HomeFacts, t: _Thread) -> list[Finding]:
    """Where the name lives (DB, index, rollout) and what is out of step; never hides."""
    out: list[Finding] = []
    line = facts.index.latest.get(t.thread_id)
    name, source_of_name = name_source(facts, t.thread_id)
    if line is None:
        why = (
            "'codex exec' never writes one"
            if _is_exec(t.source)
            else "Codex 0.169 writes one only when a thread gets a name; Codex 0.171's TUI names "
            "every new thread itself and writes the line then, app-server clients do not"
        )
        out.append(
            Finding(
                "not_in_index",
                f"It has no line in session_index.jsonl ({why}). Codex 0.169 and 0.171 list "
                "threads and resolve names from the DB, but older Codex builds and third-party "
                "tools read names there ('codex-indexd repair' adds the line).",
            )
        )
    elif line.thread_name != name:
        out.append(
            Finding(
                "index_name_stale",
                f"session_index.jsonl names it {line.thread_name!r}, but its name is {name!r}.",
            )
        )
    rename = latest_rename(line, t.rollout)
    if (
        t.row is not None
        and db_name(t.row) is None
        and rename is not None
        and is_user_name(rename.name, t.row, t.rollout)
    ):
        out.append(
            Finding(
                "name_lost_in_db",
                f"Its name {rename.name!r} is only in session_index.jsonl or the rollout; "
                "Codex (0.169, 0.171) "
                "reads names from the DB, so lists show the thread without a name and "
                "'codex resume <name>' or 'codex archive <name>' do not find it "
                "('codex-indexd repair --heal-db' restores it).",
            )
        )
    out.append(Finding("name", f"Name: {name!r}, from {source_of_name}."))
    return out


def explain(facts: HomeFacts, thread_id: str) -> list[Finding]:
    """Return the findings for one thread, most important first."""
    rollout = facts.rollouts.get(thread_id)
    t = _Thread(
        thread_id=thread_id,
        row=(facts.threads or {}).get(thread_id),
        rollout=rollout,
        skipped=_skipped_rollouts(facts, thread_id),
        meta=session_meta(rollout.path) if rollout is not None else {},
    )
    out = _storage_findings(facts, t) + _filter_findings(facts, t) + _name_findings(facts, t)
    if rollout is not None:
        turns = len(rollout.user_turns)
        out.append(Finding("rollout", f"Rollout: {rollout.path} ({turns} user turns)."))
    return out


def visible(findings: list[Finding]) -> bool:
    """True when the `codex resume` picker (a DB-served list) shows the thread."""
    return not any(f.hides for f in findings)


def visible_in_scan(findings: list[Finding]) -> bool:
    """True when the scanning `thread/list` (no `useStateDbOnly`) shows the thread."""
    return not any(f.hides_in_scan for f in findings)


def opens(findings: list[Finding]) -> bool:
    """False when Codex cannot open or resume the thread."""
    return not any(f.breaks for f in findings)
