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
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen_corpus  # noqa: E402

OUTPUTS = ("session_index.jsonl", "history.jsonl")
SPEED_TARGET = 8.0  # seed wall time / ours wall time must be at least this
RSS_TARGET = 0.5  # ours peak RSS / seed peak RSS must be at most this
READ_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class RunResult:
    """One timed child process."""

    tool: str
    rep: int
    wall_s: float
    cpu_s: float
    maxrss_kib: int
    exit_code: int
    success: bool


@dataclass(frozen=True, slots=True)
class Comparison:
    """How two output files compare, in figures only."""

    name: str
    identical: bool
    seed_lines: int
    ours_lines: int
    seed_bytes: int
    ours_bytes: int
    differing_positions: int
    first_difference: int | None  # 1-based line number
    same_line_set: bool


@dataclass(slots=True)
class Report:
    """Everything the benchmark measured."""

    corpus_mib: float
    rollouts: int
    reps: int
    runs: list[RunResult] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    ours_available: bool = True
    floors_mib: dict[str, float] = field(default_factory=dict)


def iter_files(root: Path) -> Iterator[Path]:
    """Every regular file below `root`."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            yield Path(dirpath, name)


def rollout_stats(home: Path) -> tuple[float, int]:
    """(MiB of rollouts, number of rollouts) in a CODEX_HOME."""
    sizes = [path.stat().st_size for sub in ("sessions", "archived_sessions")
             for path in iter_files(home / sub) if path.name.startswith("rollout-")]
    return sum(sizes) / gen_corpus.MIB, len(sizes)


def warm(homes: Sequence[Path]) -> int:
    """Read every file once so both tools start with the same (warm) page cache."""
    total = 0
    for home in homes:
        for path in iter_files(home):
            with path.open("rb", buffering=0) as handle:
                while chunk := handle.read(READ_CHUNK):
                    total += len(chunk)
    return total


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


def maxrss_kib(ru_maxrss: int) -> int:
    """`ru_maxrss` in KiB (Linux reports KiB, macOS bytes)."""
    return ru_maxrss // 1024 if sys.platform == "darwin" else ru_maxrss


# Runs in a small `python -S` process: forks, execs the command, reaps it with `os.wait4` and
# reports "wall maxrss utime stime exit" on fd argv[1]. Measuring from a small launcher matters:
# Linux carries the RSS high-water mark of the pre-exec address space into the child's
# `ru_maxrss`, and with vfork/posix_spawn that address space is the (big) benchmark process.
LAUNCHER = """
import os, sys, time
fd, cmd = int(sys.argv[1]), sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
code = os.waitstatus_to_exitcode(status)
os.write(fd, f"{wall!r} {usage.ru_maxrss} {usage.ru_utime!r} {usage.ru_stime!r} {code}".encode())
"""


def run_child(cmd: Sequence[str], env: dict[str, str], log: Path) -> tuple[float, float, int, int]:
    """Run `cmd`; return (wall s, user+sys CPU s, peak RSS KiB, exit code) via `os.wait4`."""
    read_fd, write_fd = os.pipe()
    try:
        with log.open("wb") as out:
            subprocess.run([sys.executable, "-S", "-c", LAUNCHER, str(write_fd), *cmd],
                           stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                           env=env, pass_fds=(write_fd,), check=True)
        os.close(write_fd)
        write_fd = -1
        with os.fdopen(read_fd, "rb") as report:
            read_fd = -1
            wall, rss, utime, stime, code = report.read().decode().split()
    finally:
        for fd in (read_fd, write_fd):
            if fd != -1:
                os.close(fd)
    return float(wall), float(utime) + float(stime), maxrss_kib(int(rss)), int(code)


def seed_cmd(seed_script: Path, home: Path) -> list[str]:
    """The baseline command line."""
    return [sys.executable, str(seed_script), "--codex-home", str(home), "--max-threads", "0",
            "--no-backup"]


def ours_cmd(python: str, home: Path) -> list[str]:
    """The codex-indexd command line."""
    return [python, "-m", "codex_indexd", "repair", "--rebuild", "--codex-home", str(home),
            "--max-threads", "0", "--no-backup"]


def ours_available(python: str) -> bool:
    """Whether `python -m codex_indexd repair --help` works."""
    probe = subprocess.run([python, "-m", "codex_indexd", "repair", "--help"],
                           capture_output=True, check=False, timeout=120)
    return probe.returncode == 0


def line_count(data: bytes) -> int:
    """Number of lines (a final line without newline counts)."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def compare(name: str, seed_home: Path, ours_home: Path) -> Comparison:
    """Compare one output file of both homes without revealing its content."""
    seed_path, ours_path = seed_home / name, ours_home / name
    seed = seed_path.read_bytes() if seed_path.exists() else b""
    ours = ours_path.read_bytes() if ours_path.exists() else b""
    seed_lines, ours_lines = seed.splitlines(), ours.splitlines()
    positions = [i for i in range(max(len(seed_lines), len(ours_lines)))
                 if i >= len(seed_lines) or i >= len(ours_lines) or seed_lines[i] != ours_lines[i]]
    return Comparison(
        name=name, identical=seed == ours and seed_path.exists() == ours_path.exists(),
        seed_lines=line_count(seed), ours_lines=line_count(ours),
        seed_bytes=len(seed), ours_bytes=len(ours),
        differing_positions=len(positions),
        first_difference=positions[0] + 1 if positions else None,
        same_line_set=sorted(seed_lines) == sorted(ours_lines),
    )


