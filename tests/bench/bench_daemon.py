#!/usr/bin/env python3
"""Benchmarks of the daemon (`python -m codex_indexd run`): latency, CPU, start time, memory.

    .venv/bin/python tests/bench/bench_daemon.py [--quick] [--appends N] [--cpu-appends N]
        [--idle-s S] [--idle-sessions N] [--cpu-sessions N] [--big-mb MB]
        [--start-sessions N] [--reps R] [--start-appends N] [--spacing-s S]
        [--only appends|start] [--workdir DIR] [--keep] [--json OUT] [--strict]

Every daemon is a real subprocess (`DaemonProcess` of tests/support/daemons.py, run by this
interpreter) with its own state/cache/log dirs (the CODEX_INDEXD_* variables) and a
NOTIFY_SOCKET we bind, as under the systemd unit (Type=notify, WatchdogSec=60s). It runs a
copy of daemon/ taken at the start (--no-snapshot: the live tree), with bytecode cached in
the run dir as an installed package has it (the priming run compiles it).
The homes are small-file homes built with tests/support/homes.py, primed once with
`run --once` (so the daemon starts on correct indexes), with times ending just before now so
that each appended turn is the newest history line, as in real use.

1. append -> history latency: a user turn (task_started, turn_context, user message item,
   `user_message` event; one write) is appended to the newest rollout of a 1,000-session
   home; `history.jsonl` is polled every 2 ms until it holds the turn's text. p50/p95.
2. CPU per appended turn, 1 MiB vs --big-mb MiB rollout (two homes of --cpu-sessions small
   sessions plus the subject rollout): CPU time of the daemon (sum of
   /proc/PID/task/*/schedstat) from just before an append until 0.45 s after history.jsonl
   held it (so the batch caused by its own write is included), minus the daemon's idle rate
   over the same window. Also shown for the 1,000- and 10,000-session homes.
3. Idle CPU of the 1,000-session daemon over --idle-s seconds (utime+stime of
   /proc/PID/stat, which includes exited threads), as % of one core.
4. Time from spawning the process to READY=1 on the notify socket with --start-sessions
   sessions: cold (no checkpoint) and warm (second start, checkpoint present).
5. VmRSS / VmHWM (/proc/PID/status) just after READY, cold and warm.

The three homes of 1-3 run at once and take turns (each home's appends are also at least
--spacing-s apart).

Only figures are printed. The exit status is 1 when a daemon failed, logged a safety-valve
event or lost a turn; with --strict also when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: Python puts only tests/bench on the path
    sys.path.insert(0, str(ROOT))

from tests.support.daemons import DaemonProcess, log_records  # noqa: E402
from tests.support.homes import Thread, Turn, db_row, iso, line, make_uuid, write_db, write_rollout  # noqa: E402

MIB = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")
DEBOUNCE_MS = 300  # the daemon's default; the runs below do not override it
LATENCY_TARGET_MS = DEBOUNCE_MS + 150
CPU_PER_APPEND_TARGET_MS = 5.0
CPU_RATIO_TARGET = 1.5
IDLE_TARGET_PCT = 0.5
WARM_START_TARGET_S = 1.0
RSS_TARGET_MIB = 80.0  # up to 10,000 sessions
# At 50,000 sessions: a cold start within 6 s and the warm daemon's peak within 100 MiB.
LARGE_HOME_SESSIONS = 50_000
LARGE_RSS_TARGET_MIB = 100.0
LARGE_COLD_START_TARGET_S = 6.0
POLL_S = 0.002
FILLER_LINE_BYTES = 256 << 10
OWN_ENV = (
    "CODEX_HOME",
    "CODEX_SQLITE_HOME",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "INVOCATION_ID",
)


# -- sizes -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Sizes:
    idle_sessions: int = 1000
    idle_s: float = 60.0
    appends: int = 50
    cpu_sessions: int = 100
    cpu_appends: int = 30
    small_mb: float = 1.0
    big_mb: float = 200.0
    start_sessions: int = 10_000
    start_prompt_bytes: int = 0  # 0: short prompts (~45 B); e.g. 1000 for prompt-heavy homes
    reps: int = 3
    settle_s: float = 0.45  # after history shows a turn: the follow-up batch (own write) is done
    gap_s: float = 0.15  # extra random spacing between appends (0..gap_s)
    spacing_s: float = 1.0  # least time between two appends to one home (6.5: see README)
    start_appends: int = 5  # appends on the warm-started big home
    start_idle_s: float = 60.0  # idle window on the warm-started big home (info)
    after_ready_s: float = 2.0  # before measuring: the start-up reconcile's own write events pass
    rss_later_s: float = 1.0  # second memory reading, this long after READY


def quick_sizes() -> Sizes:
    return Sizes(
        idle_sessions=40,
        idle_s=1.0,
        appends=3,
        cpu_sessions=10,
        cpu_appends=2,
        small_mb=0.25,
        big_mb=2.0,
        start_sessions=200,
        reps=1,
        settle_s=0.35,
        gap_s=0.05,
        spacing_s=0.0,
        start_appends=1,
        start_idle_s=0.5,
        after_ready_s=0.5,
        rss_later_s=0.2,
    )


# -- homes -------------------------------------------------------------------------------------


@dataclass(slots=True)
class LiveThread:
    """The rollout the benchmark appends turns to."""

    thread: Thread
    path: Path
    appended: int = 0


# The appended turns are `codex exec`'s (its session_meta says `"source": "exec"`): exec never
# writes its own history line, so the daemon adds the turn once the debounce ends. A TUI
# thread's turn ("cli"/"vscode") is held debounce + 1.7 s on purpose: the TUI writes its own
# line up to 1.5 s later.
APPEND_SOURCE = "exec"
APPEND_NOTE = (
    f'appended turns are {APPEND_SOURCE}-source (session_meta "source": "{APPEND_SOURCE}", as '
    "`codex exec` writes it): added after the debounce; a TUI-source turn is held debounce + "
    "1.7 s for the TUI's own history line"
)


def build_home(
    home: Path,
    sessions: int,
    *,
    subject_bytes: int = 0,
    now: datetime | None = None,
    spacing: timedelta = timedelta(minutes=37),
    prompt_bytes: int = 0,
    live_source: str = APPEND_SOURCE,
) -> LiveThread:
    """Write `sessions` legacy threads (session_meta + 2 user turns, ~2.5 KB each) with DB rows,
    the newest ending about an hour before `now`; pad the newest rollout to `subject_bytes`
    with tool-output lines. Return the newest thread, which the benchmark appends to; its
    `session_meta` (and DB row) source is `live_source`, the others' "cli"."""
    now = now or datetime.now(tz=UTC)
    first = now - timedelta(hours=1) - spacing * sessions
    home.mkdir(parents=True, exist_ok=True)
    threads: list[Thread] = []
    path = home
    for i in range(sessions):
        turns = [
            Turn(
                prompt_text(
                    f"Prompt {j} of session {i}: look at item {j}\nand say why", prompt_bytes
                )
            )
            for j in range(2)
        ]
        source = live_source if i == sessions - 1 else "cli"
        thread = Thread(
            make_uuid(i, v7=False), first + spacing * i, turns, source=source, tool_output_bytes=400
        )
        threads.append(thread)
        path = write_rollout(home, thread)
    write_db(home, [db_row(home, thread) for thread in threads])
    live = threads[-1]
    if subject_bytes:
        pad_rollout(path, live, subject_bytes)
    return LiveThread(live, path)


