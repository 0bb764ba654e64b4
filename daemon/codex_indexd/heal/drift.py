"""Notice a Codex newer than the releases tested, without changing what we do.

Information for `status`, never an error: the binary's version (from `check_codex`), the
`cli_version` newer rollouts carry, and migrations in the state DB's `_sqlx_migrations`
table that the tested releases do not have. The DB is opened read-only.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from codex_indexd.codex.rollout_file import session_meta
from codex_indexd.codex.statedb import StateDbError, connect_readonly
from codex_indexd.engine import HomeFacts
from codex_indexd.heal.codex_check import (
    TESTED_VERSIONS,
    CodexCheck,
    check_codex,
    newer_than_tested,
    shown_version,
    tested_versions_text,
)

STATE_MIGRATIONS: tuple[str, ...] = (
    "threads",  # 1
    "logs",
    "logs thread id",
    "thread dynamic tools",
    "threads cli version",
    "memories",
    "threads first user message",
    "backfill state",
    "stage1 outputs rollout slug",
    "logs process id",
    "logs partition prune indexes",
    "logs estimated bytes",
    "threads agent nickname",
    "agent jobs",
    "agent jobs max runtime seconds",
    "memory usage",
    "phase2 selection flag",
    "phase2 selection snapshot",
    "thread dynamic tools defer loading",
    "threads model reasoning effort",
    "thread spawn edges",
    "threads agent path",
    "drop logs",
    "remote control enrollments",
    "thread timestamps millis",
    "thread dynamic tools namespace",
    "threads cwd sort indexes",
    "device key bindings",
    "thread goals",
    "threads thread source",
    "drop device key bindings",
    "threads preview",
    "thread goal stopped statuses",
    "drop thread goals",
    "drop memory tables",
    "threads visible sort indexes",
    "remote control enrollments enabled",
    "external agent config imports",
    "threads recency at",
    "threads history mode",
    "threads name",
    "drop agent jobs",
    "threads is pinned",
    "external agent config imports provider id",
    "threads section",
    "threads section order",
    "rollout migration state",
    "thread section appearance",
    "projects",
    "threads section empty preview indexes",
    "thread artifacts",
    "projects recency",
    "threads originator",
    "threads daybreak enabled",
    "thread attachments",
    "threads creator identity",
    "cleanup guardian thread metadata",
    "threads archive sort indexes",
    "thread attachment reverse lookup",
    "guardian review feedback",
    "thread read state",
    "threads attached parent",  # 62
    "session model ids",  # 63
    "thread listing indexes",  # 64
)
"""`_sqlx_migrations` of state_5.sqlite as Codex 0.171.0 leaves it: version N is entry N-1.
Codex 0.169.0 has the first 62."""
ROLLOUTS_SAMPLED = 50  # the newest rollouts whose session_meta is read


def parse_version(text: object) -> tuple[int, int, int] | None:
    """Return `0.171.0`-style text as a tuple, or None (pre-release tails are ignored)."""
    if not isinstance(text, str):
        return None
    head = text.strip().split("-", 1)[0].split("+", 1)[0].split(".")
    if len(head) != 3 or not all(part.isdigit() for part in head):
        return None
    return int(head[0]), int(head[1]), int(head[2])


def newest_rollout_version(
    facts: HomeFacts, sample: int = ROLLOUTS_SAMPLED
) -> tuple[int, int, int] | None:
    """Return the highest `session_meta.cli_version` among the newest rollouts, or None."""
    paths = sorted((r.path for r in facts.rollouts.values()), key=lambda p: Path(p).name)
    best: tuple[int, int, int] | None = None
    for path in paths[-sample:]:
        version = parse_version(session_meta(path).get("cli_version"))
        if version is not None and (best is None or version > best):
            best = version
    return best


def unknown_migrations(db_path: Path) -> list[str]:
    """Return `N description` for each migration the tested releases do not have.

    A DB without the table, or one that cannot be read, gives [] (other checks report it).
    """
    try:
        conn = connect_readonly(db_path)
    except StateDbError:
        return []
    try:
        rows = conn.execute("SELECT version, description FROM _sqlx_migrations").fetchall()
    except sqlite3.Error:
        return []
    finally:
        conn.close()
    out: list[str] = []
    for version, description in sorted(rows, key=lambda r: (not isinstance(r[0], int), r[0])):
        known = isinstance(version, int) and 1 <= version <= len(STATE_MIGRATIONS)
        if not known or STATE_MIGRATIONS[version - 1] != description:
            out.append(f"{version} {description}")
    return out


def drift_notes(facts: HomeFacts, check: CodexCheck | None = None) -> list[str]:
    """Return information lines about a Codex newer than the releases tested ([] when none)."""
    notes: list[str] = []
    if check is not None and check.info:
        notes.append(check.info)
    rollout_version = newest_rollout_version(facts)
    if rollout_version is not None and newer_than_tested(rollout_version):
        notes.append(
            f"rollouts were written by Codex {shown_version(rollout_version)}, newer than the "
            f"versions tested: {tested_versions_text()}; codex-indexd reads them as before"
        )
    shapes = [r for r in facts.rollouts.values() if r.unknown_user_shapes]
    if shapes:
        lines = sum(r.unknown_user_shapes for r in shapes)
        first = next(r.unknown_shape for r in shapes if r.unknown_shape)
        notes.append(
            f"{lines} line(s) in {len(shapes)} rollout(s) have a shape codex-indexd does not "
            f"know and carry user text (first: {first}); their turns are not indexed, the "
            "rest is read as before"
        )
    if facts.db_path is not None and facts.db_error is None:
        unknown = unknown_migrations(facts.db_path)
        if unknown:
            shown = ", ".join(unknown[:5]) + (
                f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else ""
            )
            notes.append(
                f"the state DB has migrations the tested Codex versions ({tested_versions_text()}) "
                f"do not have: {shown}; it is still read the same way"
            )
    return notes


def status_info(facts: HomeFacts, mode: str = "auto", binary: str | None = None) -> list[str]:
    """Return `status`'s information lines for one home (the Codex binary is asked unless off)."""
    check = check_codex(mode, binary, timeout_s=5.0) if mode != "off" else None
    return drift_notes(facts, check)


__all__ = [
    "STATE_MIGRATIONS",
    "TESTED_VERSIONS",
    "drift_notes",
    "parse_version",
    "status_info",
    "unknown_migrations",
]