def median(runs: Sequence[RunResult], tool: str, attr: str) -> float | None:
    """Median of one measure over the successful runs of a tool."""
    values = [getattr(run, attr) for run in runs if run.tool == tool and run.success]
    return statistics.median(values) if values else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """`numerator / denominator`, or None when either is missing or zero."""
    return numerator / denominator if numerator and denominator else None


@dataclass(frozen=True, slots=True)
class Summary:
    """Medians and ratios derived from a report."""

    seed_wall: float | None
    ours_wall: float | None
    seed_cpu: float | None
    ours_cpu: float | None
    seed_rss_mib: float | None
    ours_rss_mib: float | None

    @classmethod
    def of(cls, runs: Sequence[RunResult]) -> Summary:
        """Summarise the successful runs."""
        rss = {tool: median(runs, tool, "maxrss_kib") for tool in ("seed", "ours")}
        return cls(median(runs, "seed", "wall_s"), median(runs, "ours", "wall_s"),
                   median(runs, "seed", "cpu_s"), median(runs, "ours", "cpu_s"),
                   None if rss["seed"] is None else rss["seed"] / 1024,
                   None if rss["ours"] is None else rss["ours"] / 1024)

    @property
    def speedup(self) -> float | None:
        """Seed wall time / ours wall time (target: >= 8)."""
        return ratio(self.seed_wall, self.ours_wall)

    @property
    def rss_ratio(self) -> float | None:
        """Ours peak RSS / seed peak RSS (target: <= 0.5)."""
        return ratio(self.ours_rss_mib, self.seed_rss_mib)

    @property
    def speed_met(self) -> bool | None:
        """Whether the speed target is met (None: not measured)."""
        return None if self.speedup is None else self.speedup >= SPEED_TARGET

    @property
    def rss_met(self) -> bool | None:
        """Whether the memory target is met (None: not measured)."""
        return None if self.rss_ratio is None else self.rss_ratio <= RSS_TARGET


