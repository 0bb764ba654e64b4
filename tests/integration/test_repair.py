"""`codex-indexd repair` on small homes: seed compatibility, merge semantics, dry runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codex_indexd.cli import main
from tests.golden.corpora import CASES, COMPARED, GOLDEN, build_case
from tests.support.homes import (
    build_home,
    db_row,
    index_line,
    new_thread,
    read_jsonl,
    write_db,
    write_rollout,
)

SEED = Path(__file__).resolve().parents[2].parent / "shared" / "seed" / "refresh_codex_history.py"


def repair(home: Path, *extra: str) -> int:
    return main(["repair", "--codex-home", str(home), *extra])


def run_seed(home: Path, *extra: str) -> str:
    if not SEED.exists():
        pytest.skip(f"seed script not found at {SEED}")
    out = subprocess.run(
        [sys.executable, str(SEED), "--codex-home", str(home), *extra],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def snapshot(home: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under the home with (size, mtime_ns, inode)."""
    out = {}
    for path in sorted(home.rglob("*")):
        st = path.stat()
        out[str(path.relative_to(home))] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return out


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["--max-threads", "3"],
        ["--max-threads", "0"],
        ["--only", "history"],
        ["--only", "session-index"],
    ],
)
def test_rebuild_is_byte_identical_to_the_seed_on_a_legacy_home(
    tmp_path: Path, extra: list[str]
) -> None:
    threads = [new_thread(i, turns=3) for i in range(8)]
    threads[6].archived = True
    a = build_home(tmp_path / "a", threads[:7])
    write_rollout(a, threads[7])  # an orphan: rollout without a DB row
    (a / "config.toml").write_text("[history]\nmax_bytes = 1500\n")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    seed_out = run_seed(a, "--no-backup", *extra)
    assert repair(b, "--rebuild", "--no-backup", *extra) == 0
    for name in ("session_index.jsonl", "history.jsonl"):
        assert (a / name).exists() == (b / name).exists()
        if (a / name).exists():
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert "status: success" in seed_out


@pytest.mark.parametrize("case", list(CASES))
def test_rebuild_matches_the_old_scripts_committed_output(tmp_path: Path, case: str) -> None:
    """Runs from a plain clone: tests/golden/ holds what the old script wrote on these homes
    (regenerate with `python -m tests.golden.make_golden`)."""
    home = build_case(case, tmp_path / "home")
    assert repair(home, "--rebuild", "--no-backup", *CASES[case]) == 0
    for name in COMPARED[case]:
        golden = GOLDEN / case / name
        if (GOLDEN / case / f"{name}.absent").exists():
            assert not (home / name).exists(), name
        else:
            assert (home / name).read_bytes() == golden.read_bytes(), (case, name)


def test_orphans_get_the_real_prompt_not_injected_context(tmp_path: Path) -> None:
    threads = [new_thread(i, turns=2) for i in range(3)]
    a = build_home(tmp_path / "a", threads[:2])
    write_rollout(a, threads[2])
    b = tmp_path / "b"
    shutil.copytree(a, b)
    run_seed(a, "--no-backup", "--include-orphans")
    assert repair(b, "--rebuild", "--include-orphans") == 0
    seed_names = {e["id"]: e["thread_name"] for e in read_jsonl(a / "session_index.jsonl")}
    ours = {e["id"]: e["thread_name"] for e in read_jsonl(b / "session_index.jsonl")}
    orphan = threads[2].thread_id
    assert seed_names[orphan].startswith("<environment_context>")  # the seed's bug
    assert ours[orphan] == threads[2].turns[0].text
    assert (a / "history.jsonl").read_bytes() == (b / "history.jsonl").read_bytes()


def test_seed_summary_lines_are_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = build_home(tmp_path / "h", [new_thread(i) for i in range(3)])
    assert repair(home, "--no-backup") == 0
    out = capsys.readouterr().out
    for prefix in (
        "conversations refreshed: 3",
        "source: active threads from state_5.sqlite",
        "orphan sessions skipped: 0",
        "max conversations: 100",
        "file: updated",
        "history max bytes: not configured",
        "status: success",
    ):
        assert prefix in out


