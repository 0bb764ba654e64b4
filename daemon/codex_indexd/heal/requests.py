"""What healing asks Codex's app-server: a `thread/list` scan that makes Codex insert rows for
rollouts it has none for, and per-thread row inserts through `thread/metadata/update`."""

from __future__ import annotations

from typing import Any

from codex_indexd.codex.rollout_file import session_meta
from codex_indexd.engine import HomeFacts
from codex_indexd.heal.appserver import AppServer
from codex_indexd.heal.child import RpcError
from codex_indexd.heal.codex_check import SOURCE_KINDS
from codex_indexd.log import get_logger

log = get_logger("codex_indexd.heal")
PAGE_SIZE = 100
MAX_PAGES = 10_000


def scan_threads(
    server: AppServer, timeout_s: float, source_kinds: tuple[str, ...] = SOURCE_KINDS
) -> int:
    """List every thread, archived and not, with scan-and-repair on; return how many."""
    seen = 0
    for archived in (False, True):
        cursor: str | None = None
        cursors: set[str] = set()
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {
                "sourceKinds": list(source_kinds),
                "modelProviders": [],
                "archived": archived,
                "useStateDbOnly": False,
                "limit": PAGE_SIZE,
            }
            if cursor is not None:
                params["cursor"] = cursor
            result = server.request("thread/list", params, timeout_s=timeout_s)
            page = result if isinstance(result, dict) else {}
            data = page.get("data")
            seen += len(data) if isinstance(data, list) else 0
            following = page.get("nextCursor")
            if not isinstance(following, str) or not following or following in cursors:
                break
            cursors.add(following)
            cursor = following
    return seen


def git_patch(facts: HomeFacts, thread_id: str) -> dict[str, str | None] | None:
    """The `gitInfo` patch that leaves a row as its rollout says (sha as recorded, or null).

    None when the rollout is compressed or has no readable `session_meta`: the scan heals it.
    """
    rollout = facts.rollouts.get(thread_id)
    if rollout is None or rollout.path.endswith(".zst"):
        return None
    meta = session_meta(rollout.path)
    if not meta:
        return None
    git = meta.get("git")
    sha = git.get("commit_hash") if isinstance(git, dict) else None
    return {"sha": sha if isinstance(sha, str) and sha else None}


def insert_rows(
    server: AppServer, facts: HomeFacts, thread_ids: set[str], timeout_s: float
) -> set[str]:
    """Have Codex insert each missing row from its rollout; return the ids it refused.

    `thread/metadata/update` reads the rollout into a row when there is none, then applies
    the patch; the patch restates the rollout's own git commit, so nothing else changes.
    """
    refused: set[str] = set()
    for tid in sorted(thread_ids):
        patch = git_patch(facts, tid)
        if patch is None:
            refused.add(tid)
            continue
        try:
            server.request(
                "thread/metadata/update", {"threadId": tid, "gitInfo": patch}, timeout_s=timeout_s
            )
        except RpcError as exc:
            refused.add(tid)
            log.warning(
                "heal.row_insert_failed",
                home=str(facts.home.root),
                thread_id=tid,
                code=exc.code,
                error=exc.rpc_message,
            )
    return refused
