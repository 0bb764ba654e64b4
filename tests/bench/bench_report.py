"""Results of the repair benchmark: runs, output comparison, medians, ratios, the table."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

OUTPUTS = ("session_index.jsonl", "history.jsonl")
SPEED_TARGET = 8.0  # seed wall time / ours wall time must be at least this
RSS_TARGET = 0.5  # ours peak RSS / seed peak RSS must be at most this


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

    @classmethod
    def of(cls, runs: Sequence[RunResult]) -> Summary:
        """Summarise the successful runs."""
        rss = {tool: median(runs, tool, "maxrss_kib") for tool in ("seed", "ours")}
        return cls(
            median(runs, "seed", "wall_s"),
            median(runs, "ours", "wall_s"),
            median(runs, "seed", "cpu_s"),
            median(runs, "ours", "cpu_s"),
            None if rss["seed"] is None else rss["seed"] / 1024,
            None if rss["ours"] is None else rss["ours"] / 1024,
        )

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
        f"\ncorpus: {report.corpus_label}, {report.rollouts} rollouts, "
        f"{report.corpus_mib:.1f} MiB; {report.reps} reps, alternating order, "
        "medians of successful runs"
    )
    print_runs(report.runs)
    summary = Summary.of(report.runs)
    print()
    print(table_row("measure", "seed", "ours", "ratio", "target", "met"))
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
    """True when every run succeeded, both targets are met and outputs are identical."""
    summary = Summary.of(report.runs)
    return (
        all(run.success for run in report.runs)
        and bool(summary.speed_met)
        and bool(summary.rss_met)
        and bool(report.comparisons)
        and all(comp.identical for comp in report.comparisons)
    )
