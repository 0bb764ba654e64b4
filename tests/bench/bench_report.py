"""Results of the repair benchmark: runs, output comparison, medians, ratios, the table."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

OUTPUTS = ("session_index.jsonl", "history.jsonl")
SPEED_TARGET = 8.0  # seed wall time / ours wall time must be at least this
RSS_TARGET = 0.5  # ours peak RSS / seed peak RSS must be at most this
CAT_TARGET = 2.0  # ours wall time / `cat` of the same files must be at most this
CAT_GOAL = 1.5  # and, beyond the target, this
RSS_LIMIT_MIB = 48.0  # ours peak RSS on any home
TOOLS = ("cat", "seed", "ours")


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
    corpus_label: str = "legacy (generated)"
    floors_mib: dict[str, float] = field(default_factory=dict)
    shape: str = "given"  # huge-lines, small-lines, or given (--corpus)
    dry_run: bool = False  # ours ran `repair --rebuild --dry-run` (nothing written, compared)
    seed_measured: bool = True


def line_count(data: bytes) -> int:
    """Number of lines (a final line without newline counts)."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def compare(name: str, seed_home: Path, ours_home: Path) -> Comparison:
    """Compare one output file of both homes without revealing its content."""
    seed_path, ours_path = seed_home / name, ours_home / name
    seed = seed_path.read_bytes() if seed_path.exists() else b""
    ours = ours_path.read_bytes() if ours_path.exists() else b""
    seed_lines, ours_lines = seed.splitlines(), ours.splitlines()
    positions = [
        i
        for i in range(max(len(seed_lines), len(ours_lines)))
        if i >= len(seed_lines) or i >= len(ours_lines) or seed_lines[i] != ours_lines[i]
    ]
    return Comparison(
        name=name,
        identical=seed == ours and seed_path.exists() == ours_path.exists(),
        seed_lines=line_count(seed),
        ours_lines=line_count(ours),
        seed_bytes=len(seed),
        ours_bytes=len(ours),
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
    cat_wall: float | None = None
    ours_max_rss_mib: float | None = None  # the largest of ours' runs (the RSS limit's figure)

    @classmethod
    def of(cls, runs: Sequence[RunResult]) -> Summary:
        """Summarise the successful runs."""
        rss = {tool: median(runs, tool, "maxrss_kib") for tool in ("seed", "ours")}
        ours_rss = [run.maxrss_kib for run in runs if run.tool == "ours" and run.success]
        return cls(
            median(runs, "seed", "wall_s"),
            median(runs, "ours", "wall_s"),
            median(runs, "seed", "cpu_s"),
            median(runs, "ours", "cpu_s"),
            None if rss["seed"] is None else rss["seed"] / 1024,
            None if rss["ours"] is None else rss["ours"] / 1024,
            median(runs, "cat", "wall_s"),
            max(ours_rss) / 1024 if ours_rss else None,
        )

    @property
    def cat_ratio(self) -> float | None:
        """Ours wall time / `cat` wall time of the same files (target: <= 2)."""
        return ratio(self.ours_wall, self.cat_wall)

    @property
    def seed_cat_ratio(self) -> float | None:
        """Seed wall time / `cat` wall time."""
        return ratio(self.seed_wall, self.cat_wall)

    @property
    def cat_met(self) -> bool | None:
        """Whether ours is within CAT_TARGET of `cat` (None: not measured)."""
        return None if self.cat_ratio is None else self.cat_ratio <= CAT_TARGET

    @property
    def rss_limit_met(self) -> bool | None:
        """Whether ours' largest peak RSS is within RSS_LIMIT_MIB (None: not measured)."""
        return None if self.ours_max_rss_mib is None else self.ours_max_rss_mib <= RSS_LIMIT_MIB

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
        cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)
    )