def fmt(value: float | bool | None, spec: str = "", suffix: str = "") -> str:
    """Format a number (plus `suffix`), a verdict (yes/NO), or `n/a`."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    return format(value, spec) + suffix


def table_row(*cells: str) -> str:
    """One line of the results table."""
    widths = (18, 10, 10, 18, 10, 5)
    return cells[0].ljust(widths[0]) + "".join(
        cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))


def print_runs(runs: Sequence[RunResult]) -> None:
    """Every timed run, in execution order."""
    print("\nper run:")
    for run in runs:
        print(f"  rep {run.rep} {run.tool:<5} wall {run.wall_s:8.3f} s  cpu {run.cpu_s:8.3f} s  "
              f"rss {run.maxrss_kib / 1024:8.1f} MiB  exit {run.exit_code}"
              f"{'' if run.success else '  FAILED'}")


def print_report(report: Report) -> None:
    """The results table: medians, ratios, targets, byte-identity, RSS floors."""
    print(f"\ncorpus: legacy, {report.rollouts} rollouts, {report.corpus_mib:.1f} MiB; "
          f"{report.reps} reps, alternating order, medians of successful runs")
    print_runs(report.runs)
    summary = Summary.of(report.runs)
    print()
    print(table_row("measure", "seed", "ours", "ratio", "target", "met"))
    print(table_row("wall time (s)", fmt(summary.seed_wall, ".3f"), fmt(summary.ours_wall, ".3f"),
                    fmt(summary.speedup, ".2f", "x seed/ours"), ">= 8x", fmt(summary.speed_met)))
    print(table_row("cpu time (s)", fmt(summary.seed_cpu, ".3f"), fmt(summary.ours_cpu, ".3f"),
                    fmt(ratio(summary.seed_cpu, summary.ours_cpu), ".2f", "x seed/ours"),
                    "-", "-"))
    print(table_row("peak RSS (MiB)", fmt(summary.seed_rss_mib, ".1f"),
                    fmt(summary.ours_rss_mib, ".1f"), fmt(summary.rss_ratio, ".2f", "x ours/seed"),
                    "<= 0.5x", fmt(summary.rss_met)))
    for comp in report.comparisons:
        verdict = "byte-identical" if comp.identical else (
            f"DIFFERENT: {comp.differing_positions} line positions differ, first at line "
            f"{comp.first_difference}, same line set: {fmt(comp.same_line_set)}")
        print(f"{comp.name:<20}{verdict} (seed {comp.seed_lines} lines/{comp.seed_bytes} B, "
              f"ours {comp.ours_lines} lines/{comp.ours_bytes} B)")
    if report.floors_mib:
        floors = ", ".join(f"{name} {mib:.1f} MiB" for name, mib in report.floors_mib.items())
        print(f"RSS floors (no corpus work): {floors}")
    if not report.ours_available:
        print("ours: `python -m codex_indexd repair --help` failed; only the seed was measured")


def targets_met(report: Report) -> bool:
    """True when every run succeeded, both targets are met and outputs are identical."""
    summary = Summary.of(report.runs)
    return (all(run.success for run in report.runs) and bool(summary.speed_met)
            and bool(summary.rss_met) and bool(report.comparisons)
            and all(comp.identical for comp in report.comparisons))


def measure_floors(python: str, workdir: Path, with_ours: bool) -> dict[str, float]:
    """Peak RSS of the bare interpreter and of importing ours (`repair --help`), in MiB."""
    commands = {"bare python": [python, "-c", "pass"]}
    if with_ours:
        commands["ours imports"] = [python, "-m", "codex_indexd", "repair", "--help"]
    floors: dict[str, float] = {}
    for name, cmd in commands.items():
        samples = [run_child(cmd, dict(os.environ), workdir / "floor.log")[2] for _ in range(3)]
        floors[name] = statistics.median(samples) / 1024
    return floors


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-script", type=Path, required=True,
                        help="path to refresh_codex_history.py (the baseline)")
    parser.add_argument("--mb", type=float, default=500.0, help="corpus MiB to generate (500)")
    parser.add_argument("--sessions", type=int, default=None, help="threads in the corpus")
    parser.add_argument("--seed", type=int, default=0, help="corpus random seed")
    parser.add_argument("--corpus", type=Path, default=None,
                        help="reuse this legacy CODEX_HOME instead of generating one (read-only)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per tool (3)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="parent of the run's temp dir (default: the system temp dir)")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter that can import codex_indexd")
    parser.add_argument("--skip-ours", action="store_true", help="measure the seed only")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 unless targets are met and outputs are identical")
    return parser.parse_args(argv)


def prepare(args: argparse.Namespace, workdir: Path) -> Path:
    """Return the corpus to use, generating a legacy one under `workdir` if needed."""
    if args.corpus is not None:
        return Path(args.corpus).resolve()
    corpus = workdir / "corpus"
    summary = gen_corpus.generate(corpus, mb=args.mb, fmt="legacy", sessions=args.sessions,
                                  seed=args.seed, jobs=min(4, os.cpu_count() or 1))
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
            print(f"rep {rep} {tool}: {wall:.3f} s, {rss / 1024:.1f} MiB, exit {code}",
                  flush=True)
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
