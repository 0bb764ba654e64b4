"""Smoke tests for the benchmark corpus generator (fast: about 2 MiB per corpus)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench import bench_repair, gen_corpus
from tests.bench.corpus_rollout import MAX_TOOL_OUTPUT

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent.parent
SEED_NAME = Path("seed", "refresh_codex_history.py")


def seed_script() -> Path | None:
    """The baseline script: $CODEX_INDEXD_SEED_SCRIPT, else `shared/` beside the repo."""
    candidates = [
        os.environ.get("CODEX_INDEXD_SEED_SCRIPT", ""),
        str(REPO_ROOT.parent / "shared" / SEED_NAME),
        str(Path("/work/shared") / SEED_NAME),
    ]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


def rollouts(home: Path) -> list[Path]:
    """All rollout files of a CODEX_HOME."""
    return sorted(
        [
            *home.glob("sessions/*/*/*/rollout-*.jsonl"),
            *home.glob("archived_sessions/rollout-*.jsonl"),
        ]
    )


def thread_id(path: Path) -> str:
    """The uuid at the end of a rollout file name."""
    return path.name.removesuffix(".jsonl")[-36:]


@pytest.fixture(scope="module")
def legacy_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 MiB legacy corpus shared by the tests of this module."""
    home = tmp_path_factory.mktemp("corpus") / "codex-home"
    assert (
        gen_corpus.main(
            [str(home), "--mb", "2", "--format", "legacy", "--seed", "7", "--jobs", "1"]
        )
        == 0
    )
    return home


@pytest.mark.parametrize("fmt", ["legacy", "paginated", "mixed"])
def test_rollouts_parse_and_follow_the_format(tmp_path: Path, fmt: str) -> None:
    """Every line is JSON in the envelope; timestamps increase; real user events exist."""
    home = tmp_path / "home"
    summary = gen_corpus.generate(home, mb=2, fmt=fmt, seed=1)
    assert 1.8 * gen_corpus.MIB < summary.total_bytes < 2.6 * gen_corpus.MIB
    user_events = 0
    for path in rollouts(home):
        lines = path.read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines]
        assert records[0]["type"] == "session_meta"
        assert records[0]["payload"]["id"] == thread_id(path)
        stamps = [record["timestamp"] for record in records]
        assert stamps == sorted(stamps) and all(s.endswith("Z") and len(s) == 24 for s in stamps)
        paginated = records[0]["payload"].get("history_mode") == "paginated"
        if paginated:
            assert [record["ordinal"] for record in records] == list(range(len(records)))
            assert thread_id(path)[14] == "7"
        else:
            assert all("ordinal" not in record for record in records)
            assert thread_id(path)[14] == "4"
        for record in records:
            payload = record["payload"]
            if record["type"] != "event_msg":
                continue
            if payload["type"] == "user_message" or (
                payload["type"] == "item_completed" and payload["item"]["type"] == "UserMessage"
            ):
                user_events += 1
                assert (payload["type"] == "item_completed") == paginated
    assert user_events >= len(rollouts(home))


def test_db_has_a_row_per_non_orphan_rollout(legacy_home: Path) -> None:
    """Rows match files: archived rows point into archived_sessions/, orphans have no row."""
    files = {thread_id(path): path for path in rollouts(legacy_home)}
    conn = sqlite3.connect(legacy_home / "state_5.sqlite")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        rows = conn.execute(
            "SELECT id, rollout_path, archived, title, first_user_message,"
            " name, history_mode FROM threads"
        ).fetchall()
    finally:
        conn.close()
    by_id = {row[0]: row for row in rows}
    orphans = set(files) - set(by_id)
    assert set(by_id) <= set(files)
    assert 1 <= len(orphans) < len(files) / 2
    assert all(files[orphan].parent.parent.parent.parent.name == "sessions" for orphan in orphans)
    archived = [row for row in rows if row[2] == 1]
    assert archived
    for ident, rollout_path, is_archived, title, first, name, mode in rows:
        assert Path(rollout_path) == files[ident].resolve()
        assert ("archived_sessions" in rollout_path) == bool(is_archived)
        assert title == first and title and name is None and mode == "legacy"


def test_generation_is_deterministic(tmp_path: Path) -> None:
    """Same seed, same rollout bytes, whatever the number of writer processes."""
    one = gen_corpus.generate(tmp_path / "a", mb=1, seed=3, jobs=1)
    two = gen_corpus.generate(tmp_path / "b", mb=1, seed=3, jobs=2)
    first = [path.relative_to(one.home) for path in rollouts(one.home)]
    assert first == [path.relative_to(two.home) for path in rollouts(two.home)]
    assert all((one.home / rel).read_bytes() == (two.home / rel).read_bytes() for rel in first)


def test_seed_script_succeeds_on_the_corpus(legacy_home: Path, tmp_path: Path) -> None:
    """The baseline rebuilds a non-empty history.jsonl from the legacy corpus."""
    script = seed_script()
    if script is None:
        pytest.skip("seed script not found (set CODEX_INDEXD_SEED_SCRIPT)")
    home = tmp_path / "home"
    bench_repair.copy_home(legacy_home, home)
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            "--codex-home",
            str(home),
            "--max-threads",
            "0",
            "--no-backup",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "status: success" in done.stdout.splitlines()
    history = (home / "history.jsonl").read_text(encoding="utf-8").splitlines()
    assert history and all(json.loads(line)["text"] for line in history)
    index = (home / "session_index.jsonl").read_text(encoding="utf-8").splitlines()
    assert index


def test_max_tool_output_gives_the_small_lines_shape(tmp_path: Path) -> None:
    """With a 48 KiB cap no line is much longer than that (legacy outputs are escaped twice),
    while the default shape has longer lines; both hold about the asked-for size."""
    longest = {}
    for cap in (48 << 10, MAX_TOOL_OUTPUT):
        home = tmp_path / str(cap)
        summary = gen_corpus.generate(home, mb=4, seed=3, max_tool_output=cap)
        assert abs(summary.total_bytes - 4 * gen_corpus.MIB) < gen_corpus.MIB
        longest[cap] = max(
            len(line) for p in rollouts(home) for line in p.read_bytes().split(b"\n")
        )
    assert longest[48 << 10] < 3 * (48 << 10) < longest[MAX_TOOL_OUTPUT]
    assert bench_repair.SHAPES["small-lines"] == 48 << 10
