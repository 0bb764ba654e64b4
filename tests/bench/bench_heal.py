#!/usr/bin/env python3
"""Benchmark the two ways to give rollouts without a DB row their row, on real Codex.

    python tests/bench/bench_heal.py [--codex PATH ...] [--base 300] [--missing 1 200] [--reps 3]

For each Codex (default: every version tests/e2e/package.json pins) it builds a home with
`--base` threads that have rows (copies of one `codex exec` rollout, inserted by one scan),
then for each count in `--missing` copies that many more rollouts (no rows), copies the home
once per method and run, and times, with a fresh app-server each time (start included):

* `scan`: heal's full `thread/list` scan (every source kind, provider, archived and not);
* `update`: one `thread/metadata/update` per missing thread (the rollout's own git commit).

Prints the median wall time and the rows healed (missing ids that have a row afterwards,
read read-only) per version, count and method. Prints figures only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: Python puts only tests/bench on the path
    sys.path.insert(0, str(ROOT))

from codex_indexd.codex.home import CodexHome  # noqa: E402
from codex_indexd.engine import gather  # noqa: E402
from codex_indexd.heal.appserver import AppServer  # noqa: E402
from codex_indexd.heal.capability import probe  # noqa: E402
from codex_indexd.heal.requests import insert_rows, scan_threads  # noqa: E402
from tests.e2e.codexkit import (  # noqa: E402
    PINNED_CODEX,
    MockResponsesServer,
    codex_env,
    codex_exec,
    find_rollout,
    make_codex_home,
    stop_managed_daemon,
)

_STAMP = re.compile(r"rollout-(\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d)-")
_COUNTER = itertools.count(1)


def copies(src: Path, old_id: str, count: int) -> list[str]:
    """Write `count` copies of a rollout under fresh ids next to it; return the ids.

    Each copy starts one second after the previous one (file name and `session_meta`), as
    real threads do: Codex's `thread/list` pages skip threads that share a start second.
    """
    text = src.read_text(encoding="utf-8")
    match = _STAMP.search(src.name)
    assert match is not None
    start = datetime.strptime(match.group(1), "%Y-%m-%dT%H-%M-%S").replace(tzinfo=UTC)
    meta = json.loads(text.split("\n", 1)[0])
    ids = []
    for _ in range(count):
        new_id = str(uuid.uuid4())
        when = start - timedelta(seconds=next(_COUNTER))
        meta["payload"]["id"] = new_id
        meta["payload"]["timestamp"] = when.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        meta["timestamp"] = meta["payload"]["timestamp"]
        body = json.dumps(meta) + "\n" + text.split("\n", 1)[1].replace(old_id, new_id)
        name = f"rollout-{when.strftime('%Y-%m-%dT%H-%M-%S')}-{new_id}.jsonl"
        (src.parent / name).write_text(body, encoding="utf-8")
        ids.append(new_id)
    return ids


def row_ids(home: Path) -> set[str]:
    uri = f"file:{home / 'state_5.sqlite'}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=5)
    try:
        return {r[0] for r in conn.execute("SELECT id FROM threads")}
    finally:
        conn.close()


def run_once(
    codex: Path, template: Path, work: Path, method: str, missing: list[str]
) -> tuple[float, int]:
    home = work / f"home-{method}-{uuid.uuid4().hex[:6]}"
    shutil.copytree(template, home, symlinks=True)
    (home / "state_5.sqlite").unlink()  # the copy's rows point into the template: rebuild
    for suffix in ("-wal", "-shm"):
        (home / f"state_5.sqlite{suffix}").unlink(missing_ok=True)
    env = codex_env(home)
    with AppServer(str(codex), home, env=env) as server:  # the rebuild, not timed
        scan_threads(server, 60.0, probe(str(codex)).source_kinds)
    # the rollouts without rows arrive only now
    for tid in missing:
        src = next((template / "pending").glob(f"*{tid}.jsonl"))
        dest = next((home / "sessions").rglob("rollout-*.jsonl")).parent / src.name
        shutil.copy2(src, dest)
    facts = gather(CodexHome.at(home))
    kinds = probe(str(codex)).source_kinds
    started = time.perf_counter()
    with AppServer(str(codex), home, env=env) as server:
        if method == "scan":
            scan_threads(server, 120.0, kinds)
        else:
            insert_rows(server, facts, set(missing), 30.0)
    elapsed = time.perf_counter() - started
    healed = len(set(missing) & row_ids(home))
    stop_managed_daemon(home, codex_bin=codex)
    shutil.rmtree(home, ignore_errors=True)
    return elapsed, healed


def bench_version(codex: Path, base: int, counts: list[int], reps: int) -> None:
    version = probe_version(codex)
    with MockResponsesServer() as server, tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        template = make_codex_home(work / "template", server)
        tid = codex_exec(template, "A prompt about plums", codex_bin=codex)
        src = find_rollout(template, tid)
        assert src is not None
        copies(src, tid, base - 1)
        stop_managed_daemon(template, codex_bin=codex)
        for count in counts:
            pending = template / "pending"
            shutil.rmtree(pending, ignore_errors=True)
            pending.mkdir()
            staged = pending / src.name
            shutil.copy2(src, staged)
            missing = copies(staged, tid, count)
            staged.unlink()
            for method in ("scan", "update"):
                times, healed = [], []
                for _ in range(reps):
                    elapsed, got = run_once(codex, template, work, method, missing)
                    times.append(elapsed)
                    healed.append(got)
                print(
                    f"codex {version}  threads {base + count:4d}  missing {count:4d}  "
                    f"{method:6s}  median {statistics.median(times):6.3f} s  "
                    f"(min {min(times):.3f}, max {max(times):.3f})  "
                    f"rows healed {min(healed)}/{count}",
                    flush=True,
                )


def probe_version(codex: Path) -> str:
    from codex_indexd.heal.child import run_version

    version = run_version(str(codex))
    return ".".join(map(str, version)) if version else "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--codex", type=Path, action="append", default=None)
    parser.add_argument("--base", type=int, default=300)
    parser.add_argument("--missing", type=int, nargs="+", default=[1, 200])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    binaries = [p.resolve() for p in args.codex or [] if p.exists()]
    binaries = binaries or [b for b in PINNED_CODEX.values() if b.exists()]
    if not binaries:
        sys.exit("no Codex: npm install --prefix tests/e2e, or pass --codex PATH")
    for codex in binaries:
        bench_version(codex, args.base, args.missing, args.reps)


if __name__ == "__main__":
    main()