def prompt_text(head: str, size: int) -> str:
    """`head`, padded with varied words to `size` characters (when longer than `head`)."""
    words = ("check", "the", "parser", "again", "and", "explain", "why", "tests", "fail")
    out, i = [head], len(head)
    while i < size:
        word = words[(i * 7 + len(out)) % len(words)]
        out.append(word)
        i += len(word) + 1
    return " ".join(out)[: max(size, len(head))]


def pad_rollout(path: Path, thread: Thread, size: int) -> None:
    """Append `function_call_output` lines (the bulk of real rollouts) until `path` is `size` bytes."""
    ts = iso(thread.last_time)
    with path.open("a", encoding="utf-8") as out:
        current = path.stat().st_size
        n = 0
        while current < size:
            body = min(FILLER_LINE_BYTES, max(16, size - current - 120))
            text = line(
                {
                    "timestamp": ts,
                    "type": "response_item",
                    "payload": {
                        "type": "function_call_output",
                        "call_id": f"pad{n}",
                        "output": "x" * body,
                    },
                }
            )
            out.write(text)
            current += len(text.encode("utf-8"))
            n += 1


def turn_block(live: LiveThread, text: str, when: datetime) -> bytes:
    """The lines Codex writes when a user turn starts (legacy rollout)."""
    tid = live.thread.thread_id
    out = line(
        {
            "timestamp": iso(when),
            "type": "event_msg",
            "payload": {
                "type": "task_started",
                "turn_id": f"b{live.appended}",
                "model_context_window": 272000,
            },
        }
    )
    out += line(
        {
            "timestamp": iso(when),
            "type": "turn_context",
            "payload": {"cwd": "/work/x", "model": "mock", "thread_id": tid},
        }
    )
    out += line(
        {
            "timestamp": iso(when),
            "type": "response_item",
            "payload": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            },
        }
    )
    out += line(
        {
            "timestamp": iso(when),
            "type": "event_msg",
            "payload": {
                "type": "user_message",
                "message": text,
                "images": [],
                "local_images": [],
                "kind": "plain",
            },
        }
    )
    return out.encode("utf-8")