def test_paginated_home_gets_a_full_history(tmp_path: Path) -> None:
    threads = [new_thread(i, turns=2, paginated=True) for i in range(4)]
    home = build_home(tmp_path / "h", threads)
    assert repair(home) == 0
    history = read_jsonl(home / "history.jsonl")
    assert len(history) == 8
    assert {h["session_id"] for h in history} == {t.thread_id for t in threads}
    assert (home / "history.jsonl").stat().st_mode & 0o777 == 0o600


def test_merge_keeps_codex_lines_and_user_names_and_is_idempotent(tmp_path: Path) -> None:
    threads = [new_thread(i, turns=2, paginated=True) for i in range(3)]
    home = build_home(tmp_path / "h", threads, names={threads[0].thread_id: "DB name"})
    renamed = threads[1].thread_id
    original_index = (
        index_line(renamed, "My chosen name", "2030-01-01T00:00:00.000000000Z")  # newer than the DB
        + "this line is garbage\n"
    )
    (home / "session_index.jsonl").write_text(original_index)
    codex_history = (
        json.dumps(
            {
                "session_id": threads[2].thread_id,
                "ts": int(threads[2].start.timestamp()) + 11,
                "text": threads[2].turns[0].text,
            }
        )
        + "\n"
    )
    (home / "history.jsonl").write_text(codex_history)
    os.chmod(home / "history.jsonl", 0o600)
    inode = (home / "history.jsonl").stat().st_ino

    assert repair(home) == 0
    index_text = (home / "session_index.jsonl").read_text()
    assert index_text.startswith(original_index)  # nothing Codex wrote was touched
    latest = {e["id"]: e["thread_name"] for e in read_jsonl_lenient(home / "session_index.jsonl")}
    assert latest[threads[0].thread_id] == "DB name"
    assert latest[renamed] == "My chosen name"
    history_text = (home / "history.jsonl").read_text()
    assert history_text.count(threads[2].turns[0].text.split("\n")[0]) == 1  # not duplicated
    assert codex_history in history_text
    assert len(history_text.splitlines()) == 6
    assert (home / "history.jsonl").stat().st_ino == inode

    before = snapshot(home)
    assert repair(home) == 0
    assert snapshot(home) == before  # a second run changes nothing


def read_jsonl_lenient(path: Path) -> list[dict[str, str]]:
    out = []
    for raw in path.read_text().splitlines():
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue
    return out


def test_dry_run_changes_nothing_not_even_db_side_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    threads = [new_thread(i, turns=1, paginated=True) for i in range(3)]
    home = build_home(tmp_path / "h", threads)
    assert not (home / "state_5.sqlite-wal").exists()
    before = snapshot(home)
    assert repair(home, "--dry-run") == 0
    assert snapshot(home) == before
    out = capsys.readouterr().out
    assert "file: would update" in out
    assert "index lines would add: 3 (3 threads missing from session_index.jsonl)" in out
    assert f"threads missing from session_index.jsonl: {threads[2].thread_id}" in out
    assert "index_missing" not in out  # codes stay in JSON


