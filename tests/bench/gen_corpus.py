#!/usr/bin/env python3
"""Generate a realistic synthetic CODEX_HOME for benchmarks and smoke tests.

    python tests/bench/gen_corpus.py OUT_HOME --mb 500 --format legacy|paginated|mixed \
        --sessions N --seed S [--history-max-bytes B] [--jobs J] [--force]

Writes `sessions/YYYY/MM/DD/rollout-<local ts>-<uuid>.jsonl` (UUIDv4 ids for legacy threads,
UUIDv7 for paginated ones), a few archived rollouts in `archived_sessions/`, a few orphan
rollouts without a DB row, `state_5.sqlite` (WAL, a `threads` row per non-orphan rollout) and
`config.toml`. `--mb` is the total size of all rollouts in MiB. Output is deterministic for a
seed (independent of `--jobs`); only figures are printed, never prompt text.
"""

from __future__ import annotations

import argparse
import calendar
import os
import random
import shutil
import sqlite3
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: Python puts only tests/bench on the path
    sys.path.insert(0, str(ROOT))

from tests.bench.corpus_rollout import (  # noqa: E402
    MAX_TOOL_OUTPUT,
    SessionResult,
    SessionSpec,
    write_rollout,
)
from tests.bench.corpus_text import (  # noqa: E402
    TextPools,
    build_pools,
    first_prompt,
    local_parts,
    uuid_v4,
    uuid_v7,
)

MIB = 1 << 20
MIN_BUDGET = 24 << 10
STATE_DB = "state_5.sqlite"
PAGINATED_SINCE = "2026-06-01"
DATE_RANGES = {
    "legacy": ("2025-08-01", "2026-05-31"),
    "paginated": (PAGINATED_SINCE, "2026-11-20"),
    "mixed": ("2025-08-01", "2026-11-20"),
}
PROJECTS = (
    "/home/dev/work/indexer",
    "/home/dev/work/webapp",
    "/home/dev/src/rust-cli",
    "/home/dev/work/data-pipeline",
    "/home/dev/notes",
)

# Columns of the Codex 0.169.0 `threads` table (tests/e2e/threads_schema_0169.sql), no triggers.
THREADS_DDL = """
CREATE TABLE threads (
    id TEXT PRIMARY KEY,
    rollout_path TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    source TEXT NOT NULL,
    model_provider TEXT NOT NULL,
    cwd TEXT NOT NULL,
    title TEXT NOT NULL,
    sandbox_policy TEXT NOT NULL,
    approval_mode TEXT NOT NULL,
    tokens_used INTEGER NOT NULL DEFAULT 0,
    has_user_event INTEGER NOT NULL DEFAULT 0,
    archived INTEGER NOT NULL DEFAULT 0,
    archived_at INTEGER,
    git_sha TEXT,
    git_branch TEXT,
    git_origin_url TEXT,
    cli_version TEXT NOT NULL DEFAULT '',
    first_user_message TEXT NOT NULL DEFAULT '',
    agent_nickname TEXT,
    agent_role TEXT,
    memory_mode TEXT NOT NULL DEFAULT 'enabled',
    model TEXT,
    reasoning_effort TEXT,
    agent_path TEXT,
    created_at_ms INTEGER,
    updated_at_ms INTEGER,
    thread_source TEXT,
    preview TEXT NOT NULL DEFAULT '',
    recency_at INTEGER NOT NULL DEFAULT 0,
    recency_at_ms INTEGER NOT NULL DEFAULT 0,
    history_mode TEXT NOT NULL DEFAULT 'legacy',
    name TEXT,
    is_pinned INTEGER NOT NULL DEFAULT 0,
    thread_section_id TEXT,
    section_position INTEGER,
    section_entered_at_ms INTEGER,
    project_id TEXT,
    originator TEXT,
    daybreak_enabled BOOLEAN,
    creator_user_id TEXT,
    creator_account_id TEXT,
    attached_thread_parent_id TEXT
);
CREATE INDEX idx_threads_updated_at ON threads(updated_at DESC, id DESC);
CREATE INDEX idx_threads_archived ON threads(archived);
CREATE INDEX idx_threads_visible_recency_at_ms
    ON threads(archived, recency_at_ms DESC, id DESC) WHERE preview <> '';
CREATE TABLE backfill_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    status TEXT NOT NULL,
    last_watermark TEXT,
    last_success_at INTEGER,
    updated_at INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Layout:
    """Where one session's rollout goes and whether it gets a DB row."""

    spec: SessionSpec
    path: Path
    archived: bool
    orphan: bool