def print_runs(runs: Sequence[RunResult]) -> None:
    """Every timed run, in execution order."""
    print("\nper run:")
    for run in runs:
        print(
            f"  rep {run.rep} {run.tool:<5} wall {run.wall_s:8.3f} s  cpu {run.cpu_s:8.3f} s  "
            f"rss {run.maxrss_kib / 1024:8.1f} MiB  exit {run.exit_code}"
            f"{'' if run.success else '  FAILED'}"
        )


def print_report(report: Report) -> None:
    """The results table: medians, ratios, targets, byte-identity, RSS floors."""
    print(
        f"\ncorpus: {report.corpus_label}, shape {report.shape}, {report.rollouts} rollouts, "
        f"{report.corpus_mib:.1f} MiB; {report.reps} reps, alternating order, "
        "medians of successful runs"
    )
    ours_cmd = "repair --rebuild --dry-run" if report.dry_run else "repair --rebuild"
    print(f"ours: {ours_cmd} --max-threads 0; cat: the same rollout files to /dev/null")
    print_runs(report.runs)
    summary = Summary.of(report.runs)
    print()
    print(table_row("measure", "seed", "ours", "ratio", "target", "met"))
    print(
        table_row(
            "vs cat (wall)",
            fmt(summary.seed_cat_ratio, ".2f", "x"),
            fmt(summary.cat_ratio, ".2f", "x"),
            fmt(summary.cat_wall, ".3f", " s cat"),
            f"<= {CAT_TARGET:g}x",
            fmt(summary.cat_met),
        )
    )
    print(
        table_row(
            "wall time (s)",
            fmt(summary.seed_wall, ".3f"),
            fmt(summary.ours_wall, ".3f"),
            fmt(summary.speedup, ".2f", "x seed/ours"),
            ">= 8x",
            fmt(summary.speed_met),
        )
    )
    print(
        table_row(
            "cpu time (s)",
            fmt(summary.seed_cpu, ".3f"),
            fmt(summary.ours_cpu, ".3f"),
            fmt(ratio(summary.seed_cpu, summary.ours_cpu), ".2f", "x seed/ours"),
            "-",
            "-",
        )
    )
    print(
        table_row(
            "peak RSS (MiB)",
            fmt(summary.seed_rss_mib, ".1f"),
            fmt(summary.ours_rss_mib, ".1f"),
            fmt(summary.rss_ratio, ".2f", "x ours/seed"),
            "<= 0.5x",
            fmt(summary.rss_met),
        )
    )
    print(
        table_row(
            "max RSS (MiB)",
            "-",
            fmt(summary.ours_max_rss_mib, ".1f"),
            "largest ours run",
            f"<= {RSS_LIMIT_MIB:g}",
            fmt(summary.rss_limit_met),
        )
    )
    for comp in report.comparisons:
        verdict = (
            "byte-identical"
            if comp.identical
            else (
                f"DIFFERENT: {comp.differing_positions} line positions differ, first at line "
                f"{comp.first_difference}, same line set: {fmt(comp.same_line_set)}"
            )
        )
        print(
            f"{comp.name:<20}{verdict} (seed {comp.seed_lines} lines/{comp.seed_bytes} B, "
            f"ours {comp.ours_lines} lines/{comp.ours_bytes} B)"
        )
    if report.floors_mib:
        floors = ", ".join(f"{name} {mib:.1f} MiB" for name, mib in report.floors_mib.items())
        print(f"RSS floors (no corpus work): {floors}")
    if not report.ours_available:
        print("ours: `python -m codex_indexd repair --help` failed; only the seed was measured")


def targets_met(report: Report) -> bool:
    """True when every run succeeded, every measured target is met (against the seed when it
    ran, against `cat`, the RSS limit) and, unless a dry run, outputs are identical."""
    summary = Summary.of(report.runs)
    seed_ok = not report.seed_measured or (bool(summary.speed_met) and bool(summary.rss_met))
    outputs_ok = report.dry_run or (
        bool(report.comparisons) and all(comp.identical for comp in report.comparisons)
    )
    return (
        all(run.success for run in report.runs)
        and seed_ok
        and bool(summary.cat_met)
        and bool(summary.rss_limit_met)
        and outputs_ok
    )
