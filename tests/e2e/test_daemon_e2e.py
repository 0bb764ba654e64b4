"""`codex-indexd run` (the daemon, ``--debounce-ms 100``) next to the real Codex CLI (each
pinned version).

The daemon runs as a subprocess with its state, cache, log and config dirs under
``tmp_path``; every wait polls with a timeout.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.codexkit import (
    AppServer,
    TuiSession,
    codex_archive,
    codex_exec,
    codex_unarchive,
    find_rollout,
    indexd_env,
    latest_index_names,
    read_index_lines,
    read_jsonl_strict,
    rollout_user_texts,
    run_indexd,
)
from tests.support.daemons import DaemonProcess
from tests.support.waiting import wait_for

DEBOUNCE_MS = 100
LATENCY_S = 2.0  # the daemon must catch up this soon after Codex finishes
INDEX_KEYS = ["id", "thread_name", "updated_at"]
HISTORY_KEYS = ["session_id", "ts", "text"]


class IndexDaemon:
    """A `DaemonProcess` on one home, its own dirs under ``base``: its status file, stop and
    kill, the end of its log."""

    def __init__(self, proc: DaemonProcess, base: Path) -> None:
        self.proc = proc
        self.base = base

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 15) -> dict[str, Any]:
        """Wait for `daemon.ready` in the log, then until the status file names this process
        as running (start reconcile done); return that status."""
        self.proc.wait_ready(timeout)

        def probe() -> dict[str, Any] | None:
            if not self.proc.alive():
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log_tail()}")
            status = self.status()
            if status and status.get("pid") == self.pid and status.get("running") is True:
                return status
            return None

        ready: dict[str, Any] = wait_for(probe, timeout=timeout, what="daemon ready")
        return ready

    # -- status -------------------------------------------------------------------------

    def status_path(self) -> Path | None:
        found = sorted((self.base / "state" / "status").glob("*.json"))
        assert len(found) <= 1, found
        return found[0] if found else None

    def status(self) -> dict[str, Any] | None:
        path = self.status_path()
        if path is None:
            return None
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def status_stamp(self) -> tuple[int, int] | None:
        """Identity of the current status file (rewritten by rename on every update)."""
        path = self.status_path()
        try:
            st = path.stat() if path else None
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns) if st else None

    def wait_status_update(
        self, since: tuple[int, int] | None, timeout: float = 5
    ) -> dict[str, Any]:
        """Wait until the status file was rewritten after ``since``; return it."""
        wait_for(lambda: self.status_stamp() not in (None, since), timeout=timeout,
                 what="status file update")  # fmt: skip
        status = self.status()
        assert status is not None
        return status

    # -- lifecycle ------------------------------------------------------------------------

    def alive(self) -> bool:
        return self.proc.alive()

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM; return the exit code (the daemon drains pending work first)."""
        try:
            return self.proc.terminate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(f"daemon ignored SIGTERM:\n{self.log_tail()}") from None

    def kill9(self) -> None:
        self.proc.kill()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.proc.stderr.splitlines()[-lines:])


@pytest.fixture
def indexd(tmp_path: Path) -> Iterator[Callable[..., IndexDaemon]]:
    """Start daemons whose own dirs live under ``tmp_path/indexd``, waiting until each is
    ready unless told not to; kills leftovers."""
    started: list[DaemonProcess] = []
    base = tmp_path / "indexd"

    def make(
        home: Path, extra_env: dict[str, str] | None = None, *, wait_ready: bool = True
    ) -> IndexDaemon:
        base.mkdir(parents=True, exist_ok=True)
        proc = DaemonProcess(
            home,
            debounce_ms=DEBOUNCE_MS,
            base_env=indexd_env(base, extra_env),
            log_dir=base / "log",
            output_dir=base,
        )
        started.append(proc)
        daemon = IndexDaemon(proc, base)
        if wait_ready:
            daemon.wait_ready()
        return daemon

    yield make
    for proc in started:
        proc.close()


# --------------------------------------------------------------------------------------
# Checks shared by the tests
# --------------------------------------------------------------------------------------


def index_ids(home: Path) -> Counter[str]:
    return Counter(line["id"] for line in read_index_lines(home))


def history_pairs(home: Path) -> Counter[tuple[str, str]]:
    return Counter((e["session_id"], e["text"]) for e in read_jsonl_strict(home / "history.jsonl"))


def expected_turns(home: Path, thread_ids: list[str]) -> Counter[tuple[str, str]]:
    return Counter((tid, text) for tid in thread_ids for text in rollout_user_texts(home, tid))


