"""Rollout scan speed: the buffer scanner against the old line reader and `cat` of the same
files, in the same run (medians of --reps, each in a fresh child; page cache warm).

    python tests/bench/bench_scan.py CODEX_HOME [--reps 3]

Prints one table row per reader: seconds, ratio to `cat`, peak RSS of the child (MiB).
The machine may be shared: only the ratios within one run mean anything.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from codex_indexd.codex.home import CodexHome, iter_rollout_paths
from codex_indexd.codex.rollout import RolloutScan
from codex_indexd.codex.rollout_file import scan_file
from tests.support import rollout_oracle
home = CodexHome.at(sys.argv[2])
paths = list(iter_rollout_paths(home.sessions)) + list(iter_rollout_paths(home.archived_sessions))
read = scan_file if sys.argv[1] == "scanner" else rollout_oracle.scan_file
start = time.perf_counter()
turns = 0
for path in paths:
    turns += len(read(RolloutScan.start(path), path).facts.user_turns)
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"s": elapsed, "rss": peak, "turns": turns}))
"""


def run_cat(home: Path) -> float:
    files = [str(p) for p in sorted((home / "sessions").rglob("rollout-*.jsonl"))]
    start = time.perf_counter()
    for i in range(0, len(files), 500):
        subprocess.run(["cat", *files[i : i + 500]], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def run_child(kind: str, home: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in (ROOT, ROOT / "daemon"))}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(home)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("home", type=Path)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    size = sum(p.stat().st_size for p in args.home.rglob("rollout-*.jsonl")) / 2**20
    run_cat(args.home)  # warm the page cache
    cat = statistics.median(run_cat(args.home) for _ in range(args.reps))
    print(f"corpus {args.home}: {size:.0f} MiB; machine shared with other jobs")
    print("| reader | s | × cat | peak RSS MiB | user turns |\n|---|---|---|---|---|")
    print(f"| cat | {cat:.3f} | 1.00 | - | - |")
    for kind in ("scanner", "old reader"):
        runs = [run_child(kind, args.home) for _ in range(args.reps)]
        s = statistics.median(r["s"] for r in runs)
        rss = max(r["rss"] for r in runs)
        print(f"| {kind} | {s:.3f} | {s / cat:.2f} | {rss:.1f} | {int(runs[0]['turns'])} |")


if __name__ == "__main__":
    main()
