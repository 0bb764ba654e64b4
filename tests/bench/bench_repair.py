#!/usr/bin/env python3
"""Benchmark `codex-indexd repair --rebuild` against `cat` of the same files and the seed script.

    python tests/bench/bench_repair.py [--seed-script SEED | --no-seed] [--mb 500] \
        [--shape huge-lines|small-lines|both] [--dry-run] [--corpus DIR] [--reps 3] \
        [--keep] [--skip-ours] [--json OUT]

Generates (or reuses with `--corpus`) a legacy CODEX_HOME of each shape (huge-lines: tool
outputs up to 300 KB; small-lines: capped at 48 KiB), copies it twice, warms the page cache
with one untimed read of both copies, then in each repetition runs, in alternating order,
`cat` of ours' rollout files to /dev/null (the floor),
`python SEED --codex-home A --max-threads 0 --no-backup` (when the seed script is found) and
`python -m codex_indexd repair --rebuild --codex-home B --max-threads 0 --no-backup`
(`--dry-run` instead of `--no-backup` with `--dry-run`). Each child's wall time, CPU time and
peak RSS come from `os.wait4`. Prints medians, ratios to `cat` and to the seed, whether the
targets are met, and (unless a dry run) whether both homes' `session_index.jsonl` and
`history.jsonl` are byte-identical. Prints figures only.
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
    TOOLS,
    Report,
    RunResult,
    Summary,
    compare,
    print_report,
    targets_met,
)

SHAPES = {"huge-lines": 300 << 10, "small-lines": 48 << 10}  # shape: --max-tool-output
SEED_NAME = "refresh_codex_history.py"


def find_seed_script() -> Path | None:
    """The seed script: `$CODEX_INDEXD_SEED_SCRIPT`, else `shared/seed/` beside the
    repository, else `/work/shared/seed/`; None when none of them is a file."""
    candidates = (
        os.environ.get("CODEX_INDEXD_SEED_SCRIPT", ""),
        str(ROOT.parent / "shared" / "seed" / SEED_NAME),
        f"/work/shared/seed/{SEED_NAME}",
    )
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


def rollout_files(home: Path) -> list[Path]:
    """Every rollout file of a CODEX_HOME (live and archived)."""
    return [
        path
        for sub in ("sessions", "archived_sessions")
        for path in iter_files(home / sub)
        if path.name.startswith("rollout-")
    ]


def cat_cmd(home: Path, workdir: Path) -> list[str]:
    """`cat` of every rollout of `home` to /dev/null (through `xargs`, for any file count)."""
    listing = workdir / f"cat-{home.name}.list"
    listing.write_bytes(b"".join(bytes(path) + b"\0" for path in rollout_files(home)))
    return ["sh", "-c", 'exec xargs -0 cat < "$1" > /dev/null', "cat", str(listing)]


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


def ours_cmd(python: str, home: Path, *, dry_run: bool = False) -> list[str]:
    """The codex-indexd command line (`--dry-run` writes nothing, so needs no `--no-backup`)."""
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
        "--dry-run" if dry_run else "--no-backup",
    ]


def bytecode_env(env: dict[str, str], workdir: Path) -> dict[str, str]:
    """`env` with bytecode cached under the work dir (as for an installed package, whatever
    PYTHONDONTWRITEBYTECODE the caller has); the first run of ours compiles it."""
    out = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    return out


def ours_available(python: str, workdir: Path | None = None) -> bool:
    """Whether `python -m codex_indexd repair --help` works (it also compiles the bytecode
    into the work dir's cache)."""
    env = dict(os.environ) if workdir is None else bytecode_env(dict(os.environ), workdir)
    probe = subprocess.run(
        [python, "-m", "codex_indexd", "repair", "--help"],
        capture_output=True,
        check=False,
        timeout=120,
        env=env,
    )
    return probe.returncode == 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seed-script",
        type=Path,
        default=None,
        help="path to refresh_codex_history.py (default: $CODEX_INDEXD_SEED_SCRIPT, "
        "../shared/seed/ beside the repository, /work/shared/seed/; skipped if none)",
    )
    parser.add_argument("--no-seed", action="store_true", help="do not run the seed script")
    parser.add_argument("--mb", type=float, default=500.0, help="corpus MiB to generate (500)")
    parser.add_argument(
        "--shape",
        choices=(*SHAPES, "both"),
        default="huge-lines",
        help="generated corpus: tool outputs up to 300 KB (huge-lines) or 48 KiB (small-lines)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="time `repair --rebuild --dry-run` (nothing written, outputs not compared)",
    )
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


