#!/usr/bin/env python3
"""One markdown table of the headline figures: `repair --rebuild --dry-run` on both corpus
shapes (against `cat` of the same files and the seed script) and the daemon's start.

    python tests/bench/bench_table.py [--quick] [--mb 500] [--reps 3] \
        [--daemon-sessions 1000,10000,50000] [--no-daemon] [--seed-script SEED | --no-seed] \
        [--workdir DIR] [--keep] [--json OUT]

The repair figures come from `bench_repair.py --shape both --dry-run --json`, the daemon's
from `bench_daemon.py --only start --start-sessions N --json F` for each N (each run as a
child process; their JSON is read, their own output goes to a log in the work dir, which is
deleted unless a child failed or `--keep` is given).
`--quick` uses 2 MiB corpora, 1 rep and one daemon run of 200 sessions: it only shows that
the harness works. Prints figures only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BENCH = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # run as a script: Python puts only tests/bench on the path
    sys.path.insert(0, str(ROOT))

from tests.bench.bench_report import CAT_GOAL, CAT_TARGET, RSS_LIMIT_MIB  # noqa: E402

# Rows of bench_daemon's start scenario that go into the table (matched by prefix).
DAEMON_ROWS = (
    "cold start to READY",
    "warm start to READY",
    "VmHWM after cold READY",
    "VmHWM after warm READY",
    "VmHWM over the warm daemon's life",
    "append->history",
)


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table."""

    measure: str
    value: str
    target: str = "-"
    met: str = "-"


def verdict(met: bool | None) -> str:
    """yes / NO / - for a target check."""
    return "-" if met is None else ("yes" if met else "NO")


def number(value: float | None, spec: str, unit: str) -> str:
    """A figure with its unit, or n/a."""
    return "n/a" if value is None else f"{format(value, spec)}{unit}"


def repair_rows(data: dict[str, Any]) -> list[Row]:
    """Rows from `bench_repair.py --json` output: per shape, cat, ours, the seed, ratios, RSS."""
    rows: list[Row] = []
    for report in data["reports"]:
        summary = report["summary"]
        label = (
            f"repair --dry-run, {report['shape']} {report['corpus_mib']:.0f} MiB "
            f"({report['rollouts']} rollouts)"
        )
        cat, ours, seed = summary["cat_wall"], summary["ours_wall"], summary["seed_wall"]
        cat_ratio = ours / cat if ours and cat else None
        rows.append(Row(f"{label}: cat", number(cat, ".3f", " s")))
        rows.append(Row(f"{label}: ours", number(ours, ".3f", " s")))
        rows.append(
            Row(
                f"{label}: ours / cat",
                number(cat_ratio, ".2f", "x"),
                f"<= {CAT_TARGET:g}x (goal {CAT_GOAL:g}x)",
                verdict(None if cat_ratio is None else cat_ratio <= CAT_TARGET),
            )
        )
        if seed is not None:
            rows.append(Row(f"{label}: old script", number(seed, ".3f", " s")))
            rows.append(
                Row(
                    f"{label}: old script / ours",
                    number(seed / ours if ours else None, ".1f", "x"),
                )
            )
        peak = summary["ours_max_rss_mib"]
        rows.append(
            Row(
                f"{label}: ours peak RSS (largest run)",
                number(peak, ".1f", " MiB"),
                f"<= {RSS_LIMIT_MIB:g} MiB",
                verdict(None if peak is None else peak <= RSS_LIMIT_MIB),
            )
        )
    return rows


def daemon_rows(data: dict[str, Any]) -> list[Row]:
    """Rows from `bench_daemon.py --only start --json` output: start times and memory."""
    rows: list[Row] = []
    for row in data.get("rows", []):
        if not str(row.get("measure", "")).startswith(DAEMON_ROWS):
            continue
        value = row.get("value")
        unit = row.get("unit", "")
        spec = ".2f" if unit == "s" else ".1f"
        met = row.get("met")
        rows.append(
            Row(
                f"daemon {row['measure']}",
                number(value, spec, f" {unit}"),
                str(row.get("target", "-")),
                verdict(met if isinstance(met, bool) else None),
            )
        )
    for failure in data.get("failures", []):
        rows.append(Row("daemon failure", "see log", "-", "NO"))
        print(f"bench_daemon failure: {failure}", file=sys.stderr)
    return rows


def markdown(rows: Sequence[Row]) -> str:
    """The table as markdown."""
    lines = ["| measure | value | target | met |", "|---|---|---|---|"]
    lines += [f"| {r.measure} | {r.value} | {r.target} | {r.met} |" for r in rows]
    return "\n".join(lines)


def run_logged(cmd: Sequence[str], log: Path) -> int:
    """Run a benchmark child with its output in `log`; return its exit status."""
    with log.open("wb") as out:
        return subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False).returncode


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--mb", type=float, default=None, help="corpus MiB per shape (500)")
    parser.add_argument("--reps", type=int, default=None, help="repair repetitions (3)")
    parser.add_argument(
        "--daemon-sessions",
        default=None,
        help="comma-separated session counts of the daemon start runs (1000,10000,50000)",
    )
    parser.add_argument("--no-daemon", action="store_true", help="skip the daemon figures")
    parser.add_argument("--seed-script", type=Path, default=None, help="see bench_repair.py")
    parser.add_argument("--no-seed", action="store_true", help="do not run the seed script")
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the temp dirs")
    parser.add_argument("--keep", action="store_true", help="keep the logs and JSON")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the children")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run both benchmarks, print the table; 1 when a child failed."""
    args = parse_args(argv)
    mb = args.mb if args.mb is not None else (2.0 if args.quick else 500.0)
    reps = args.reps if args.reps is not None else (1 if args.quick else 3)
    sessions_arg = args.daemon_sessions or ("200" if args.quick else "1000,10000,50000")
    sessions = [int(part) for part in sessions_arg.split(",") if part.strip()]
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-table-", dir=args.workdir))
    failed = False
    repair_json = work / "repair.json"
    cmd = [args.python, str(BENCH / "bench_repair.py"), "--shape", "both", "--dry-run"]
    cmd += ["--mb", str(mb), "--reps", str(reps), "--json", str(repair_json)]
    cmd += ["--workdir", str(work)]
    if args.no_seed:
        cmd.append("--no-seed")
    elif args.seed_script is not None:
        cmd += ["--seed-script", str(args.seed_script)]
    print(f"repair: {mb:g} MiB per shape, {reps} reps (log: {work / 'repair.log'})", flush=True)
    failed |= run_logged(cmd, work / "repair.log") != 0
    rows = repair_rows(json.loads(repair_json.read_text())) if repair_json.exists() else []
    if not args.no_daemon:
        for count in sessions:
            out = work / f"daemon-{count}.json"
            cmd = [args.python, str(BENCH / "bench_daemon.py"), "--only", "start"]
            cmd += ["--start-sessions", str(count), "--json", str(out)]
            if args.quick:
                cmd.append("--quick")
            print(f"daemon start: {count} sessions", flush=True)
            failed |= run_logged(cmd, work / f"daemon-{count}.log") != 0
            if out.exists():
                rows += daemon_rows(json.loads(out.read_text()))
    print()
    print(markdown(rows))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    if failed or args.keep:
        print(f"\nlogs and JSON: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