@dataclass(frozen=True, slots=True)
class CorpusSummary:
    """Figures about a generated corpus (no prompt text)."""

    home: Path
    results: list[tuple[Layout, SessionResult]]
    seconds: float

    @property
    def total_bytes(self) -> int:
        """Sum of all rollout sizes."""
        return sum(result.nbytes for _, result in self.results)

    def count(self, *, archived: bool | None = None, orphan: bool | None = None) -> int:
        """How many rollouts match the given flags."""
        return sum(
            1
            for layout, _ in self.results
            if (archived is None or layout.archived == archived)
            and (orphan is None or layout.orphan == orphan)
        )


def day_ms(day: str) -> int:
    """Epoch milliseconds of midnight UTC of an ISO date."""
    return calendar.timegm(time.strptime(day, "%Y-%m-%d")) * 1000


def default_sessions(mb: float) -> int:
    """Default thread count: about one thread per 2 MiB of rollouts, at least 6."""
    return max(6, round(mb / 2))


def pick_turns(rng: random.Random, budget: int) -> int:
    """A handful of user turns; larger rollouts tend to have more."""
    turns = rng.choices((1, 2, 3, 4, 5, 6), weights=(30, 25, 20, 12, 8, 5))[0]
    return min(8, turns + budget // (16 * MIB))


def plan_sessions(
    mb: float, sessions: int, fmt: str, seed: int, max_tool_output: int = MAX_TOOL_OUTPUT
) -> list[SessionSpec]:
    """Decide ids, formats, start times and byte budgets for every thread; each tool output
    is at most `max_tool_output` bytes (before JSON escaping)."""
    rng = random.Random(f"plan:{seed}")
    weights = [rng.lognormvariate(0.0, 1.0) for _ in range(sessions)]
    scale = mb * MIB / sum(weights)
    lo, hi = (day_ms(day) for day in DATE_RANGES[fmt])
    starts = sorted(rng.randrange(lo, hi) for _ in range(sessions))
    since = day_ms(PAGINATED_SINCE)
    specs: list[SessionSpec] = []
    for index, (weight, start) in enumerate(zip(weights, starts, strict=True)):
        paginated = fmt == "paginated" or (fmt == "mixed" and start >= since)
        budget = max(MIN_BUDGET, int(weight * scale))
        source = rng.choices(
            ("vscode", "exec") if paginated else ("cli", "vscode", "exec"),
            weights=(90, 10) if paginated else (70, 22, 8),
        )[0]
        specs.append(
            SessionSpec(
                index=index,
                thread_id=uuid_v7(rng, start) if paginated else uuid_v4(rng),
                paginated=paginated,
                start_ms=start,
                budget=budget,
                user_turns=pick_turns(rng, budget),
                first_prompt=first_prompt(rng),
                source=source,
                originator=("codex-tui" if paginated else "codex_cli_rs")
                if source != "exec"
                else "codex_exec",
                cli_version="0.169.0" if paginated else rng.choice(("0.46.0", "0.58.0", "0.94.0")),
                cwd=rng.choice(PROJECTS),
                model="gpt-5.1-codex" if paginated else "gpt-5-codex",
                max_tool_output=max_tool_output,
            )
        )
    return specs


def lay_out(
    home: Path, specs: Sequence[SessionSpec], seed: int, utc_offset_minutes: int
) -> list[Layout]:
    """Choose archived and orphan threads and the path of every rollout."""
    rng = random.Random(f"layout:{seed}")
    count = len(specs)
    extra = rng.sample(range(count), k=min(count, 2 * max(1, count // 25))) if count >= 3 else []
    archived = set(extra[: len(extra) // 2])
    orphans = set(extra[len(extra) // 2 :])
    layouts: list[Layout] = []
    for spec in specs:
        year, month, day, stamp = local_parts(spec.start_ms, utc_offset_minutes)
        name = f"rollout-{stamp}-{spec.thread_id}.jsonl"
        if spec.index in archived:
            path = home / "archived_sessions" / name
        else:
            path = home / "sessions" / year / month / day / name
        layouts.append(
            Layout(
                spec=spec, path=path, archived=spec.index in archived, orphan=spec.index in orphans
            )
        )
    return layouts


_POOLS: TextPools | None = None


def _init_worker(pools: TextPools) -> None:
    """Keep the shared text pools in this (worker) process."""
    global _POOLS
    _POOLS = pools


def _write_one(layout: Layout) -> SessionResult:
    """Worker entry point: write one rollout and set its mtime to its last line."""
    assert _POOLS is not None
    result = write_rollout(layout.spec, _POOLS, layout.path)
    mtime_ns = result.last_ms * 1_000_000
    os.utime(layout.path, ns=(mtime_ns, mtime_ns))
    return result


def write_rollouts(layouts: Sequence[Layout], seed: int, jobs: int) -> list[SessionResult]:
    """Write every rollout, in parallel when `jobs > 1` (same bytes either way)."""
    pools = build_pools(random.Random(f"pools:{seed}"))
    if jobs <= 1:
        _init_worker(pools)
        return [_write_one(layout) for layout in layouts]
    order = sorted(range(len(layouts)), key=lambda i: -layouts[i].spec.budget)
    with ProcessPoolExecutor(jobs, initializer=_init_worker, initargs=(pools,)) as pool:
        done = dict(zip(order, pool.map(_write_one, [layouts[i] for i in order]), strict=True))
    return [done[i] for i in range(len(layouts))]


def thread_row(layout: Layout, result: SessionResult, rng: random.Random) -> tuple[object, ...]:
    """The `threads` row Codex would hold for a rollout (title = first prompt, no name)."""
    spec = layout.spec
    created_ms = spec.start_ms
    updated_ms = result.last_ms + (rng.randrange(1, 1500) if rng.random() < 0.2 else 0)
    archived_at = updated_ms // 1000 + rng.randrange(3600, 86400) if layout.archived else None
    first = spec.first_prompt
    return (
        spec.thread_id,
        str(layout.path),
        created_ms // 1000,
        updated_ms // 1000,
        spec.source,
        "openai",
        spec.cwd,
        first,
        '{"type":"workspace-write"}',
        "on-request",
        result.tokens,
        int(layout.archived),
        archived_at,
        spec.cli_version,
        first,
        spec.model,
        created_ms,
        updated_ms,
        "user" if spec.paginated else None,
        first,
        updated_ms // 1000,
        updated_ms,
        "paginated" if spec.paginated else "legacy",
        spec.originator,
    )


def write_state_db(home: Path, rows: Sequence[tuple[object, ...]]) -> None:
    """Create `state_5.sqlite` in WAL mode with the given `threads` rows."""
    conn = sqlite3.connect(home / STATE_DB)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(THREADS_DDL)
        conn.executemany(
            "INSERT INTO threads (id, rollout_path, created_at, updated_at, source,"
            " model_provider, cwd, title, sandbox_policy, approval_mode, tokens_used, archived,"
            " archived_at, cli_version, first_user_message, model, created_at_ms, updated_at_ms,"
            " thread_source, preview, recency_at, recency_at_ms, history_mode, originator)"
            " VALUES (" + ",".join("?" * 24) + ")",
            rows,
        )
        conn.execute("INSERT INTO backfill_state VALUES (1, 'complete', NULL, 0, 0)")
        conn.commit()
    finally:
        conn.close()


def write_config(home: Path, history_max_bytes: int) -> None:
    """Write `config.toml`, with `[history] max_bytes` when requested."""
    text = 'model = "gpt-5-codex"\n'
    if history_max_bytes > 0:
        text += f"\n[history]\nmax_bytes = {history_max_bytes}\n"
    (home / "config.toml").write_text(text, encoding="utf-8")


def generate(
    home: Path,
    *,
    mb: float,
    fmt: str = "legacy",
    sessions: int | None = None,
    seed: int = 0,
    history_max_bytes: int = 0,
    jobs: int = 1,
    utc_offset_minutes: int = 120,
    max_tool_output: int = MAX_TOOL_OUTPUT,
) -> CorpusSummary:
    """Generate a whole CODEX_HOME at `home` (which must not exist or be empty); return its
    figures. `max_tool_output` caps one tool output's size in bytes."""
    started = time.perf_counter()
    home.mkdir(parents=True, exist_ok=True)
    specs = plan_sessions(mb, sessions or default_sessions(mb), fmt, seed, max_tool_output)
    layouts = lay_out(home.resolve(), specs, seed, utc_offset_minutes)
    results = write_rollouts(layouts, seed, jobs)
    rng = random.Random(f"rows:{seed}")
    rows = [
        thread_row(layout, result, rng)
        for layout, result in zip(layouts, results, strict=True)
        if not layout.orphan
    ]
    write_state_db(home, rows)
    write_config(home, history_max_bytes)
    pairs = list(zip(layouts, results, strict=True))
    return CorpusSummary(home=home, results=pairs, seconds=time.perf_counter() - started)


def print_summary(summary: CorpusSummary) -> None:
    """Print figures only (counts, sizes, throughput)."""
    results = [result for _, result in summary.results]
    mib = summary.total_bytes / MIB
    print(f"home: {summary.home}")
    print(
        f"rollouts: {len(results)} (paginated {sum(r.spec.paginated for r in results)}, "
        f"archived {summary.count(archived=True)}, orphans {summary.count(orphan=True)})"
    )
    print(
        f"rollout bytes: {summary.total_bytes} ({mib:.1f} MiB), "
        f"lines: {sum(r.lines for r in results)}, "
        f"user turns: {sum(len(r.prompts) for r in results)}"
    )
    print(f"largest rollout: {max(r.nbytes for r in results) / MIB:.1f} MiB")
    print(f"elapsed: {summary.seconds:.2f} s, throughput: {mib / summary.seconds:.0f} MiB/s")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_home", type=Path, help="CODEX_HOME to create")
    parser.add_argument("--mb", type=float, default=500.0, help="total rollout MiB (500)")
    parser.add_argument("--format", choices=tuple(DATE_RANGES), default="legacy")
    parser.add_argument(
        "--sessions",
        type=int,
        default=None,
        help="thread count (default: about one per 2 MiB, at least 6)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--history-max-bytes",
        type=int,
        default=0,
        help="write [history] max_bytes to config.toml (0: leave unset)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="writer processes (output does not depend on it)",
    )
    parser.add_argument(
        "--utc-offset-minutes",
        type=int,
        default=120,
        help="local time zone of the simulated writer, for file names",
    )
    parser.add_argument(
        "--max-tool-output",
        type=int,
        default=MAX_TOOL_OUTPUT,
        help=f"cap on one tool output in bytes ({MAX_TOOL_OUTPUT}; 49152 gives small lines)",
    )
    parser.add_argument("--force", action="store_true", help="replace OUT_HOME if it exists")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: generate the corpus and print its figures."""
    args = parse_args(argv)
    home: Path = args.out_home
    if home.exists() and any(home.iterdir()):
        if not args.force:
            print(f"error: {home} exists and is not empty (use --force)", file=sys.stderr)
            return 2
        shutil.rmtree(home)
    if args.sessions is not None and args.sessions < 1:
        print("error: --sessions must be >= 1", file=sys.stderr)
        return 2
    summary = generate(
        home,
        mb=args.mb,
        fmt=args.format,
        sessions=args.sessions,
        seed=args.seed,
        history_max_bytes=args.history_max_bytes,
        jobs=args.jobs,
        utc_offset_minutes=args.utc_offset_minutes,
        max_tool_output=args.max_tool_output,
    )
    print_summary(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