def caught_up(home: Path, thread_ids: list[str]) -> bool:
    """Every thread has an index line and every user turn a history line."""
    try:
        ids = index_ids(home)
        pairs = history_pairs(home)
    except ValueError:  # a line being written right now
        return False
    want = expected_turns(home, thread_ids)
    return all(ids[t] for t in thread_ids) and all(pairs[k] >= n for k, n in want.items())


def wait_caught_up(home: Path, thread_ids: list[str], timeout: float = LATENCY_S) -> float:
    """Wait until the daemon has indexed the threads; return how long it took."""
    start = time.monotonic()
    wait_for(lambda: caught_up(home, thread_ids), timeout=timeout,
             what=f"daemon to index {len(thread_ids)} thread(s)")  # fmt: skip
    return time.monotonic() - start


def no_drift(daemon: IndexDaemon) -> bool:
    """The daemon's last reconcile left nothing to repair."""
    status = daemon.status()
    return status is not None and status.get("drift") == {}


def assert_consistent(home: Path, thread_ids: list[str]) -> None:
    """Files parse with Codex's keys; one index line per thread; each turn exactly once."""
    for line in read_index_lines(home):
        assert list(line) == INDEX_KEYS, line
    for line in read_jsonl_strict(home / "history.jsonl"):
        assert list(line) == HISTORY_KEYS, line
    ids = index_ids(home)
    assert all(ids[t] >= 1 for t in thread_ids), ids
    pairs = history_pairs(home)
    want = expected_turns(home, thread_ids)
    assert {k: pairs[k] for k in want} == dict(want)
    history = home / "history.jsonl"
    assert stat.S_IMODE(history.stat().st_mode) == 0o600


# --------------------------------------------------------------------------------------
# 4. exec threads reach the index and the history within 2 s
# --------------------------------------------------------------------------------------


def test_exec_threads_are_indexed_within_two_seconds(
    codex_home: Path, indexd: Callable[..., IndexDaemon]
) -> None:
    home = codex_home
    daemon = indexd(home)
    latencies: list[float] = []

    first = codex_exec(home, "Daemon: first exec thread")
    latencies.append(wait_caught_up(home, [first]))
    second = codex_exec(home, "Daemon: second exec thread")
    third = codex_exec(home, "Daemon: third exec thread")
    latencies.append(wait_caught_up(home, [first, second, third]))
    assert codex_exec(home, "Daemon: follow-up turn", resume=first) == first
    latencies.append(wait_caught_up(home, [first, second, third]))

    threads = [first, second, third]
    assert daemon.stop() == 0
    assert_consistent(home, threads)
    assert index_ids(home) == Counter(threads), "one index line per thread"
    assert latest_index_names(home) == {
        first: "Daemon: first exec thread",
        second: "Daemon: second exec thread",
        third: "Daemon: third exec thread",
    }
    assert sum(history_pairs(home).values()) == 4
    status = daemon.status()
    assert status is not None and status["running"] is False and not status["errors"]
    print(f"daemon latency after codex exec: {[round(x, 3) for x in latencies]} s")


# --------------------------------------------------------------------------------------
# 5. A Codex rename is reflected and never overridden
# --------------------------------------------------------------------------------------


def test_codex_rename_is_kept_by_the_daemon(
    codex_home: Path, indexd: Callable[..., IndexDaemon]
) -> None:
    home = codex_home
    daemon = indexd(home)
    target = codex_exec(home, "Daemon: thread Codex renames")
    other = codex_exec(home, "Daemon: bystander thread")
    wait_caught_up(home, [target, other])

    with AppServer(home) as server:
        server.thread_name_set(target, "First name")
        stamp = daemon.status_stamp()
        server.thread_name_set(target, "Renamed by Codex")
        wait_for(lambda: latest_index_names(home).get(target) == "Renamed by Codex",
                 timeout=LATENCY_S, what="rename in the index")  # fmt: skip
        # The daemon saw the rename (index and DB events) and reconciled.
        daemon.wait_status_update(stamp)
        # Further activity: resume by the new name, and a new thread.
        assert codex_exec(home, "Daemon: after the rename", resume="Renamed by Codex") == target
        newcomer = codex_exec(home, "Daemon: thread after the rename")
        wait_caught_up(home, [target, other, newcomer])
        listed = {t["id"]: t.get("name") for t in server.thread_list_all(sourceKinds=["exec"])}
    assert daemon.stop() == 0

    lines = read_index_lines(home)
    codex_line = max(i for i, line in enumerate(lines) if line["thread_name"] == "Renamed by Codex")
    later = [line for line in lines[codex_line + 1 :] if line["id"] == target]
    assert later == [], f"the daemon wrote over Codex's rename: {later}"
    assert latest_index_names(home)[target] == "Renamed by Codex"
    assert listed[target] == "Renamed by Codex"
    assert_consistent(home, [target, other, newcomer])


