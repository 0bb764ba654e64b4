#!/usr/bin/env python3
"""Benchmark `codex-indexd repair --rebuild` against the seed script on a legacy corpus.

    python tests/bench/bench_repair.py --seed-script /work/shared/seed/refresh_codex_history.py \
        [--mb 500] [--corpus DIR] [--reps 3] [--keep] [--skip-ours] [--json OUT]

Generates (or reuses with `--corpus`) a legacy CODEX_HOME, copies it twice, warms the page
cache with one untimed read of both copies, then runs alternately
`python SEED --codex-home A --max-threads 0 --no-backup` and
`python -m codex_indexd repair --rebuild --codex-home B --max-threads 0 --no-backup`.
Each child's wall time, CPU time and peak RSS come from `os.wait4`. Prints medians, ratios,
whether the targets (>= 8x faster, peak RSS <= 0.5x seed) are met, and whether both homes'
`session_index.jsonl` and `history.jsonl` are byte-identical. Prints figures only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: Python puts only tests/bench on the path
    sys.path.insert(0, str(ROOT))

from tests.bench import gen_corpus  # noqa: E402
from tests.bench.bench_measure import iter_files, measure_floors, run_child, warm  # noqa: E402
from tests.bench.bench_report import (  # noqa: E402
    OUTPUTS,
    Report,
    RunResult,
    Summary,
    compare,
    print_report,
    targets_met,
)


def rollout_stats(home: Path) -> tuple[float, int]:
    """(MiB of rollouts, number of rollouts) in a CODEX_HOME."""
    sizes = [
        path.stat().st_size
        for sub in ("sessions", "archived_sessions")
        for path in iter_files(home / sub)
        if path.name.startswith("rollout-")
    ]
    return sum(sizes) / gen_corpus.MIB, len(sizes)


def copy_home(corpus: Path, dest: Path) -> None:
    """Copy a CODEX_HOME and point the DB's `rollout_path`s at the copy."""
    shutil.copytree(corpus, dest, symlinks=True)
    db = dest / gen_corpus.STATE_DB
    if not db.exists():
        return
    old, new = str(corpus.resolve()), str(dest.resolve())
    conn = sqlite3.connect(db)
    try:
        conn.execute(
            "UPDATE threads SET rollout_path = ? || substr(rollout_path, ?)"
            " WHERE substr(rollout_path, 1, ?) = ?",
            (new, len(old) + 1, len(old) + 1, old + "/"),
        )
        conn.commit()
    finally:
        conn.close()


def reset_outputs(home: Path, corpus: Path) -> None:
    """Put the index files (and their backups) back to the corpus state before a run."""
    for path in home.glob("*.bak.*"):
        path.unlink()
    for name in OUTPUTS:
        target = home / name
        target.unlink(missing_ok=True)
        if (corpus / name).exists():
            shutil.copy2(corpus / name, target)


def child_env(home: Path, scratch: Path) -> dict[str, str]:
    """Environment for a child: this CODEX_HOME and fresh XDG dirs (no cache carry-over)."""
    env = dict(os.environ)
    env["CODEX_HOME"] = str(home)
    for var in ("XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME"):
        path = scratch / var.lower()
        path.mkdir(parents=True, exist_ok=True)
        env[var] = str(path)
    return env


def seed_cmd(seed_script: Path, home: Path) -> list[str]:
    """The baseline command line."""
    return [
        sys.executable,
        str(seed_script),
        "--codex-home",
        str(home),
        "--max-threads",
        "0",
        "--no-backup",
    ]


def ours_cmd(python: str, home: Path) -> list[str]:
    """The codex-indexd command line."""
    return [
        python,
        "-m",
        "codex_indexd",
        "repair",
        "--rebuild",
        "--codex-home",
        str(home),
        "--max-threads",
        "0",
        "--no-backup",
    ]


