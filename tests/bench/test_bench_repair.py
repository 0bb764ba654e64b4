"""Fast checks of the benchmark harness itself (measurement, comparison, a seed-only run)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.bench import bench_measure as measure
from tests.bench import bench_repair as bench
from tests.bench import bench_report as report

BENCH_DIR = Path(__file__).resolve().parent


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss semantics checked on Linux")
def test_peak_rss_is_the_childs_not_the_parents(tmp_path: Path) -> None:
    """A big benchmark process must not inflate a small child's ru_maxrss, and vice versa."""
    ballast = b"x" * (160 << 20)  # make this (parent) process big
    log = tmp_path / "log"
    env = dict(os.environ)
    _, _, small_kib, code = measure.run_child([sys.executable, "-c", "pass"], env, log)
    assert code == 0
    assert small_kib < 80 << 10
    grow = "data = b'y' * (96 << 20)"
    _, _, big_kib, code = measure.run_child([sys.executable, "-c", grow], env, log)
    assert code == 0 and big_kib > 96 << 10
    assert len(ballast) == 160 << 20


def test_exit_codes_and_output_go_to_the_log(tmp_path: Path) -> None:
    """The child's exit status comes back; its output lands in the log, not on our stdout."""
    log = tmp_path / "log"
    cmd = [sys.executable, "-c", "print('hello'); raise SystemExit(3)"]
    wall, cpu, _, code = measure.run_child(cmd, dict(os.environ), log)
    assert code == 3 and wall > 0 and cpu >= 0
    assert log.read_text() == "hello\n"


def test_compare_reports_figures_only(tmp_path: Path) -> None:
    """Identical files are identical; different ones get positions, not content."""
    seed, ours = tmp_path / "seed", tmp_path / "ours"
    seed.mkdir()
    ours.mkdir()
    (seed / "history.jsonl").write_bytes(b"a\nb\nc\n")
    (ours / "history.jsonl").write_bytes(b"a\nb\nc\n")
    assert report.compare("history.jsonl", seed, ours).identical
    (ours / "history.jsonl").write_bytes(b"a\nc\nb\n")
    comp = report.compare("history.jsonl", seed, ours)
    assert not comp.identical and comp.same_line_set
    assert (comp.differing_positions, comp.first_difference) == (2, 2)
    (seed / "session_index.jsonl").write_bytes(b"")
    assert not report.compare("session_index.jsonl", seed, ours).identical  # missing in ours


def test_seed_only_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 1 MiB seed-only benchmark completes and prints the table."""
    script = next(
        (
            Path(c)
            for c in (
                os.environ.get("CODEX_INDEXD_SEED_SCRIPT", ""),
                str(BENCH_DIR.parent.parent.parent / "shared/seed/refresh_codex_history.py"),
                "/work/shared/seed/refresh_codex_history.py",
            )
            if c and Path(c).is_file()
        ),
        None,
    )
    if script is None:
        pytest.skip("seed script not found (set CODEX_INDEXD_SEED_SCRIPT)")
    argv = ["--seed-script", str(script), "--mb", "1", "--reps", "1", "--skip-ours"]
    assert bench.main([*argv, "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "wall time (s)" in out and "rep 0 seed" in out
    assert list(tmp_path.iterdir()) == []  # work dir removed without --keep
