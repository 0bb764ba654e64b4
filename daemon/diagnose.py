"""Why a thread is or is not visible in Codex (codex-formats.md §2.5, §3.4; user-needs §1A–§1C)."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from codex_indexd.engine import HomeFacts
from codex_indexd.index.model import RolloutFacts, ThreadRow
from codex_indexd.index.names import db_name, desired_name, first_line, latest_rename

INTERACTIVE_SOURCES = frozenset({"cli", "vscode"})


@dataclass(frozen=True, slots=True)
class Finding:
    """One check: a stable code, whether it hides the thread, and words for people."""

    code: str
    hides: bool
    message: str


def find_threads(facts: HomeFacts, query: str) -> list[str]:
    """Return thread ids matching an id or a name (DB name/title, index name, rollout rename)."""
    try:
        return [str(uuid.UUID(query))]
    except ValueError:
        pass
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
    return bool(name.strip()) and name not in derived_names(row, rollout)


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
        source = "session_index.jsonl" if index_line and index_line.thread_name == name else "rollout thread_name_updated event"
    elif name == thread_id:
        source = "the thread id (no title, no message)"
    else:
        source = "the first user message"
    return name, source


def explain(facts: HomeFacts, thread_id: str) -> list[Finding]:
    """Return the findings for one thread, most important first."""
    out: list[Finding] = []
    row: ThreadRow | None = (facts.threads or {}).get(thread_id)
    rollout = facts.rollouts.get(thread_id)
    skipped = [w for w in facts.warnings if thread_id in w.path and w.event == "rollout.skipped"]
    if rollout is None and skipped:
        out.append(Finding("rollout_unparsable", True,
                           f"The rollout {skipped[0].path} has no usable session_meta ({skipped[0].detail}); "
                           "Codex cannot list or resume it."))
    elif rollout is None:
        out.append(Finding("rollout_missing", True, "No rollout file for this thread under sessions/ or "
                           "archived_sessions/: Codex hides the thread (the conversation itself is gone)."))
    if facts.threads is None:
        reason = facts.db_error.kind if facts.db_error else "missing"
        out.append(Finding("db_unavailable", False, f"The state DB is {reason}; Codex rebuilds it from the rollouts."))
    elif row is None and rollout is not None:
        out.append(Finding("no_db_row", True, "The rollout has no row in the state DB: the sidebar and "
                           "'codex resume' do not show it until Codex scans sessions/ (open the resume picker, "
                           "or run 'codex-indexd repair --heal-db')."))
    if row is not None and row.rollout_path and rollout is not None and not os.path.exists(row.rollout_path):
        out.append(Finding("row_stale_path", False, f"The DB points at {row.rollout_path}, which no longer exists; "
                           f"the file is at {rollout.path}. Codex repairs this on the next lookup by id."))
    archived = (row is not None and row.archived) or (rollout is not None and rollout.archived)
    if archived:
        out.append(Finding("archived", True, "The thread is archived: it shows only under archived threads "
                           "('codex unarchive <id>' brings it back)."))
    source = (row.source if row is not None else None) or (rollout.source if rollout is not None else None)
    if source is not None and source not in INTERACTIVE_SOURCES:
        out.append(Finding("non_interactive_source", True, f"Its source is {source!r}: 'codex resume' and the "
                           "default thread list show only cli/vscode threads ('codex resume --include-non-interactive' "
                           "shows it)."))
    provider = row.model_provider if row is not None else None
    if provider and provider != facts.config.model_provider:
        out.append(Finding("other_model_provider", True, f"It was made with model provider {provider!r}, but "
                           f"config.toml selects {facts.config.model_provider!r}; lists filter by provider."))
    if row is not None and row.preview is not None and not row.preview.strip():
        out.append(Finding("empty_preview", True, "Its preview is empty (no real user message was found), so "
                           "DB-served lists skip it."))
    line = facts.index.latest.get(thread_id)
    name, source_of_name = name_source(facts, thread_id)
    if line is None:
        out.append(Finding("not_in_index", False, "It has no line in session_index.jsonl (older Codex, "
                           "'codex exec resume <name>' and third-party tools look names up there)."))
    elif line.thread_name != name:
        out.append(Finding("index_name_stale", False, f"session_index.jsonl names it {line.thread_name!r}, "
                           f"but its name is {name!r}."))
    rename = latest_rename(line, rollout)
    if row is not None and db_name(row) is None and rename is not None \
            and is_user_name(rename.name, row, rollout):
        out.append(Finding("name_lost_in_db", True, f"Its name {rename.name!r} is only in session_index.jsonl or "
                           "the rollout; Codex 0.169 reads names from the DB, so the picker shows no name and "
                           "'codex resume <name>' fails ('codex-indexd repair --heal-db' restores it)."))
    out.append(Finding("name", False, f"Name: {name!r} (from {source_of_name})."))
    if rollout is not None:
        out.append(Finding("rollout", False, f"Rollout: {rollout.path} ({len(rollout.user_turns)} user turns)."))
    return out


def visible(findings: list[Finding]) -> bool:
    return not any(f.hides for f in findings)


def lock_holders(lock_file: Path) -> list[int]:
    """Return pids holding a flock on `lock_file`, from /proc/locks (no probing; Linux only)."""
    try:
        st = os.stat(lock_file)
        text = Path("/proc/locks").read_text(encoding="ascii", errors="replace")
    except OSError:
        return []
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    wanted = f"{major:02x}:{minor:02x}:{st.st_ino}"
    pids = []
    for raw in text.splitlines():
        parts = raw.split()
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == wanted:
            pids.append(int(parts[4]))
    return pids