def prepare(args: argparse.Namespace, workdir: Path, shape: str) -> Path:
    """Return the corpus to use, generating a legacy one of `shape` under `workdir` if needed."""
    if args.corpus is not None:
        return Path(args.corpus).resolve()
    corpus = workdir / f"corpus-{shape}"
    summary = gen_corpus.generate(
        corpus,
        mb=args.mb,
        fmt="legacy",
        sessions=args.sessions,
        seed=args.seed,
        history_max_bytes=args.history_max_bytes,
        jobs=min(4, os.cpu_count() or 1),
        max_tool_output=SHAPES[shape],
    )
    gen_corpus.print_summary(summary)
    return corpus


def benchmark(
    args: argparse.Namespace, workdir: Path, shape: str, seed_script: Path | None
) -> Report:
    """Set up the homes of one shape, run all repetitions and compare the outputs."""
    corpus = prepare(args, workdir, shape)
    base = workdir / shape
    base.mkdir()
    homes = {"seed": base / "home-seed", "ours": base / "home-ours"}
    for home in homes.values():
        copy_home(corpus, home)
    mib, rollouts = rollout_stats(corpus)
    report = Report(corpus_mib=mib, rollouts=rollouts, reps=args.reps, dry_run=args.dry_run)
    report.shape = "given" if args.corpus is not None else shape
    if args.corpus is not None:
        report.corpus_label = "given with --corpus"
    report.ours_available = not args.skip_ours and ours_available(args.python, workdir)
    report.seed_measured = seed_script is not None
    tools = [
        tool
        for tool in TOOLS
        if (tool != "seed" or report.seed_measured) and (tool != "ours" or report.ours_available)
    ]
    print(f"warming page cache: {warm(list(homes.values())) / gen_corpus.MIB:.0f} MiB read")
    cat = cat_cmd(homes["ours"], base)
    if report.ours_available:  # untimed: the first run also reads the DB and index files
        run_child(
            ours_cmd(args.python, homes["ours"], dry_run=True),
            bytecode_env(child_env(homes["ours"], base / "scratch" / "prime"), workdir),
            base / "prime.log",
        )
    for rep in range(args.reps):
        for tool in tools if rep % 2 == 0 else tools[::-1]:
            home = homes["ours" if tool == "cat" else tool]
            reset_outputs(home, corpus)
            scratch = base / "scratch" / f"{tool}-{rep}"
            if tool == "cat":
                cmd = cat
            elif tool == "seed":
                assert seed_script is not None
                cmd = seed_cmd(seed_script, home)
            else:
                cmd = ours_cmd(args.python, home, dry_run=args.dry_run)
            log = base / f"{tool}-{rep}.log"
            env = bytecode_env(child_env(home, scratch), workdir)
            wall, cpu, rss, code = run_child(cmd, env, log)
            ok = code == 0 and (tool != "seed" or b"status: success" in log.read_bytes())
            report.runs.append(RunResult(tool, rep, wall, cpu, rss, code, ok))
            print(f"rep {rep} {tool}: {wall:.3f} s, {rss / 1024:.1f} MiB, exit {code}", flush=True)
    if report.ours_available and report.seed_measured and not args.dry_run:
        report.comparisons = [compare(name, homes["seed"], homes["ours"]) for name in OUTPUTS]
    report.floors_mib = measure_floors(args.python, workdir, report.ours_available)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the benchmark and print the table."""
    args = parse_args(argv)
    seed_script: Path | None = None
    if args.seed_script is not None and not args.no_seed:
        if not Path(args.seed_script).is_file():
            print(f"error: seed script not found: {args.seed_script}", file=sys.stderr)
            return 2
        seed_script = Path(args.seed_script).resolve()
    elif not args.no_seed:
        seed_script = find_seed_script()
        if seed_script is None:
            print("note: seed script not found; measuring cat and ours only")
    if args.skip_ours and seed_script is None:
        print("error: --skip-ours needs the seed script", file=sys.stderr)
        return 2
    if args.reps < 1:
        print("error: --reps must be >= 1", file=sys.stderr)
        return 2
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    shapes = list(SHAPES) if args.shape == "both" and args.corpus is None else [args.shape]
    workdir = Path(tempfile.mkdtemp(prefix="codex-indexd-bench-", dir=args.workdir))
    reports: list[Report] = []
    try:
        for shape in shapes:
            reports.append(benchmark(args, workdir, shape, seed_script))
            if not args.keep:  # free the disk before the next shape
                for path in workdir.iterdir():
                    if path.name != "pycache":
                        shutil.rmtree(path) if path.is_dir() else path.unlink()
    finally:
        if args.keep:
            print(f"kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    for report in reports:
        print_report(report)
    if args.json is not None:
        data = {
            "reports": [
                asdict(report) | {"summary": asdict(Summary.of(report.runs))} for report in reports
            ]
        }
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if not all(run.success for report in reports for run in report.runs):
        return 1
    return 1 if args.strict and not all(targets_met(report) for report in reports) else 0


if __name__ == "__main__":
    raise SystemExit(main())
