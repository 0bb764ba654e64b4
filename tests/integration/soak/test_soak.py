"""Soak: several processes behave like Codex clients for minutes (codex_writer.py: new
threads, turns, renames, archive/unarchive moves, history appends) on a home of a heavy
user (no state DB: names come from the rollouts and the index), while the daemon runs. Every
CHECK_EVERY_S a checker reads session_index.jsonl and history.jsonl under Codex's locks and
compares them with the state rebuilt from the writers' journals (model.py): latest name of
every live thread, one history line per user turn, every line the writers wrote still there
exactly once, nothing torn, nothing the daemon should not have added. Facts younger than the
settle delay are not yet required. At the end: no discrepancy, the rollouts byte-identical,
`status` without drift, RSS growth under 10 % after warm-up, and no descriptor leak.

Environment: CODEX_INDEXD_SOAK_SECONDS (default 300; 20 makes a quick run),
CODEX_INDEXD_SOAK_SETTLE_S (delay allowed to the daemon, default 5), and for experiments
CODEX_INDEXD_SOAK_WRITERS, _RATE (operations per second per writer), _PRELOAD (threads
in the home at start) and _WEIGHTS (JSON operation mix, see codex_writer.WEIGHTS).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.daemons import Spawn, log_records
from tests.support.homes import Thread, build_home, new_thread, rollout_lines, rollout_name
from tests.support.waiting import wait_for

from .harness import Metrics, read_locked, status_cli
from .model import Discrepancy, Model

WRITERS = int(os.environ.get("CODEX_INDEXD_SOAK_WRITERS", "4"))
RATE_PER_WRITER = float(os.environ.get("CODEX_INDEXD_SOAK_RATE", "1.5"))  # operations per second
# A heavy user's home: the data the writers add in 5 minutes is then a few per cent of it, so
# RSS growth measures leaks rather than the (legitimate) growth of the cached facts.
PRELOADED = int(os.environ.get("CODEX_INDEXD_SOAK_PRELOAD", "8000"))
WEIGHTS = os.environ.get("CODEX_INDEXD_SOAK_WEIGHTS", "")  # JSON: {"new": 12, "turn": 40, ...}
CHECK_EVERY_S = 3.0
FINAL_SETTLE_S = 15.0  # after the writers stop, the files must be right within this
RSS_GROWTH_MAX = 0.10
FD_SLACK = 3
WRITER = Path(__file__).with_name("codex_writer.py")
BAD_EVENTS = {
    "home.failed",
    "rewrite_loop_suspected",
    "watch.observer_died",
    "write.write_failed",
    "write.disk_full",
    "write.unsafe_target",
    "journal.recovery_failed",
}


def preload(home: Path) -> list[Thread]:
    threads = [
        new_thread(i, turns=2, paginated=i % 2 == 1, tool_output_bytes=200, archived=i % 10 == 0)
        for i in range(PRELOADED)
    ]
    build_home(home, threads, db=False)
    return threads


def rel_path(thread: Thread) -> str:
    where = (
        "archived_sessions" if thread.archived else f"sessions/{thread.start.strftime('%Y/%m/%d')}"
    )
    return f"{where}/{rollout_name(thread)}"


def turn_stamps(thread: Thread) -> list[tuple[str, int]]:
    return [
        (turn.text, int((thread.start + timedelta(seconds=10 * (j + 1))).timestamp()))
        for j, turn in enumerate(thread.turns)
    ]


@pytest.mark.soak
@pytest.mark.slow
def test_soak_with_codex_like_writers(tmp_path: Path, spawn: Spawn, log_dir: Path) -> None:
    duration = float(os.environ.get("CODEX_INDEXD_SOAK_SECONDS", "300"))
    # A fact must show within: the debounce's 2 s maximum, the 1.7 s a TUI turn is held for
    # the TUI's own history line, and one full reconcile of this 8,000-thread home that may be
    # running when the fact arrives (about 2 s on a loaded 2-core machine).
    settle = float(os.environ.get("CODEX_INDEXD_SOAK_SETTLE_S", "6"))
    # Periodic full reconciles in a long run (besides the event-driven ones), never within the
    # final settling time, which must be reached through events alone.
    full_every = max(FINAL_SETTLE_S * 3, duration / 4)
    # RSS is first taken once every code path ran, the first periodic full reconcile included.
    warmup = (
        full_every + 2 * CHECK_EVERY_S if full_every < duration / 2 else max(5.0, duration * 0.2)
    )
    home = tmp_path / "home"
    work = tmp_path / "soak"
    work.mkdir()
    threads = preload(home)

    model = Model()
    assigned: dict[int, list[dict[str, object]]] = {w: [] for w in range(WRITERS)}
    for n, thread in enumerate(threads):
        model.add_thread(
            thread.thread_id,
            rel_path(thread),
            archived=thread.archived,
            turns=turn_stamps(thread),
            owner=f"w{n % WRITERS}",
        )
        assigned[n % WRITERS].append(
            {
                "tid": thread.thread_id,
                "path": rel_path(thread),
                "paginated": thread.paginated,
                "ordinal": len(rollout_lines(thread)) if thread.paginated else 0,
                "archived": thread.archived,
            }
        )

    daemon = spawn(home, env={"CODEX_INDEXD_RECONCILE_INTERVAL_S": str(full_every)})
    daemon.wait_ready()

    def check(settle_s: float) -> tuple[list[Discrepancy], bytes, bytes]:
        before = time.time()
        index, history = read_locked(home)
        model.advance(before, time.time())
        return model.check(before, index, history, settle_s), index, history

    wait_for(lambda: not check(0)[0], 60, "the preloaded home indexed", interval=0.5)

    writers: list[subprocess.Popen[bytes]] = []
    for w in range(WRITERS):
        journal, manifest, plan = (
            work / f"w{w}.journal",
            work / f"w{w}.manifest",
            work / f"w{w}.assigned",
        )
        plan.write_text(json.dumps(assigned[w]))
        model.add_journal(f"w{w}", journal)
        with open(work / f"w{w}.stderr", "wb") as err:
            writers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        str(WRITER),
                        "--home",
                        str(home),
                        "--journal",
                        str(journal),
                        "--manifest",
                        str(manifest),
                        "--assigned",
                        str(plan),
                        "--writer",
                        str(w),
                        "--seed",
                        str(1000 + w),
                        "--rate",
                        str(RATE_PER_WRITER),
                        "--weights",
                        WEIGHTS,
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
            )

    found: list[tuple[float, Discrepancy]] = []
    checkpoints: list[Metrics] = []
    baseline: Metrics | None = None
    soak_started = time.monotonic()
    try:
        next_check = soak_started + CHECK_EVERY_S
        while time.monotonic() - soak_started < duration:
            time.sleep(max(0.0, next_check - time.monotonic()))  # the checker's period
            next_check += CHECK_EVERY_S
            daemon.check_alive()
            for w, proc in enumerate(writers):
                assert proc.poll() is None, (
                    f"writer {w} died: {(work / f'w{w}.stderr').read_text()[-2000:]}"
                )
            problems, _, _ = check(settle)
            elapsed = time.monotonic() - soak_started
            found.extend((elapsed, p) for p in problems)
            metrics = Metrics(elapsed, daemon.rss_kb(), daemon.fd_count())
            checkpoints.append(metrics)
            if baseline is None and elapsed >= warmup:
                baseline = metrics
    finally:
        for proc in writers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in writers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    for w, proc in enumerate(writers):
        assert proc.returncode == 0, f"writer {w}: {(work / f'w{w}.stderr').read_text()[-2000:]}"
    soak_s = time.monotonic() - soak_started

    # The end: the writers are done; everything must settle to exactly the expected state.
    settled_at = time.monotonic()
    final: list[Discrepancy] = []
    first_final: list[Discrepancy] | None = None

    def settled() -> bool:
        nonlocal final, first_final
        daemon.check_alive()
        final, index, history = check(0)
        final += model.order_violations(index, history)
        if first_final is None:
            first_final = list(final)
        return not final

    with contextlib.suppress(AssertionError):  # what is left is reported below
        wait_for(settled, FINAL_SETTLE_S, "the final state", interval=0.5)
    settle_s = time.monotonic() - settled_at
    end = Metrics(time.monotonic() - soak_started, daemon.rss_kb(), daemon.fd_count())
    assert baseline is not None, "the run was shorter than its warm-up"

    # The rollouts are exactly what the writers wrote, where they put them.
    rollout_problems = []
    for w in range(WRITERS):
        for tid, item in json.loads((work / f"w{w}.manifest").read_text()).items():
            path = home / item["path"]
            if not path.exists():
                rollout_problems.append(f"{tid}: {item['path']} missing")
            elif hashlib.sha256(path.read_bytes()).hexdigest() != item["sha256"]:
                rollout_problems.append(f"{tid}: {item['path']} changed")

    _, report = status_cli(home)
    (home_report,) = report["homes"]
    bad_events = Counter(
        r["event"] for r in log_records(log_dir, None) if r.get("event") in BAD_EVENTS
    )
    levels = Counter(r.get("level") for r in log_records(log_dir, None))
    repairs = log_records(log_dir, "index.repaired")
    rss_growth = (end.rss_kb - baseline.rss_kb) / baseline.rss_kb
    kinds = Counter(p.kind for _, p in found)
    index, history = read_locked(home)
    index_lines, history_lines = index.count(b"\n"), history.count(b"\n")
    print(
        f"\nsoak: {soak_s:.0f} s, {WRITERS} writers, ops {dict(model.ops_applied)}, lost appends {dict(model.lost)}, "
        f"threads {len(model.threads)}, index lines {index_lines}, history lines {history_lines}"
    )
    print(
        f"soak: {len(repairs)} repairs; settled {settle_s:.1f} s after the writers stopped; "
        f"checks {len(checkpoints)}, discrepancies during the run {dict(kinds)}, at the end {len(final)}"
    )
    print(
        f"soak: RSS {baseline.rss_kb} kB at {baseline.at:.0f} s -> {end.rss_kb} kB at the end "
        f"({rss_growth:+.1%}); peak {max(m.rss_kb for m in checkpoints)} kB; "
        f"fds {baseline.fds} -> {end.fds}; log levels {dict(levels)}"
    )
    print(
        "soak: RSS curve (s:kB) "
        + " ".join(f"{m.at:.0f}:{m.rss_kb}" for m in checkpoints[:: max(1, len(checkpoints) // 20)])
    )
    first_seen: dict[Discrepancy, float] = {}
    for at, problem in found:
        first_seen.setdefault(problem, at)
    for problem, at in list(first_seen.items())[:30]:
        print(f"  first seen at {at:.0f} s: {problem.kind}: {problem.detail}")
    if settle_s > settle + CHECK_EVERY_S:
        for problem in (first_final or [])[:30]:
            print(f"  when the writers stopped: {problem.kind}: {problem.detail}")
    for problem in final[:30]:
        print(f"  at the end: {problem.kind}: {problem.detail}")

    assert daemon.terminate() == 0
    assert not final, f"{len(final)} discrepancies at the end: {Counter(p.kind for p in final)}"
    assert not found, f"{len(found)} discrepancies during the run: {dict(kinds)}"
    assert not rollout_problems, rollout_problems[:10]
    assert not bad_events, dict(bad_events)
    assert home_report["drift"] == {} and not home_report["errors"], home_report
    assert rss_growth < RSS_GROWTH_MAX, f"RSS grew {rss_growth:.1%}"
    assert abs(end.fds - baseline.fds) <= FD_SLACK, (baseline.fds, end.fds)