# --------------------------------------------------------------------------------------
# 6. archive / unarchive
# --------------------------------------------------------------------------------------


def test_archive_and_unarchive_keep_the_daemon_and_the_index(
    codex_home: Path, indexd: Callable[..., IndexDaemon]
) -> None:
    home = codex_home
    daemon = indexd(home)
    kept = codex_exec(home, "Daemon: thread to archive")
    other = codex_exec(home, "Daemon: thread that stays")
    with AppServer(home) as server:
        server.thread_name_set(kept, "Archived name")
    wait_caught_up(home, [kept, other])
    wait_for(lambda: no_drift(daemon), timeout=LATENCY_S, what="no drift")
    index_before = (home / "session_index.jsonl").read_bytes()
    history_before = (home / "history.jsonl").read_bytes()
    active = find_rollout(home, kept)
    assert active is not None

    stamp = daemon.status_stamp()
    codex_archive(home, kept)
    archived = home / "archived_sessions" / active.name
    assert archived.is_file() and not active.exists()
    status = daemon.wait_status_update(stamp)
    assert daemon.alive(), daemon.log_tail()
    assert status["pid"] == daemon.pid and status["running"] is True
    # Nothing lost: both files only ever grew from what they were.
    assert (home / "session_index.jsonl").read_bytes().startswith(index_before)
    assert (home / "history.jsonl").read_bytes().startswith(history_before)

    stamp = daemon.status_stamp()
    codex_unarchive(home, kept)
    assert active.is_file() and not archived.exists()
    status = daemon.wait_status_update(stamp)
    assert daemon.alive(), daemon.log_tail()
    wait_for(lambda: no_drift(daemon), timeout=LATENCY_S, what="no drift after unarchive")
    assert latest_index_names(home)[kept] == "Archived name"
    with AppServer(home) as server:
        listed = {t["id"]: t.get("name") for t in server.thread_list_all(sourceKinds=["exec"])}
    assert listed.get(kept) == "Archived name"

    assert daemon.stop() == 0
    final = daemon.status()
    assert final is not None
    assert final["running"] is False and not final["errors"], final
    assert final["observer_restarts"] == 0
    assert (home / "session_index.jsonl").read_bytes().startswith(index_before)
    assert (home / "history.jsonl").read_bytes().startswith(history_before)
    assert_consistent(home, [kept, other])


# --------------------------------------------------------------------------------------
# 7. A TUI history line is never lost or duplicated
# --------------------------------------------------------------------------------------


def test_tui_history_line_is_not_lost_or_duplicated(
    codex_home: Path, indexd: Callable[..., IndexDaemon], tmux_bin: Path
) -> None:
    home = codex_home
    daemon = indexd(home)
    first = codex_exec(home, "Daemon: exec before the TUI")
    wait_caught_up(home, [first])
    history = home / "history.jsonl"
    inode = history.stat().st_ino
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    before = history.read_bytes()

    prompts = ["Daemon: typed in the TUI", "Daemon: second TUI prompt"]
    with TuiSession(home, tmux_bin=tmux_bin) as tui:
        entries = [tui.submit(prompt) for prompt in prompts]
        tui_thread = entries[0]["session_id"]
        wait_caught_up(home, [first, tui_thread])
        tui.quit()
    assert daemon.stop() == 0  # drains whatever is still pending

    texts = Counter(e["text"] for e in read_jsonl_strict(history))
    assert {p: texts[p] for p in prompts} == dict.fromkeys(prompts, 1)
    assert history.read_bytes().startswith(before)
    for entry in entries:  # Codex's own lines are there byte for byte
        raw = json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode()
        assert history.read_bytes().count(raw + b"\n") == 1
    assert history.stat().st_ino == inode
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    assert_consistent(home, [first, tui_thread])


# --------------------------------------------------------------------------------------
# 8. kill -9 mid-work, then a restart
# --------------------------------------------------------------------------------------


def snapshot_lines(home: Path) -> tuple[list[bytes], list[bytes]]:
    index = (home / "session_index.jsonl").read_bytes().splitlines()
    history = (home / "history.jsonl").read_bytes().splitlines()
    return index, history


