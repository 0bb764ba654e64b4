"""Which session sources Codex lists by default, and whether `explain` agrees, on real Codex.

One rollout per source kind (copies of a `codex exec` rollout with `session_meta.source`
rewritten), rows inserted by one scan over every kind, then the two default lists: the
scanning `thread/list` and the DB-served one the `codex resume` picker uses. `explain`'s
verdicts must match Codex's answer for every kind, on every pinned version.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from codex_indexd.codex.home import CodexHome
from codex_indexd.engine import gather
from codex_indexd.engine.diagnose import INTERACTIVE_SOURCES, explain, visible, visible_in_scan
from codex_indexd.heal import heal_home
from tests.e2e.codexkit import AppServer, codex_env, codex_exec, find_rollout

SOURCES: list[Any] = [
    "cli",
    "vscode",
    "exec",
    "mcp",
    {"custom": "atlas"},
    {"custom": "chatgpt"},
    {"custom": "Atlas"},
    {"custom": "other"},
    {"subagent": "review"},
]


def with_source(src: Path, old_id: str, source: Any) -> str:
    """Copy a rollout under a fresh id with `source` in its session_meta; return the id."""
    new_id = str(uuid.uuid4())
    first, rest = src.read_text(encoding="utf-8").split("\n", 1)
    meta = json.loads(first)
    assert meta["type"] == "session_meta"
    meta["payload"]["id"] = new_id
    meta["payload"]["source"] = source
    body = json.dumps(meta) + "\n" + rest.replace(old_id, new_id)
    (src.parent / src.name.replace(old_id, new_id)).write_text(body, encoding="utf-8")
    return new_id


def test_explain_agrees_with_codex_on_every_source_kind(codex_home: Path, codex_bin: Path) -> None:
    home = codex_home
    base = codex_exec(home, "A prompt about sources", codex_bin=codex_bin)
    src = find_rollout(home, base)
    assert src is not None
    ids = {with_source(src, base, source): source for source in SOURCES}
    report = heal_home(gather(CodexHome.at(home)), binary=str(codex_bin), env=codex_env(home))
    assert report.ran and report.error is None, report
    with AppServer(home, codex_bin=codex_bin) as app:
        scanned = {t["id"] for t in app.thread_list_all()}  # the defaults clients get
        from_db = {t["id"] for t in app.thread_list_all(useStateDbOnly=True)}
    facts = gather(CodexHome.at(home))
    listed_sources = set()
    for tid, source in ids.items():
        findings = explain(facts, tid)
        shown = json.dumps(source, separators=(",", ":")) if isinstance(source, dict) else source
        assert visible_in_scan(findings) == (tid in scanned), (shown, findings)
        assert visible(findings) == (tid in from_db), (shown, findings)
        if tid in scanned:
            listed_sources.add(shown)
    # the set Codex lists by default is the one explain calls interactive
    assert listed_sources == set(INTERACTIVE_SOURCES)
    assert {'{"custom":"atlas"}', '{"custom":"chatgpt"}', "cli", "vscode"} == listed_sources
