"""`codex-indexd report` leaks no prompt text; `explain` finds threads as people name them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from codex_indexd.cli import main
from tests.support.homes import (
    Turn,
    build_home,
    index_line,
    new_thread,
    rollout_path,
    write_rollout,
)

MARKER = "ZEBRA-PLANTED-PROMPT-7731"


def test_report_has_the_facts_and_no_prompt_text(
    tmp_path: Path,
    private_dirs: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    threads = [new_thread(i) for i in range(3)]
    threads[0].turns[0] = Turn(f"please keep {MARKER} secret\nsecond line {MARKER}")
    threads[1].turns[1] = Turn(f"{MARKER} in a later turn")
    home = build_home(tmp_path / ".codex", threads)
    (home / "session_index.jsonl").write_text(
        index_line(threads[2].thread_id, f"named {MARKER}", "2025-01-01T00:00:00Z")
    )
    assert main(["repair", "--codex-home", str(home), "--max-threads", "2", "--no-backup"]) == 0
    log = private_dirs / "log" / "codex-indexd.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(json.dumps({"event": "x.y", "note": f"{MARKER} leaked into a log"}) + "\n")
    capsys.readouterr()
    out_file = tmp_path / "report.txt"
    assert main(["report", "--codex-home", str(home), "--output", str(out_file)]) == 0
    text = out_file.read_text()
    assert MARKER not in text
    assert oct(out_file.stat().st_mode & 0o777) == "0o600"
    for needle in (
        "codex-indexd 0.",
        "python 3.",
        "## effective config",
        "watch.debounce_ms",
        "### status",
        # one left out by --max-threads 2, one whose index name Codex's DB lacks
        "threads with drift (in the index files or Codex's DB): 2",
        "x.y",
    ):
        assert needle in text, needle
    assert any(f'"id": "{t.thread_id}"' in text for t in threads)
    assert "~/.codex" in text and str(tmp_path) not in text


def test_report_explains_threads_codex_db_lost(
    tmp_path: Path, private_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread whose index lines are right but that has no DB row (hidden from `codex
    resume`) is a thread with a problem: the report explains it."""
    monkeypatch.setenv("CODEX_INDEXD_CODEX_BIN", str(tmp_path / "no-codex"))
    threads = [new_thread(i) for i in range(2)]
    home = build_home(tmp_path / "h", threads[:1])
    write_rollout(home, threads[1])
    assert main(["run", "--once", "--codex-home", str(home)]) == 0  # index files right
    out_file = tmp_path / "report.txt"
    assert main(["report", "--codex-home", str(home), "--output", str(out_file)]) == 0
    text = out_file.read_text()
    assert "threads with drift (in the index files or Codex's DB): 1" in text, text
    assert f'"id": "{threads[1].thread_id}"' in text and '"code": "no_db_row"' in text


@pytest.fixture
def home(tmp_path: Path) -> tuple[Path, list[str]]:
    threads = [new_thread(i, renames=[]) for i in range(3)]
    threads[2].thread_id = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
    root = build_home(tmp_path / "h", threads)
    (root / "session_index.jsonl").write_text(
        index_line(threads[0].thread_id, "Fix The Flaky Test", "2025-01-01T00:00:00Z")
        + index_line(threads[1].thread_id, "fix the flaky test", "2025-01-01T00:00:00Z")
    )
    return root, [t.thread_id for t in threads]


def explain_json(
    root: Path, query: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any]]:
    code = main(["explain", "--codex-home", str(root), "--json", query])
    return code, json.loads(capsys.readouterr().out)


def test_a_thread_is_found_by_prefix_name_any_case_and_rollout_path(
    home: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, ids = home
    unique = ids[2][:6]
    _code, data = explain_json(root, unique, capsys)
    assert [t["id"] for t in data["threads"]] == [ids[2]] and data["matched_by"] == "prefix"
    _code, data = explain_json(root, ids[2].upper(), capsys)
    assert [t["id"] for t in data["threads"]] == [ids[2]]
    _code, data = explain_json(root, "FIX THE FLAKY TEST", capsys)
    assert sorted(t["id"] for t in data["threads"]) == sorted(ids[:2])
    assert data["matched_by"] == "name_casefold"
    _code, data = explain_json(root, "Fix The Flaky Test", capsys)
    assert [t["id"] for t in data["threads"]] == [ids[0]] and data["matched_by"] == "name"
    thread = new_thread(1)
    path = rollout_path(root, thread)
    _code, data = explain_json(root, str(path), capsys)
    assert [t["id"] for t in data["threads"]] == [ids[1]] and data["matched_by"] == "path"
    only = data["threads"][0]
    assert only["rollout_path"] == str(path) and only["turns"] == 2
    assert only["visible"] is True and isinstance(only["findings"][0]["code"], str)


def test_an_ambiguous_or_short_prefix_is_refused_with_candidates(
    home: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, ids = home
    code, data = explain_json(root, ids[0][:20], capsys)
    assert code == 2 and sorted(data["candidates"]) == sorted(ids[:2])
    assert "Give more characters" in data["error"]
    code, data = explain_json(root, ids[0][:5], capsys)
    assert code == 2 and data["threads"] == []


def test_text_output_has_sentences_not_codes_and_plural_turns(
    home: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, ids = home
    assert main(["explain", "--codex-home", str(root), ids[2]]) == 0
    out = capsys.readouterr().out
    assert "(2 user turns)" in out and "[not_in_index]" not in out and "[name]" not in out