def append_turn(live: LiveThread) -> tuple[float, bytes]:
    """Append one user turn (one write, like Codex's buffered writer); return the time the write
    returned and the JSON-encoded text history.jsonl must come to hold."""
    text = f"bench turn {live.appended} {uuid.uuid4().hex[:12]}"
    data = turn_block(live, text, datetime.now(tz=UTC))
    live.appended += 1
    fd = os.open(live.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    try:
        os.write(fd, data)
        done = time.perf_counter()
    finally:
        os.close(fd)
    return done, json.dumps(text).encode("ascii")


class HistoryWatch:
    """Polls `history.jsonl` for a piece of text; only the tail written since the previous
    find is read.

    The tail is read again on every poll until the text shows up, even when the size did not
    change: on ext4 a reader racing the daemon's pwrite can see the new size before the new
    bytes (we saw a 105-byte line read back without its text, then no further size change).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen = self._size()  # size when the previous text was found

    def _size(self) -> int:
        try:
            return os.stat(self.path).st_size
        except FileNotFoundError:
            return 0

    def wait_for(self, needle: bytes, timeout_s: float, interval_s: float = POLL_S) -> float | None:
        """Return the perf_counter time `needle` was first seen, or None after `timeout_s`."""
        deadline = time.perf_counter() + timeout_s
        while True:
            size = self._size()
            now = time.perf_counter()
            if size < self.seen:  # rewritten shorter: look at all of it
                self.seen = 0
            if size > self.seen:
                start = max(0, self.seen - 4096)
                with open(self.path, "rb") as handle:
                    handle.seek(start)
                    tail = handle.read()
                if needle in tail:
                    self.seen = start + len(tail)
                    return now
            if now > deadline:
                return None
            time.sleep(interval_s)


# -- the daemon process ------------------------------------------------------------------------


def cpu_ticks_s(pid: int) -> float:
    """utime + stime of the whole process (exited threads included), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_sched_s(pid: int) -> float:
    """CPU time of the live threads, in ns resolution (/proc/PID/task/*/schedstat), in seconds."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1e9


def proc_mem_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM in MiB."""
    out: dict[str, float] = {}
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = row.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


BYTECODE: dict[str, str] = {"PYTHONDONTWRITEBYTECODE": ""}
"""How every child of the run caches bytecode: `main` points PYTHONPYCACHEPREFIX into the run
dir, so that the priming run compiles the code once and every daemon start after it loads
cached bytecode, as an installed package does (compiling the daemon's modules costs about
0.15 s of each start)."""
DAEMON_ENV: dict[str, str] = {}
"""Extra environment of every daemon: `main` puts the snapshot's PYTHONPATH here (a
`DaemonProcess` would otherwise import the live tree first)."""


def clean_env(base: Path, cache: Path) -> dict[str, str]:
    """Our environment without any codex-indexd or Codex setting, plus private dirs."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CODEX_INDEXD_") and k not in OWN_ENV
    }
    env.update(our_dirs(base, cache), **BYTECODE)
    return env


def our_dirs(base: Path, cache: Path) -> dict[str, str]:
    """The CODEX_INDEXD_* variables of a daemon whose own files live under `base`."""
    return {
        "CODEX_INDEXD_STATE_DIR": str(base / "state"),
        "CODEX_INDEXD_CACHE_DIR": str(cache),
        "CODEX_INDEXD_LOG_DIR": str(base / "log"),
        "CODEX_INDEXD_CONFIG": str(base / "config.toml"),
    }


class DaemonProc:
    """One `codex-indexd run` subprocess (a `DaemonProcess` of tests/support/daemons.py, with
    its sd_notify listener) with its own dirs, started and stopped again by the scenarios."""

    def __init__(self, name: str, home: Path, base: Path) -> None:
        self.name, self.home, self.base = name, home, base
        self.cache = base / "cache"
        self.process: DaemonProcess | None = None
        self.spawned = 0.0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.base / "log" / "codex-indexd.log"

    def start(self) -> None:
        """Spawn the daemon with the default debounce, as under the unit (Type=notify,
        WatchdogSec=60s)."""
        self.base.mkdir(parents=True, exist_ok=True)
        env = {**our_dirs(self.base, self.cache), **BYTECODE, **DAEMON_ENV}
        env["WATCHDOG_USEC"] = "60000000"
        self.spawned = time.monotonic()
        self.process = DaemonProcess(
            self.home, debounce_ms=None, env=env, notify=True, output_dir=self.base
        )

    def wait_ready(self, timeout_s: float = 600.0) -> float:
        """Wait for READY=1; return seconds from spawning to its arrival. Raises RuntimeError
        if the daemon died or time ran out."""
        process = self.process
        assert process is not None and process.notify is not None
        try:
            process.wait_ready(timeout_s)
        except AssertionError as exc:
            raise RuntimeError(f"daemon {self.name}: {exc}") from None
        arrived = [
            at for at, message in list(process.notify.messages) if "READY=1" in message.split("\n")
        ]
        return arrived[0] - self.spawned

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def stop(self) -> int:
        """SIGTERM, wait; return the exit code (SIGKILL after 60 s counts as a failure)."""
        process, self.process = self.process, None
        if process is None:
            return 0
        try:
            code = process.terminate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            code = -9
        process.close()
        return code

    def events(self, event: str) -> list[dict[str, Any]]:
        return log_records(self.log_path.parent, event)


def prime(home: Path, base: Path) -> float:
    """`run --once` with throwaway dirs: the home's indexes are correct afterwards. Returns seconds."""
    base.mkdir(parents=True, exist_ok=True)
    env = clean_env(base, base / "cache")
    started = time.perf_counter()
    with (base / "prime.log").open("ab") as out:
        subprocess.run(
            [sys.executable, "-m", "codex_indexd", "run", "--once", "--codex-home", str(home)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
            check=True,
        )
    return time.perf_counter() - started


# -- statistics ------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile (p95 of 50 values is the 48th smallest)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclass(slots=True)
class AppendSample:
    latency_s: float | None  # None: history did not get the turn within the timeout
    cpu_s: float  # daemon CPU from before the append until settle_s after it landed
    window_s: float
    needle: bytes = b""  # the turn's JSON text, to look for it again at the end
    appended_at: float = 0.0


def one_append(
    daemon: DaemonProc, live: LiveThread, watch: HistoryWatch, sizes: Sizes, rng: random.Random
) -> AppendSample:
    cpu0, t0 = cpu_sched_s(daemon.pid), time.perf_counter()
    written, needle = append_turn(live)
    seen = watch.wait_for(needle, timeout_s=10.0)
    time.sleep(sizes.settle_s + rng.uniform(0, sizes.gap_s))
    cpu1, t1 = cpu_sched_s(daemon.pid), time.perf_counter()
    return AppendSample(
        None if seen is None else seen - written, cpu1 - cpu0, t1 - t0, needle, written
    )


@dataclass(slots=True)
class Idle:
    """CPU use of one daemon over an idle window, in CPU seconds per second."""

    ticks_rate: float  # utime+stime of /proc/PID/stat (10 ms ticks, exited threads included)
    sched_rate: float  # schedstat of the live threads (ns)
    wall_s: float


def measure_idle(daemons: dict[str, DaemonProc], seconds: float) -> dict[str, Idle]:
    """CPU use of each daemon over the same `seconds` of doing nothing."""
    pids = {name: d.pid for name, d in daemons.items()}
    t0 = time.perf_counter()
    ticks0 = {name: cpu_ticks_s(pid) for name, pid in pids.items()}
    sched0 = {name: cpu_sched_s(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    ticks1 = {name: cpu_ticks_s(pid) for name, pid in pids.items()}
    sched1 = {name: cpu_sched_s(pid) for name, pid in pids.items()}
    wall = time.perf_counter() - t0
    return {
        name: Idle((ticks1[name] - ticks0[name]) / wall, (sched1[name] - sched0[name]) / wall, wall)
        for name in pids
    }


def net_cpu_ms(samples: Sequence[AppendSample], rate: float) -> list[float]:
    """Per-append CPU in ms with the idle rate over each window taken out."""
    return [max(0.0, s.cpu_s - rate * s.window_s) * 1000 for s in samples]


# -- results -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Row:
    measure: str
    value: float | None
    unit: str
    target: str
    met: bool | None


@dataclass(slots=True)
class Results:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def add(
        self,
        measure: str,
        value: float | None,
        unit: str,
        target: str = "-",
        ok: Callable[[float], bool] | None = None,
    ) -> None:
        met = None if ok is None or value is None else ok(value)
        self.rows.append(Row(measure, value, unit, target, met))


def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    digits = 2 if abs(value) < 10 else 1 if abs(value) < 1000 else 0
    return f"{value:.{digits}f} {unit}".strip()


def print_table(results: Results) -> None:
    widths = (50, 14, 12, 5)
    print()
    print(
        "measure".ljust(widths[0])
        + "value".rjust(widths[1])
        + "target".rjust(widths[2])
        + "met".rjust(widths[3])
    )
    for row in results.rows:
        met = "-" if row.met is None else "yes" if row.met else "NO"
        print(
            row.measure.ljust(widths[0])
            + fmt_value(row.value, row.unit).rjust(widths[1])
            + row.target.rjust(widths[2])
            + met.rjust(widths[3])
        )
    for note in results.notes:
        print(f"  {note}")
    for failure in results.failures:
        print(f"  FAILED: {failure}")


# -- the scenarios -----------------------------------------------------------------------------


def report_missed(daemon: DaemonProc, samples: Sequence[AppendSample], res: Results) -> None:
    """Turns that history.jsonl did not get within the timeout: late, or never written."""
    missed = [s for s in samples if s.latency_s is None]
    if not missed:
        return
    history = (daemon.home / "history.jsonl").read_bytes()
    late = sum(s.needle in history for s in missed)
    index = [i for i, s in enumerate(samples) if s.latency_s is None]
    repaired = len(daemon.events("index.repaired"))
    res.failures.append(
        f"daemon {daemon.name}: {len(missed)} of {len(samples)} turns not in history.jsonl "
        f"within 10 s (appends #{index}); {late} arrived later, {len(missed) - late} never; "
        f"{repaired} index.repaired events"
    )


def check_log(daemon: DaemonProc, res: Results) -> None:
    """A benchmark run must not trip the daemon's safety valves or fail a batch."""
    for event in ("rewrite_loop_suspected", "home.failed", "watch.observer_died"):
        found = daemon.events(event)
        if found:
            res.failures.append(f"daemon {daemon.name} logged {event} {len(found)} time(s)")


def spaced_rounds(
    daemons: Sequence[tuple[DaemonProc, LiveThread, HistoryWatch, int]],
    sizes: Sizes,
    rng: random.Random,
) -> dict[str, list[AppendSample]]:
    """Round-robin appends: each daemon gets one per round until it has its count; a round
    lasts at least `spacing_s`."""
    samples: dict[str, list[AppendSample]] = {d.name: [] for d, _, _, _ in daemons}
    rounds = max((count for _, _, _, count in daemons), default=0)
    for i in range(rounds):
        begun = time.perf_counter()
        for daemon, live, watch, count in daemons:  # fixed order: each home's gap is >= spacing_s
            if len(samples[daemon.name]) < count:
                samples[daemon.name].append(one_append(daemon, live, watch, sizes, rng))
        if i + 1 < rounds:
            time.sleep(max(0.0, sizes.spacing_s - (time.perf_counter() - begun)))
    return samples


def latency_ms(samples: Sequence[AppendSample]) -> list[float]:
    return [s.latency_s * 1000 for s in samples if s.latency_s is not None]


def scenario_appends(work: Path, sizes: Sizes, rng: random.Random, res: Results) -> None:
    """Idle CPU, then spaced appends on three running daemons: the idle/latency home and the
    two per-append CPU homes (small and big subject rollout)."""
    specs = [
        ("idle", sizes.idle_sessions, 0.0, sizes.appends),
        ("small", sizes.cpu_sessions, sizes.small_mb, sizes.cpu_appends),
        ("big", sizes.cpu_sessions, sizes.big_mb, sizes.cpu_appends),
    ]
    daemons: dict[str, DaemonProc] = {}
    lives: dict[str, LiveThread] = {}
    setup: list[str] = []
    try:
        for name, sessions, mb, _ in specs:
            home = work / f"home-{name}"
            t0 = time.perf_counter()
            lives[name] = build_home(home, sessions, subject_bytes=int(mb * MIB))
            t1 = time.perf_counter()
            primed = prime(home, work / f"prime-{name}")
            daemons[name] = DaemonProc(name, home, work / f"d-{name}")
            daemons[name].start()
            ready = daemons[name].wait_ready()
            setup.append(
                f"{name}: built {t1 - t0:.1f} s, primed {primed:.1f} s, READY {ready:.2f} s"
            )
        time.sleep(sizes.after_ready_s)
        idle = measure_idle(daemons, sizes.idle_s)
        rates = {name: i.sched_rate for name, i in idle.items()}
        plan = [
            (daemons[name], lives[name], HistoryWatch(daemons[name].home / "history.jsonl"), count)
            for name, _, _, count in specs
        ]
        samples = spaced_rounds(plan, sizes, rng)
        alive = {name: d.alive() for name, d in daemons.items()}
    finally:
        codes = {name: d.stop() for name, d in daemons.items()}
    for name, daemon in daemons.items():
        check_log(daemon, res)
        if not alive.get(name) or codes[name] != 0:
            res.failures.append(f"daemon {name}: alive={alive.get(name)}, exit code {codes[name]}")
        report_missed(daemon, samples[name], res)

    n = sizes.idle_sessions
    lat = latency_ms(samples["idle"])
    complete = len(lat) == len(samples["idle"])
    res.add(f"append->history p50, {n} sessions", median(lat), "ms")
    res.add(
        f"append->history p95, {n} sessions ({len(samples['idle'])} appends)",
        percentile(lat, 95) if complete else None,
        "ms",
        f"<= {LATENCY_TARGET_MS} ms",
        lambda v: v <= LATENCY_TARGET_MS,
    )
    idle_pct = idle["idle"].ticks_rate * 100
    per: dict[str, float | None] = {}
    for name, sessions, _, _ in specs:
        net = net_cpu_ms(samples[name], rates[name])
        per[name] = median(net)
        res.raw[f"cpu_per_append_ms_{name}"] = net
        res.raw[f"latency_ms_{name}"] = latency_ms(samples[name])
        size = lives[name].path.stat().st_size / MIB
        if name == "idle":
            res.add(f"CPU per append, {n} sessions (median)", per[name], "ms")
        else:
            res.add(
                f"CPU per append, {size:.3g} MiB rollout (median)",
                per[name],
                "ms",
                f"<= {CPU_PER_APPEND_TARGET_MS:g} ms",
                lambda v: v <= CPU_PER_APPEND_TARGET_MS,
            )
        raw_ms = [x.cpu_s * 1000 for x in samples[name]]
        res.notes.append(
            f"{name}: {sessions} sessions, appended rollout {size:.1f} MiB; per append: CPU p95 "
            f"{percentile(net, 95) or 0:.2f} ms, raw (idle not taken out) median {median(raw_ms) or 0:.2f} ms, "
            f"latency p50/p95 {median(latency_ms(samples[name])) or 0:.0f}/"
            f"{percentile(latency_ms(samples[name]), 95) or 0:.0f} ms; idle "
            f"{rates[name] * 100:.3f} % (schedstat)"
        )
    small, big = per["small"], per["big"]
    res.add(
        f"CPU per append ratio {sizes.big_mb:g} / {sizes.small_mb:g} MiB",
        big / small if big is not None and small else None,
        "x",
        f"<= {CPU_RATIO_TARGET:g}x",
        lambda v: v <= CPU_RATIO_TARGET,
    )
    res.add(
        f"idle CPU, {n} sessions, {idle['idle'].wall_s:.0f} s",
        idle_pct,
        "%",
        f"< {IDLE_TARGET_PCT} %",
        lambda v: v < IDLE_TARGET_PCT,
    )
    res.notes.append(APPEND_NOTE)
    res.notes.append(
        "setup: " + "; ".join(setup) + f"; appends spaced {sizes.spacing_s:g} s per home, "
        f"CPU window = append .. {sizes.settle_s:g} s after history.jsonl held it"
    )
    res.raw["idle"] = {name: asdict(i) for name, i in idle.items()}


def scenario_start(work: Path, sizes: Sizes, rng: random.Random, res: Results) -> None:
    """Cold and warm starts of a big home; appends on the last warm run."""
    home = work / "home-start"
    started = time.perf_counter()
    live = build_home(
        home,
        sizes.start_sessions,
        spacing=timedelta(minutes=29),
        prompt_bytes=sizes.start_prompt_bytes,
    )
    built = time.perf_counter() - started
    primed = prime(home, work / "prime-start")
    daemon = DaemonProc("start", home, work / "d-start")
    runs: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
    samples: list[AppendSample] = []
    rate = idle_pct = 0.0
    for rep in range(sizes.reps):
        shutil.rmtree(daemon.cache, ignore_errors=True)
        for kind in ("cold", "warm"):
            loaded_before = len(daemon.events("home.loaded"))
            stopped_before = len(daemon.events("daemon.stopped"))
            daemon.start()
            try:
                ready = daemon.wait_ready()
                mem = proc_mem_mib(daemon.pid)
                time.sleep(sizes.rss_later_s)
                mem_later = proc_mem_mib(daemon.pid)
                if kind == "warm" and rep == sizes.reps - 1:
                    idle = measure_idle({"start": daemon}, sizes.start_idle_s)["start"]
                    rate, idle_pct = idle.sched_rate, idle.ticks_rate * 100
                    watch = HistoryWatch(home / "history.jsonl")
                    samples = [
                        one_append(daemon, live, watch, sizes, rng)
                        for _ in range(sizes.start_appends)
                    ]
                    mem_after = proc_mem_mib(daemon.pid)
                    res.raw["start_mem_after_appends"] = mem_after
            finally:
                code = daemon.stop()
            if code != 0:
                res.failures.append(f"start daemon ({kind}) exit code {code}")
            loaded = daemon.events("home.loaded")[loaded_before:]
            info = loaded[-1] if loaded else {}
            stopped = daemon.events("daemon.stopped")[stopped_before:]
            # The daemon's own VmHWM as it stopped: its whole life, the checkpoint save at the
            # stop included (a figure /proc can no longer give once it has exited).
            life_peak = stopped[-1].get("peak_rss_mib") if stopped else None
            if bool(info.get("from_checkpoint")) != (kind == "warm"):
                res.failures.append(f"{kind} start: from_checkpoint={info.get('from_checkpoint')}")
            runs[kind].append(
                {
                    "ready_s": ready,
                    "rss": mem.get("VmRSS", 0.0),
                    "hwm": mem.get("VmHWM", 0.0),
                    "rss_later": mem_later.get("VmRSS", 0.0),
                    "life_hwm": float(life_peak or 0.0),
                    "loaded_s": float(info.get("seconds", 0.0)),
                    "bytes_read": float(info.get("bytes_read", 0)),
                }
            )
    check_log(daemon, res)
    n = sizes.start_sessions

    def med(kind: str, key: str) -> float | None:
        return median([r[key] for r in runs[kind]])

    res.add(
        f"warm start to READY, {n} sessions",
        med("warm", "ready_s"),
        "s",
        f"<= {WARM_START_TARGET_S:g} s",
        lambda v: v <= WARM_START_TARGET_S,
    )
    large = n >= LARGE_HOME_SESSIONS
    if large:
        res.add(
            f"cold start to READY, {n} sessions",
            med("cold", "ready_s"),
            "s",
            f"<= {LARGE_COLD_START_TARGET_S:g} s",
            lambda v: v <= LARGE_COLD_START_TARGET_S,
        )
    else:
        res.add(f"cold start to READY, {n} sessions", med("cold", "ready_s"), "s")
    rss_target = LARGE_RSS_TARGET_MIB if large else RSS_TARGET_MIB
    ok_rss: Callable[[float], bool] = lambda v: v <= rss_target  # noqa: E731
    res.add(
        f"VmRSS after warm READY, {n} sessions",
        med("warm", "rss"),
        "MiB",
        f"<= {rss_target:g} MiB",
        ok_rss,
    )
    res.add(
        f"VmHWM after warm READY, {n} sessions",
        med("warm", "hwm"),
        "MiB",
        f"<= {rss_target:g} MiB",
        ok_rss,
    )
    if "start_mem_after_appends" in res.raw:
        # The steady state: after READY the worker loads the index files for healing and
        # the first events, so the figure at READY alone would flatter the daemon.
        after = res.raw["start_mem_after_appends"]
        res.add(
            f"VmHWM after warm READY + {sizes.start_appends} appends, {n} sessions",
            after.get("VmHWM", 0.0),
            "MiB",
            f"<= {rss_target:g} MiB",
            ok_rss,
        )
    if runs["warm"] and runs["warm"][-1]["life_hwm"]:
        # The last warm run is the one with the appends; its stop saves the checkpoint.
        res.add(
            f"VmHWM over the warm daemon's life (appends, stop and its save), {n} sessions",
            runs["warm"][-1]["life_hwm"],
            "MiB",
        )
    if large:  # the target at 50,000 sessions is the warm daemon's
        res.add(f"VmHWM after cold READY, {n} sessions", med("cold", "hwm"), "MiB")
    else:
        res.add(
            f"VmHWM after cold READY, {n} sessions",
            med("cold", "hwm"),
            "MiB",
            f"<= {rss_target:g} MiB",
            ok_rss,
        )
    res.add(f"idle CPU, {n} sessions, {sizes.start_idle_s:g} s", idle_pct, "%")
    if samples:
        report_missed(daemon, samples, res)
        net = net_cpu_ms(samples, rate)
        res.add(f"CPU per append, {n} sessions (median of {len(samples)})", median(net), "ms")
        res.add(f"append->history p50, {n} sessions", median(latency_ms(samples)), "ms")
        res.add(
            f"append->history max, {n} sessions",
            max(latency_ms(samples), default=None),
            "ms",
            f"<= {LATENCY_TARGET_MS} ms",
            lambda v: v <= LATENCY_TARGET_MS,
        )
        res.notes.append(APPEND_NOTE)
        res.raw["cpu_per_append_ms_start"] = net
        res.raw["latency_ms_start"] = latency_ms(samples)
    checkpoints = list(daemon.cache.glob("*.checkpoint.json"))
    cp_mib = checkpoints[0].stat().st_size / MIB if checkpoints else 0.0
    files = sum(1 for _ in (home / "sessions").rglob("rollout-*.jsonl"))
    res.notes.append(
        f"start home: {files} rollouts, {dir_mib(home / 'sessions'):.1f} MiB, "
        f"prompts of {sizes.start_prompt_bytes or '~45'} B, built in {built:.1f} s, "
        f"primed in {primed:.1f} s; checkpoint {cp_mib:.1f} MiB; {sizes.reps} rep(s), medians"
    )
    for kind in ("cold", "warm"):
        res.notes.append(
            f"{kind}: home.loaded {med(kind, 'loaded_s') or 0:.3f} s "
            f"(bytes_read {int(med(kind, 'bytes_read') or 0)}), VmRSS {sizes.rss_later_s:g} s "
            f"after READY {med(kind, 'rss_later') or 0:.1f} MiB"
        )
    if "start_mem_after_appends" in res.raw:
        after = res.raw["start_mem_after_appends"]
        res.notes.append(
            f"after {len(samples)} appends: VmRSS {after.get('VmRSS', 0):.1f} MiB, "
            f"VmHWM {after.get('VmHWM', 0):.1f} MiB"
        )
    res.raw["start"] = runs


def dir_mib(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / MIB


def interpreter_floor(python: str) -> tuple[float, float, float]:
    """Wall time of a bare `python -c pass` and of importing the daemon's modules, and the
    VmHWM (MiB) of that import: floors under start -> READY and RSS (bytecode cached as the
    daemons have it)."""
    env = {**os.environ, **BYTECODE}
    imports = "import codex_indexd.daemon.loop, codex_indexd.log.setup, codex_indexd.commands.run, codex_indexd.cli"
    report = (
        f"{imports}; import re; print(int(re.search(r'VmHWM:\\s+(\\d+)', "
        "open('/proc/self/status').read()).group(1)))"
    )

    def wall(cmd: list[str]) -> float:
        samples = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run(
                cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
            )
            samples.append(time.perf_counter() - t0)
        return statistics.median(samples)

    wall([python, "-c", imports])  # fills the bytecode cache
    hwm = subprocess.run(
        [python, "-c", report], capture_output=True, text=True, check=True, env=env
    ).stdout
    return wall([python, "-c", "pass"]), wall([python, "-c", imports]), int(hwm) / 1024


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test, < 20 s)")
    parser.add_argument("--appends", type=int, help="latency appends (default 50)")
    parser.add_argument("--cpu-appends", type=int, help="appends per rollout size (default 30)")
    parser.add_argument("--idle-s", type=float, help="idle window (default 60)")
    parser.add_argument(
        "--idle-sessions", type=int, help="sessions of the latency/idle home (default 1000)"
    )
    parser.add_argument(
        "--cpu-sessions", type=int, help="other sessions of the CPU homes (default 100)"
    )
    parser.add_argument("--big-mb", type=float, help="big rollout size (default 200)")
    parser.add_argument(
        "--start-sessions", type=int, help="sessions of the start home (default 10000)"
    )
    parser.add_argument(
        "--start-prompt-bytes",
        type=int,
        help="length of each prompt in the start home (default: short, ~45 B)",
    )
    parser.add_argument("--reps", type=int, help="cold+warm start repetitions (default 3)")
    parser.add_argument(
        "--start-appends", type=int, help="appends on the warm-started home (default 5, <= 10)"
    )
    parser.add_argument(
        "--spacing-s", type=float, help="least seconds between two appends to one home (default 1)"
    )
    parser.add_argument(
        "--only",
        choices=["appends", "start"],
        action="append",
        help="run only these scenarios (repeatable)",
    )
    parser.add_argument("--workdir", type=Path, help="where homes go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    parser.add_argument("--json", type=Path, help="write all figures here")
    parser.add_argument(
        "--no-snapshot",
        action="store_true",
        help="run the live daemon/ tree instead of a copy taken at the start",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    return parser.parse_args(argv)


def sizes_from(args: argparse.Namespace) -> Sizes:
    sizes = quick_sizes() if args.quick else Sizes()
    for attr in (
        "appends",
        "cpu_appends",
        "idle_s",
        "idle_sessions",
        "cpu_sessions",
        "big_mb",
        "start_sessions",
        "start_prompt_bytes",
        "reps",
        "start_appends",
        "spacing_s",
    ):
        value = getattr(args, attr)
        if value is not None:
            setattr(sizes, attr, value)
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = sizes_from(args)
    if not sys.platform.startswith("linux"):
        print("bench_daemon needs Linux (/proc)", file=sys.stderr)
        return 1
    owned = args.workdir is None
    work = Path(tempfile.mkdtemp(prefix="bench-daemon-")) if owned else args.workdir
    work.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    # The daemons inherit this process's environment (DaemonProcess): none of our settings.
    for name in [k for k in os.environ if k.startswith("CODEX_INDEXD_") or k in OWN_ENV]:
        del os.environ[name]
    BYTECODE["PYTHONPYCACHEPREFIX"] = str(run_dir / "pycache")
    rng = random.Random(args.seed)
    res = Results()
    only = set(args.only or ["appends", "start"])
    load0 = os.getloadavg()[0]  # other work on the machine inflates wall times
    saved_path = os.environ.get("PYTHONPATH")
    if not args.no_snapshot:
        # Every daemon of the run imports the same code, even if daemon/ is edited meanwhile.
        snap = run_dir / "snapshot"
        shutil.copytree(
            ROOT / "daemon" / "codex_indexd",
            snap / "codex_indexd",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(snap), saved_path) if p)
        DAEMON_ENV["PYTHONPATH"] = os.environ["PYTHONPATH"]
        where = subprocess.run(
            [sys.executable, "-c", "import codex_indexd; print(codex_indexd.__file__)"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "daemon"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        res.notes.append(
            f"code: snapshot of daemon/ at {head or '?'}{' + uncommitted changes' if dirty else ''}"
        )
        if not where.startswith(str(snap)):
            res.failures.append(
                f"the snapshot is not what the daemons import ({where or 'import failed'})"
            )
    print(
        f"bench_daemon: {'quick' if args.quick else 'full'} run in {run_dir}; debounce {DEBOUNCE_MS} ms "
        f"(default); {os.cpu_count()} CPUs"
    )
    try:
        steps: list[tuple[str, Callable[[], None]]] = [
            ("appends", lambda: scenario_appends(run_dir, sizes, rng, res)),
            ("start", lambda: scenario_start(run_dir, sizes, rng, res)),
        ]
        for name, step in steps:
            if name not in only:
                continue
            t0 = time.perf_counter()
            try:
                step()
            except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
                res.failures.append(f"{name}: {exc}")
            print(f"  {name} done in {time.perf_counter() - t0:.1f} s", flush=True)
        bare, imports, import_mib = interpreter_floor(sys.executable)
        res.notes.append(
            f"floors: bare python start {bare * 1000:.0f} ms, importing the daemon {imports * 1000:.0f} ms "
            f"and VmHWM {import_mib:.1f} MiB"
        )
    finally:
        if saved_path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved_path
        if not args.keep:
            shutil.rmtree(run_dir if not owned else work, ignore_errors=True)
    res.notes.append(
        f"load average (1 min) at the end: {os.getloadavg()[0]:.2f}; at the start: {load0:.2f}"
    )
    print_table(res)
    if args.json:
        payload = {
            "sizes": asdict(sizes),
            "rows": [asdict(r) for r in res.rows],
            "notes": res.notes,
            "failures": res.failures,
            "raw": res.raw,
        }
        args.json.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    if res.failures:
        return 1
    if args.strict and any(row.met is False for row in res.rows):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
