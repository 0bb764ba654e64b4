"""While repair writes, Codex-style appenders lose nothing and tear nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from codex_indexd.cli import main
from tests.support.homes import (
    BASE_TIME,
    build_home,
    iso,
    new_thread,
    user_message,
)

ROOT = Path(__file__).resolve().parents[2]


def test_codex_appends_survive_concurrent_repairs(tmp_path: Path) -> None:
    threads = [new_thread(i, turns=3, paginated=True) for i in range(30)]
    home = build_home(tmp_path / "h", threads)
    count = 400
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.codex_like", str(home), str(count), tag],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for tag in ("p1", "p2")
    ]
    runs = 0
    rollout = next((home / "sessions").rglob("rollout-*.jsonl"))
    while any(p.poll() is None for p in procs) or runs < 3:
        # Each run must rewrite history in place: the new turn is older than the file's tail.
        with rollout.open("a") as handle:
            handle.write(
                user_message(f"late turn {runs}", iso(BASE_TIME + timedelta(seconds=runs)))
            )
        assert main(["repair", "--codex-home", str(home), "--max-threads", "0", "--no-backup"]) == 0
        runs += 1
    outputs = [p.communicate()[0] for p in procs]
    assert all("lost=0" in out for out in outputs), outputs
    history = (home / "history.jsonl").read_bytes()
    assert history.endswith(b"\n")
    lines = [json.loads(raw) for raw in history.splitlines()]  # nothing torn
    texts = [entry["text"] for entry in lines]
    for tag in ("p1", "p2"):
        for i in range(count):
            assert texts.count(f"{tag} prompt {i}") == 1
    index_lines = [
        json.loads(raw) for raw in (home / "session_index.jsonl").read_bytes().splitlines()
    ]
    names = [entry["thread_name"] for entry in index_lines]
    for tag in ("p1", "p2"):
        for i in range(count):
            assert f"{tag} name {i}" in names
    assert runs >= 3
    assert all(texts.count(f"late turn {r}") == 1 for r in range(runs))
