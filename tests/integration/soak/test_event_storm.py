"""An event storm: 20,000 rollouts created within about a second while the daemon runs are
coalesced into a bounded number of reconciles, and every one of them ends up indexed."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.daemons import Spawn, log_records
from tests.support.homes import (
    BASE_TIME,
    Thread,
    Turn,
    make_uuid,
    rollout_lines,
    rollout_name,
    write_rollout,
)
from tests.support.waiting import wait_for

from .harness import jsonl_objects, read_locked, torn_lines

STORM_FILES = 20_000
DAYS = 4  # date directories the storm spreads over; two exist before, two appear during it
MAX_RECONCILES = 20
INDEX_DEADLINE_S = 60.0


def storm_thread(i: int) -> Thread:
    start = BASE_TIME + timedelta(days=i % DAYS, seconds=i)
    return Thread(
        make_uuid(100_000 + i, v7=i % 2 == 0),
        start,
        [Turn(f"storm prompt {i}")],
        paginated=i % 2 == 0,
        tool_output_bytes=64,
    )


@pytest.mark.slow
def test_twenty_thousand_new_rollouts_are_coalesced_and_all_indexed(
    tmp_path: Path, spawn: Spawn, log_dir: Path
) -> None:
    home = tmp_path / "home"
    # Two date directories exist (with a rollout each) before the daemon starts.
    seeds = [
        Thread(make_uuid(i, v7=False), BASE_TIME + timedelta(days=i), [Turn(f"seed {i}")])
        for i in range(2)
    ]
    for seed in seeds:
        write_rollout(home, seed)
    daemon = spawn(home)
    daemon.wait_ready()
    wait_for(lambda: len(jsonl_objects(read_locked(home)[0])) >= 2, 10, "the seeds indexed")
    repaired_before = len(log_records(log_dir, "index.repaired"))

    threads = [storm_thread(i) for i in range(STORM_FILES)]
    payloads = []
    for thread in threads:
        directory = home / "sessions" / thread.start.strftime("%Y/%m/%d")
        payloads.append(
            (os.fsencode(directory / rollout_name(thread)), "".join(rollout_lines(thread)).encode())
        )
    dirs = sorted({os.path.dirname(path) for path, _ in payloads})
    assert len(dirs) == DAYS

    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    started = time.monotonic()
    for day_dir in dirs:
        os.makedirs(day_dir, exist_ok=True)
    for path, data in payloads:
        fd = os.open(path, flags, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    storm_s = time.monotonic() - started
    print(f"\nstorm: {STORM_FILES} rollouts written in {storm_s:.2f} s")

    wanted = {t.thread_id for t in threads} | {t.thread_id for t in seeds}

    def all_indexed() -> bool:
        daemon.check_alive()
        index, _ = read_locked(home)
        return wanted <= {obj.get("id") for obj in jsonl_objects(index)}

    wait_for(
        all_indexed,
        INDEX_DEADLINE_S,
        f"all {len(wanted)} threads in session_index.jsonl",
        interval=0.5,
    )
    indexed_s = time.monotonic() - started
    # Every user turn reaches history.jsonl too (they come from the same reconciles).
    want_history = {(t.thread_id, t.turns[0].text) for t in threads}

    def all_in_history() -> bool:
        _, history = read_locked(home)
        return want_history <= {
            (o.get("session_id"), o.get("text")) for o in jsonl_objects(history)
        }

    wait_for(all_in_history, 30, "every storm turn in history.jsonl", interval=0.5)
    done_s = time.monotonic() - started
    index, history = read_locked(home)
    assert not torn_lines(index, ("id", "thread_name", "updated_at"))
    assert not torn_lines(history, ("session_id", "ts", "text"))
    ids = [obj["id"] for obj in jsonl_objects(index)]
    assert len(ids) == len(set(ids)) == len(wanted), "one index line per thread, none twice"
    keys = [(o["session_id"], o["text"]) for o in jsonl_objects(history)]
    assert len(keys) == len(set(keys)), "a user turn got two history lines"

    repairs = log_records(log_dir, "index.repaired")[repaired_before:]
    print(
        f"storm: indexed after {indexed_s:.1f} s, history complete after {done_s:.1f} s, "
        f"{len(repairs)} repair batch(es): "
        + ", ".join(
            f"+{r.get('index_lines_added')}/{r.get('history_lines_added')}" for r in repairs
        )
    )
    assert 1 <= len(repairs) <= MAX_RECONCILES, (
        f"{len(repairs)} repairs for one burst: not coalesced"
    )
    daemon.check_alive()
    assert daemon.terminate() == 0