def test_kill9_while_waiting_for_the_history_lock_then_restart(
    codex_home: Path, indexd: Callable[..., IndexDaemon]
) -> None:
    """SIGKILL after the daemon appended the index but while it waits for ``history.jsonl``
    (a Codex client holds its lock); Codex keeps working while the daemon is down."""
    home = codex_home
    daemon = indexd(home)
    first = codex_exec(home, "Daemon: before the crash")
    wait_caught_up(home, [first])

    history = home / "history.jsonl"
    fd = os.open(history, os.O_RDWR | os.O_APPEND)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as Codex does while appending/trimming
        busy_before = (daemon.status() or {}).get("lock_busy", 0)
        second = codex_exec(home, "Daemon: while history is locked")
        wait_for(lambda: index_ids(home)[second] == 1, timeout=LATENCY_S, what="index append")
        wait_for(lambda: (daemon.status() or {}).get("lock_busy", 0) > busy_before, timeout=5,
                 what="daemon to hit the busy history lock")  # fmt: skip
        assert (second, "Daemon: while history is locked") not in history_pairs(home)
        index_before, history_before = snapshot_lines(home)
        daemon.kill9()
    finally:
        os.close(fd)
    third = codex_exec(home, "Daemon: while the daemon is down")

    restarted = indexd(home)
    threads = [first, second, third]
    wait_caught_up(home, threads, timeout=5)
    assert restarted.stop() == 0
    index_after, history_after = snapshot_lines(home)
    assert index_after[: len(index_before)] == index_before
    assert Counter(history_before) - Counter(history_after) == Counter()
    assert index_ids(home) == Counter(threads)
    assert_consistent(home, threads)


def crash_step_number(home: Path, base: Path, step: str) -> int:
    """The crash-point number of ``step`` in the start reconcile of ``home``, found by
    tracing ``run --once`` on a copy of the home (same inputs, same steps)."""
    probe = base / "probe-home"
    probe.mkdir()
    for name in (
        "config.toml",
        "session_index.jsonl",
        "history.jsonl",
        "sessions",
        "archived_sessions",
        "state_5.sqlite",
        "state_5.sqlite-wal",
        "state_5.sqlite-shm",
    ):
        source = home / name
        if source.is_dir():
            shutil.copytree(source, probe / name)
        elif source.exists():
            shutil.copy2(source, probe / name)
    trace = base / "probe.trace"
    env = indexd_env(base / "probe-indexd", {"CODEX_INDEXD_CRASH_TRACE": str(trace)})
    run_indexd(["run", "--codex-home", str(probe), "--once"], env)
    steps = [line.split(" ", 1) for line in trace.read_text().splitlines()]
    numbers = [int(n) for n, name in steps if name == step]
    assert numbers, f"no {step!r} step in {steps}"
    return numbers[0]


def test_crash_mid_history_rewrite_then_codex_append_then_restart(
    codex_home: Path, indexd: Callable[..., IndexDaemon], tmux_bin: Path, tmp_path: Path
) -> None:
    """The daemon dies (no cleanup, like SIGKILL) right after appending the exec turn to
    ``history.jsonl``, before its journal is resolved; the TUI appends a line; the restarted
    daemon resolves the journal and keeps every line exactly once."""
    home = codex_home
    older = codex_exec(home, "Daemon: exec turn older than the TUI line")
    with TuiSession(home, tmux_bin=tmux_bin) as tui:
        tui_before = tui.submit("Daemon: TUI line written before the crash")
        tui.quit()
    history = home / "history.jsonl"
    before = history.read_bytes()
    inode = history.stat().st_ino
    # The exec turn is older than the TUI line: it is appended all the same.
    step = crash_step_number(home, tmp_path, "history.tail_written")

    crashing = indexd(home, {"CODEX_INDEXD_CRASH_AT": str(step)}, wait_ready=False)
    assert crashing.proc is not None
    assert crashing.proc.wait(timeout=15) == 86, crashing.log_tail()
    assert history.read_bytes().startswith(before), "an append never moves Codex's lines"
    assert len(history.read_bytes()) > len(before), "expected the crash after the append"

    with TuiSession(home, tmux_bin=tmux_bin) as tui:
        tui_after = tui.submit("Daemon: TUI line written after the crash")
        tui.quit()

    daemon = indexd(home)
    threads = [older, tui_before["session_id"], tui_after["session_id"]]
    wait_caught_up(home, threads, timeout=5)
    assert daemon.stop() == 0
    after = history.read_bytes()
    for line in before.splitlines(keepends=True):
        assert after.count(line) == 1, f"lost or duplicated: {line!r}\n{after.decode()}"
    raw_after = json.dumps(tui_after, separators=(",", ":"), ensure_ascii=False).encode()
    assert after.count(raw_after + b"\n") == 1
    assert history.stat().st_ino == inode
    assert_consistent(home, threads)
    assert sum(history_pairs(home).values()) == 3
