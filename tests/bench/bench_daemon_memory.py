#!/usr/bin/env python3
"""Where the daemon's memory goes per rollout: one home's worker, traced with tracemalloc.

    .venv/bin/python tests/bench/bench_daemon_memory.py [--sessions N] [--home DIR]
        [--top K] [--frames F] [--no-trace] [--workdir DIR] [--keep]

In this process (no subprocess, no watcher): a `HomeWorker` of a small-file home (built by
bench_daemon's `build_home`, or `--home`) does what the daemon does before READY: a cold
start (no checkpoint: every rollout read), the start reconcile, the checkpoint save; then a
second worker the warm start (the checkpoint loaded, the verified record resumed); with
`--after-ready` each then also loads what the daemon holds once READY (both index files
parsed, as healing's detection and the first event load them). For each,
the seconds of each step, VmRSS/VmHWM of the process, the memory traced after it (current and
peak), and the source lines that hold the most of what stays, in bytes per rollout.

tracemalloc slows the steps several-fold and VmHWM grows with its own records: take the times
and VmHWM from a `--no-trace` run, the breakdown from a traced one.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: Python puts only tests/bench on the path
    sys.path.insert(0, str(ROOT))

from tests.bench.bench_daemon import LiveThread, append_turn, build_home, our_dirs  # noqa: E402

MIB = 1 << 20


def proc_status() -> dict[str, float]:
    """VmRSS and VmHWM of this process, in MiB."""
    out: dict[str, float] = {}
    for row in Path("/proc/self/status").read_text().splitlines():
        key, _, value = row.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def short(filename: str) -> str:
    """A source path from `codex_indexd/` on (or the standard library's module name)."""
    for mark in ("codex_indexd/", "python3.11/", "site-packages/"):
        if mark in filename:
            return filename.split(mark, 1)[1]
    return filename


def print_top(snapshot: tracemalloc.Snapshot, files: int, k: int) -> None:
    """The `k` source lines holding the most memory, in MiB and bytes per rollout."""
    stats = snapshot.statistics("lineno")
    total = sum(s.size for s in stats)
    print(f"  traced and kept: {total / MIB:.1f} MiB = {total / max(files, 1):.0f} B per rollout")
    print(f"  {'MiB':>7} {'B/rollout':>9} {'blocks':>8}  where")
    for stat in stats[:k]:
        frame = stat.traceback[0]
        print(
            f"  {stat.size / MIB:7.2f} {stat.size / max(files, 1):9.0f} {stat.count:8d}  "
            f"{short(frame.filename)}:{frame.lineno}"
        )


def newest_rollout(home: Path) -> Path:
    """The newest rollout of `home` by name (the one `build_home` made live)."""
    newest_day = max(p for p in (home / "sessions").glob("*/*/*") if p.is_dir())
    return max(newest_day.glob("rollout-*.jsonl"))


Steps = list[tuple[str, float, dict[str, float]]]  # name, seconds, VmRSS/VmHWM after it


def step(steps: Steps, name: str, started: float) -> None:
    """Record one step: its seconds since `started` and the process's memory after it."""
    steps.append((name, time.perf_counter() - started, proc_status()))


def append_steps(worker: Any, home: Path, appends: int, steps: Steps) -> None:
    """After READY, what the daemon does: its first save and heal check, then `appends` turns
    appended to the newest rollout, each taken and reconciled the way an event batch is; then
    the save at the stop."""
    t0 = time.perf_counter()
    worker.save_checkpoint()
    worker.maybe_heal()
    step(steps, "save + heal check", t0)
    path = newest_rollout(home)
    live = LiveThread(SimpleNamespace(thread_id=path.name[-41:-6]), path)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    for _ in range(appends):
        append_turn(live)
        if worker.take({str(path)}, False):
            worker.reconcile(reason="events")
    step(steps, f"{appends} appends", t0)
    t0 = time.perf_counter()
    worker.save_checkpoint()  # as the daemon does at its stop: the next start resumes
    step(steps, "save at stop", t0)


def run_worker(
    home: Path, label: str, *, trace: bool, top: int, after_ready: bool, appends: int = 0
) -> None:
    """Start one worker on `home` the way the daemon does before READY; print its figures."""
    from codex_indexd.codex.home import CodexHome
    from codex_indexd.config import settings as settings_mod
    from codex_indexd.config.policies import backup_from_settings, policy_from_settings
    from codex_indexd.daemon.home_worker import HomeWorker
    from codex_indexd.daemon.malloc_tuning import fix_mmap_threshold

    fix_mmap_threshold()  # as `run` does before the start
    settings = settings_mod.load()
    if trace:
        tracemalloc.start(1)
    steps: Steps = []
    t0 = time.perf_counter()
    worker = HomeWorker(
        CodexHome.at(home), policy_from_settings(settings), backup_from_settings(settings)
    )
    worker.start()
    step(steps, "start", t0)
    t0 = time.perf_counter()
    worker.reconcile(reason="start", heal=False)
    step(steps, "reconcile", t0)
    t0 = time.perf_counter()
    worker.save_checkpoint()
    step(steps, "checkpoint save", t0)
    if after_ready:
        # What the daemon loads after READY (healing's detection, the first event): the
        # parsed index files next to everything above.
        t0 = time.perf_counter()
        facts = worker._facts()
        step(steps, "facts after READY", t0)
    if appends:
        ready = proc_status()
        print(
            f"  at READY: VmRSS {ready.get('VmRSS', 0):.1f} MiB, VmHWM {ready.get('VmHWM', 0):.1f}"
        )
        if trace:
            print(f"  traced at READY {tracemalloc.get_traced_memory()[0] / MIB:.1f} MiB")
            tracemalloc.reset_peak()
            at_ready = tracemalloc.take_snapshot()
        append_steps(worker, home, appends, steps)
    gc.collect()
    mem = proc_status()
    files = len(worker.tracker.files)
    print(f"{label}: {files} rollouts")
    for name, seconds, after in steps:
        print(
            f"  {name:<20} {seconds:6.2f} s  then VmRSS {after.get('VmRSS', 0):6.1f} MiB, "
            f"VmHWM {after.get('VmHWM', 0):6.1f}"
        )
    print(f"  VmRSS {mem.get('VmRSS', 0):.1f} MiB, VmHWM {mem.get('VmHWM', 0):.1f} MiB")
    if trace:
        current, peak = tracemalloc.get_traced_memory()
        print(f"  traced now {current / MIB:.1f} MiB, peak {peak / MIB:.1f} MiB")
        snapshot = tracemalloc.take_snapshot()
        print_top(snapshot, files, top)
        if appends:
            print("  grown since READY:")
            for stat in snapshot.compare_to(at_ready, "lineno")[:top]:
                frame = stat.traceback[0]
                print(
                    f"  {stat.size_diff / MIB:+7.2f} MiB {stat.count_diff:+8d} blocks  "
                    f"{short(frame.filename)}:{frame.lineno}"
                )
        tracemalloc.stop()
    worker.table.close()
    if after_ready:
        del facts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sessions", type=int, default=10_000, help="rollouts of the built home")
    parser.add_argument("--home", type=Path, help="an existing home instead of a built one")
    parser.add_argument("--top", type=int, default=20, help="source lines shown")
    parser.add_argument("--no-trace", action="store_true", help="times and VmHWM only")
    parser.add_argument("--workdir", type=Path, help="where the home and our dirs go")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    parser.add_argument("--warm-only", action="store_true", help="skip the cold start")
    parser.add_argument(
        "--after-ready",
        action="store_true",
        help="also load what the daemon holds after READY (both index files parsed)",
    )
    parser.add_argument(
        "--appends", type=int, default=0, help="after READY: save, heal check, N appended turns"
    )
    parser.add_argument("--phase", choices=["cold", "warm"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:  # one start in a process of its own, so that VmHWM is its own
        os.environ.update(our_dirs(args.workdir / "ours", args.workdir / "ours" / "cache"))
        if args.phase == "cold":
            shutil.rmtree(args.workdir / "ours" / "cache", ignore_errors=True)
        label = "cold start (no checkpoint)" if args.phase == "cold" else "warm start (checkpoint)"
        run_worker(
            args.home,
            label,
            trace=not args.no_trace,
            top=args.top,
            after_ready=args.after_ready,
            appends=args.appends,
        )
        return 0
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        home = args.home
        if home is None:
            home = work / "home"
            if not home.exists():
                t0 = time.perf_counter()
                build_home(home, args.sessions)
                print(f"built {args.sessions} sessions in {time.perf_counter() - t0:.1f} s")
        print(f"load average {os.getloadavg()[0]:.2f}; home {home}", flush=True)
        for phase in ("warm",) if args.warm_only else ("cold", "warm"):
            cmd = [sys.executable, __file__, "--phase", phase, "--home", str(home)]
            cmd += ["--workdir", str(work), "--top", str(args.top)]
            cmd += ["--no-trace"] if args.no_trace else []
            cmd += ["--after-ready"] if args.after_ready else []
            cmd += ["--appends", str(args.appends)] if args.appends else []
            subprocess.run(cmd, check=True)
        print(f"load average {os.getloadavg()[0]:.2f}")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