def test_words_and_counts_add_up(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """40 rollouts: one archived, one without session_meta, one orphan; every one accounted."""
    threads = [new_thread(i, turns=1) for i in range(39)]
    threads[5].archived = True
    home = build_home(tmp_path / "h", threads[:38])
    write_rollout(home, threads[38])  # orphan
    broken = home / "sessions" / "2025" / "01" / "01"
    broken.mkdir(parents=True, exist_ok=True)
    (broken / "rollout-2025-01-01T00-00-00-7c9e6679-7425-40de-944b-e07fc1f90ae7.jsonl").write_text(
        '{"not": "a session_meta"}\n'
    )
    assert repair(home, "--no-backup", "--max-threads", "30") == 0
    out = capsys.readouterr().out
    assert (
        "rollouts: 40 files; 30 threads restored; not restored: 1 archived, 1 without a usable "
        "session_meta, 7 over --max-threads 30, 1 orphan (no DB row; --include-orphans adds it)"
        in out
    ), out
    # Codex's DB drift in words; the codes stay in JSON
    assert "state DB drift: 1 rollout without a row in Codex's DB" in out, out
    assert "row_missing" not in out
    # the daemon's defaults (all threads, orphans) differ here: one line says so
    assert "the daemon restores all threads with orphans (38 threads here)" in out, out
    assert "Pass --max-threads 0 --include-orphans to match it." in out
    # nothing left to do: no "would update" beside "would add: 0", no restart advice
    assert repair(home, "--dry-run", "--max-threads", "30") == 0
    out = capsys.readouterr().out
    assert "index lines would add: 0" in out and "file: would update" not in out
    assert "restart Codex" not in out
    assert f"  rollouts without a row in Codex's DB: {threads[38].thread_id}" in out, out
    assert "row_missing" not in out
    # the JSON report holds the same counts, by code
    assert repair(home, "--dry-run", "--max-threads", "30", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["counts"] == {
        "rollout_files": 40,
        "restored": 30,
        "not_restored": {
            "archived": 1,
            "no_usable_session_meta": 1,
            "over_max_threads": 7,
            "orphans": 1,
        },
    }
    assert data["db_drift"]["counts"]["row_missing"] == 1


def test_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = build_home(tmp_path / "h", [new_thread(i, paginated=True) for i in range(2)])
    assert repair(home, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "success"
    assert report["index_lines_added"] == 2
    assert report["history_lines_added"] == 4
    assert report["drift"] == {"index_missing": 2, "history_missing": 4}


def test_persistence_none_never_writes_history(tmp_path: Path) -> None:
    home = build_home(tmp_path / "h", [new_thread(0)])
    (home / "config.toml").write_text('[history]\npersistence = "none"\n')
    assert repair(home, "--rebuild") == 0
    assert not (home / "history.jsonl").exists()
    assert (home / "session_index.jsonl").exists()


def test_sqlite_home_from_config_is_used(tmp_path: Path) -> None:
    threads = [new_thread(i) for i in range(2)]
    home = build_home(tmp_path / "h", threads, db=False)
    dbdir = tmp_path / "db"
    dbdir.mkdir()
    write_db(dbdir, [db_row(home, threads[0])])
    (home / "config.toml").write_text(f'sqlite_home = "{dbdir}"\n')
    assert repair(home, "--rebuild") == 0
    assert [e["id"] for e in read_jsonl(home / "session_index.jsonl")] == [threads[0].thread_id]


def test_backups_are_private_and_outside_codex_home(tmp_path: Path, private_dirs: Path) -> None:
    home = build_home(tmp_path / "h", [new_thread(0)])
    (home / "history.jsonl").write_text('{"session_id":"x","ts":1,"text":"old"}\n')
    assert repair(home, "--rebuild") == 0
    backups = list((private_dirs / "state" / "backups").rglob("*.bak"))
    assert backups and all(b.stat().st_mode & 0o777 == 0o600 for b in backups)
    assert not list(home.glob("*.bak*"))
    assert repair(home, "--rebuild", "--no-backup") == 0


def test_backups_of_a_dot_home_are_in_a_visible_directory(
    tmp_path: Path, private_dirs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = build_home(tmp_path / ".codex", [new_thread(0)])
    (home / "history.jsonl").write_text('{"session_id":"x","ts":1,"text":"old"}\n')
    assert repair(home, "--rebuild") == 0
    (directory,) = (private_dirs / "state" / "backups").iterdir()
    assert directory.name.startswith("codex-") and list(directory.glob("*.bak"))
    assert f"file: created {directory}/" in capsys.readouterr().out


@pytest.mark.parametrize("fails", [False, True], ids=["succeeds", "raises"])
def test_repair_pauses_the_cycle_collector_only_while_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: bool
) -> None:
    import gc

    from codex_indexd.commands import repair_home as repair_mod

    home = build_home(tmp_path / "h", [new_thread(i) for i in range(3)])
    seen: list[bool] = []
    real = getattr(repair_mod, "gather")  # noqa: B009 (imported there, not exported)

    def gather(*args: object, **kwargs: object) -> object:
        seen.append(gc.isenabled())
        if fails:
            raise OSError(5, "injected")
        return real(*args, **kwargs)

    monkeypatch.setattr(repair_mod, "gather", gather)
    assert gc.isenabled()
    assert repair(home, "--max-threads", "0", "--dry-run") == (1 if fails else 0)
    assert seen == [False]
    assert gc.isenabled()


@pytest.mark.parametrize("extra", [["--dry-run", "--json"], ["--rebuild"], []])
def test_a_repair_with_its_scan_shared_writes_and_reports_as_one_process(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
) -> None:
    from codex_indexd.codex import scan_queue
    from tests.support.scan_children import shared_scans

    threads = [new_thread(i, turns=1 + i % 3, paginated=i % 2 == 1) for i in range(12)]
    one = build_home(tmp_path / "one" / "home", threads)
    shared = tmp_path / "shared" / "home"
    shutil.copytree(one, shared, symlinks=True)
    assert repair(one, "--max-threads", "0", *extra) == 0
    one_out = capsys.readouterr().out
    monkeypatch.setattr(scan_queue, "PARALLEL_SCAN_BYTES", 0)
    made = shared_scans(monkeypatch, forked=True)
    assert repair(shared, "--max-threads", "0", *extra) == 0
    assert len(made) == 1 and made[0].peak_kib > 0  # a child ran and reported
    assert capsys.readouterr().out.replace(str(shared), str(one)) == one_out
    for name in ("session_index.jsonl", "history.jsonl"):
        assert (one / name).exists() == (shared / name).exists()
        if (one / name).exists():
            assert (shared / name).read_bytes() == (one / name).read_bytes()


def test_a_repair_that_fails_after_its_scan_started_leaves_no_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from codex_indexd.codex import scan_queue, scan_split
    from codex_indexd.commands import repair_home
    from tests.support.scan_children import has_children

    home = build_home(tmp_path / "h", [new_thread(i) for i in range(4)])
    monkeypatch.setattr(scan_queue, "PARALLEL_SCAN_BYTES", 0)
    monkeypatch.setattr(scan_split, "may_fork", lambda: True)

    def recover(home: object) -> None:
        raise OSError(5, "Input/output error", "journal")

    monkeypatch.setattr(repair_home, "recover", recover)
    assert repair(home) == 1
    assert "error: Input/output error (journal)" in capsys.readouterr().out
    assert not has_children()


@pytest.mark.parametrize("named_by", ["config", "codex-home-variable", "option"])
def test_the_scan_begun_before_the_config_is_read_serves_only_its_own_home(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    private_dirs: Path,
    named_by: str,
) -> None:
    """`repair` begins scanning ~/.codex (or $CODEX_HOME's first path, or --codex-home)
    before it reads the config file; when the config names another home, that scan is
    dropped and the home the config names is repaired, as without the early start."""
    from codex_indexd.codex import scan_queue
    from tests.support.scan_children import has_children, shared_scans

    dot_codex = build_home(tmp_path / "user" / ".codex", [new_thread(i) for i in range(5)])
    wanted = build_home(tmp_path / "wanted", [new_thread(20 + i) for i in range(3)])
    reference = tmp_path / "reference"
    shutil.copytree(wanted, reference, symlinks=True)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    argv = ["repair", "--max-threads", "0"]
    if named_by == "config":
        private_dirs.mkdir(parents=True, exist_ok=True)
        (private_dirs / "config.toml").write_text(f'homes = ["{wanted}"]\n')
    elif named_by == "codex-home-variable":
        monkeypatch.setenv("CODEX_HOME", f"{wanted}{os.pathsep}{dot_codex}")
    else:
        argv += ["--codex-home", str(wanted)]
    assert repair(reference, "--max-threads", "0") == 0
    expected = capsys.readouterr().out.replace(str(reference), str(wanted))
    monkeypatch.setattr(scan_queue, "PARALLEL_SCAN_BYTES", 0)
    made = shared_scans(monkeypatch, forked=True)
    assert main(argv) == 0
    assert capsys.readouterr().out == expected
    homes = [shared.jobs[0][0].split("/sessions/")[0] for shared in made]
    assert homes == ([str(dot_codex), str(wanted)] if named_by == "config" else [str(wanted)])
    for name in ("session_index.jsonl", "history.jsonl"):
        assert (wanted / name).read_bytes() == (reference / name).read_bytes()
    assert not has_children()