def ours_available(python: str) -> bool:
    """Whether `python -m codex_indexd repair --help` works."""
    probe = subprocess.run(
        [python, "-m", "codex_indexd", "repair", "--help"],
        capture_output=True,
        check=False,
        timeout=120,
    )
    return probe.returncode == 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seed-script",
        type=Path,
        required=True,
        help="path to refresh_codex_history.py (the baseline)",
    )
    parser.add_argument("--mb", type=float, default=500.0, help="corpus MiB to generate (500)")
    parser.add_argument("--sessions", type=int, default=None, help="threads in the corpus")
    parser.add_argument("--seed", type=int, default=0, help="corpus random seed")
    parser.add_argument(
        "--history-max-bytes",
        type=int,
        default=0,
        help="generate the corpus with [history] max_bytes (0: unset)",
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        default=None,
        help="reuse this legacy CODEX_HOME instead of generating one (read-only)",
    )
    parser.add_argument("--reps", type=int, default=3, help="repetitions per tool (3)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="parent of the run's temp dir (default: the system temp dir)",
    )
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter that can import codex_indexd"
    )
    parser.add_argument("--skip-ours", action="store_true", help="measure the seed only")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 unless targets are met and outputs are identical",
    )
    return parser.parse_args(argv)


def prepare(args: argparse.Namespace, workdir: Path) -> Path:
    """Return the corpus to use, generating a legacy one under `workdir` if needed."""
    if args.corpus is not None:
        return Path(args.corpus).resolve()
    corpus = workdir / "corpus"
    summary = gen_corpus.generate(
        corpus,
        mb=args.mb,
        fmt="legacy",
        sessions=args.sessions,
        seed=args.seed,
        history_max_bytes=args.history_max_bytes,
        jobs=min(4, os.cpu_count() or 1),
    )
    gen_corpus.print_summary(summary)
    return corpus


def benchmark(args: argparse.Namespace, workdir: Path) -> Report:
    """Set up the homes, run all repetitions and compare the outputs."""
    corpus = prepare(args, workdir)
    homes = {"seed": workdir / "home-seed", "ours": workdir / "home-ours"}
    for home in homes.values():
        copy_home(corpus, home)
    mib, rollouts = rollout_stats(corpus)
    report = Report(corpus_mib=mib, rollouts=rollouts, reps=args.reps)
    if args.corpus is not None:
        report.corpus_label = "given with --corpus"
    report.ours_available = not args.skip_ours and ours_available(args.python)
    tools = ["seed", "ours"] if report.ours_available else ["seed"]
    print(f"warming page cache: {warm(list(homes.values())) / gen_corpus.MIB:.0f} MiB read")
    seed_script = Path(args.seed_script).resolve()
    for rep in range(args.reps):
        for tool in tools if rep % 2 == 0 else tools[::-1]:
            home = homes[tool]
            reset_outputs(home, corpus)
            scratch = workdir / "scratch" / f"{tool}-{rep}"
            cmd = seed_cmd(seed_script, home) if tool == "seed" else ours_cmd(args.python, home)
            log = workdir / f"{tool}-{rep}.log"
            wall, cpu, rss, code = run_child(cmd, child_env(home, scratch), log)
            ok = code == 0 and (tool != "seed" or b"status: success" in log.read_bytes())
            report.runs.append(RunResult(tool, rep, wall, cpu, rss, code, ok))
            print(f"rep {rep} {tool}: {wall:.3f} s, {rss / 1024:.1f} MiB, exit {code}", flush=True)
    if report.ours_available:
        report.comparisons = [compare(name, homes["seed"], homes["ours"]) for name in OUTPUTS]
    report.floors_mib = measure_floors(args.python, workdir, report.ours_available)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the benchmark and print the table."""
    args = parse_args(argv)
    if not Path(args.seed_script).is_file():
        print(f"error: seed script not found: {args.seed_script}", file=sys.stderr)
        return 2
    if args.reps < 1:
        print("error: --reps must be >= 1", file=sys.stderr)
        return 2
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="codex-indexd-bench-", dir=args.workdir))
    try:
        report = benchmark(args, workdir)
    finally:
        if args.keep:
            print(f"kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print_report(report)
    if args.json is not None:
        data = asdict(report) | {"summary": asdict(Summary.of(report.runs))}
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if not all(run.success for run in report.runs):
        return 1
    return 1 if args.strict and not targets_met(report) else 0


if __name__ == "__main__":
    raise SystemExit(main())
