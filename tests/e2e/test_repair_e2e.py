"""`codex-indexd repair` against homes written by the real Codex CLI (0.169.0), checked
through the files and through Codex itself.

Each test uses a fresh ``CODEX_HOME`` (conftest) and keeps codex-indexd's own state,
cache, log and config under ``tmp_path``.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest
from codexkit import (
    REPO_ROOT,
    AppServer,
    TuiSession,
    codex_exec,
    find_rollout,
    indexd_env,
    latest_index_names,
    pids_with_open,
    read_index_lines,
    read_jsonl_strict,
    rollout_paths,
    rollout_user_texts,
    run_indexd,
    wait_for,
)

INDEX_KEYS = ["id", "thread_name", "updated_at"]
HISTORY_KEYS = ["session_id", "ts", "text"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Environment for codex-indexd with its own dirs under ``tmp_path/indexd``."""
    return indexd_env(tmp_path / "indexd")


def repair(home: Path, env: dict[str, str], *extra: str) -> dict[str, Any]:
    """Run ``repair --json`` (must exit 0) and return the report."""
    proc = run_indexd(["repair", "--codex-home", str(home), "--json", *extra], env)
    report: dict[str, Any] = json.loads(proc.stdout)
    assert report["status"] == "success", report
    return report


def db_names(home: Path) -> dict[str, str | None]:
    """``threads.id -> name`` read strictly read-only (only while no Codex process runs)."""
    uri = f"file:{home / 'state_5.sqlite'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
        return dict(conn.execute("SELECT id, name FROM threads").fetchall())


def assert_well_formed(home: Path) -> None:
    """Every index and history line parses, with Codex's keys in Codex's order."""
    for line in read_index_lines(home):
        assert list(line) == INDEX_KEYS, line
    for line in read_jsonl_strict(home / "history.jsonl"):
        assert list(line) == HISTORY_KEYS, line


def history_pairs(home: Path) -> Counter[tuple[str, str]]:
    """Multiset of ``(session_id, text)`` in ``history.jsonl``."""
    return Counter((e["session_id"], e["text"]) for e in read_jsonl_strict(home / "history.jsonl"))


def expected_turns(home: Path, thread_ids: list[str]) -> Counter[tuple[str, str]]:
    """Multiset of ``(thread id, text)`` of every user turn in the threads' rollouts."""
    return Counter((tid, text) for tid in thread_ids for text in rollout_user_texts(home, tid))


# --------------------------------------------------------------------------------------
# 1. Full repair, checked through the files and through Codex
# --------------------------------------------------------------------------------------


def test_repair_restores_index_and_history_codex_can_use(
    codex_home: Path, env: dict[str, str], tmux_bin: Path, tmp_path: Path
) -> None:
    home = codex_home
    alpha = codex_exec(home, "Alpha: plan the orchard")
    # The TUI resumes the exec thread: Codex itself writes this turn's history line.
    with TuiSession(home, args=["resume", alpha], tmux_bin=tmux_bin) as tui:
        codex_entry = tui.submit("Alpha: and now the pears")
        tui.quit()
    assert codex_entry["session_id"] == alpha
    codex_line = (home / "history.jsonl").read_bytes()
    assert codex_line.count(b"\n") == 1
    beta = codex_exec(home, "Beta: irrigation schedule")
    gamma = codex_exec(home, "Gamma: soil samples")
    threads = [alpha, beta, gamma]
    with AppServer(home) as server:
        server.thread_name_set(alpha, "Orchard plan")
        server.thread_name_set(beta, "Irrigation")
    names = {alpha: "Orchard plan", beta: "Irrigation", gamma: "Gamma: soil samples"}

    # A first repair completes history.jsonl; then we lose the index and the history's tail.
    repair(home, env, "--max-threads", "0")
    assert history_pairs(home) == expected_turns(home, threads)
    history = home / "history.jsonl"
    inode = history.stat().st_ino
    full = history.read_bytes()
    cut = full.index(codex_line) + len(codex_line)
    assert cut < len(full), "the Codex line should not be the last one after the merge"
    os.truncate(history, cut)
    (home / "session_index.jsonl").unlink()

    report = repair(home, env, "--max-threads", "0")
    assert report["conversations"] == 3
    assert report["index_lines_added"] == 3
    assert report["history_lines_added"] == len(full[cut:].splitlines())

    # Files: one line per thread with the right name; every user turn exactly once.
    assert_well_formed(home)
    index = read_index_lines(home)
    assert Counter(line["id"] for line in index) == Counter(threads)
    assert latest_index_names(home) == names
    assert history_pairs(home) == expected_turns(home, threads)
    assert sum(len(rollout_user_texts(home, t)) for t in threads) == 4
    assert history.read_bytes().count(codex_line) == 1, "the Codex-written line is duplicated"
    assert history.stat().st_ino == inode
    assert stat.S_IMODE(history.stat().st_mode) == 0o600

    # Codex: thread/list shows the names; resume by name continues the same thread.
    with AppServer(home) as server:
        listed = {t["id"]: t.get("name") for t in server.thread_list_all(sourceKinds=["exec"])}
    assert {tid: listed.get(tid) for tid in (alpha, beta)} == {alpha: names[alpha], beta: names[beta]}
    assert gamma in listed
    rollouts_before = rollout_paths(home)
    alpha_rollout = find_rollout(home, alpha)
    assert alpha_rollout is not None
    size_before = alpha_rollout.stat().st_size
    assert codex_exec(home, "Alpha: third question", resume="Orchard plan") == alpha
    assert rollout_paths(home) == rollouts_before, "resume by name created a new rollout"
    assert alpha_rollout.stat().st_size > size_before
    assert rollout_user_texts(home, alpha)[-1] == "Alpha: third question"
    assert codex_exec(home, "Beta: follow-up", resume="Irrigation") == beta


# --------------------------------------------------------------------------------------
# 2. Dry run touches nothing
# --------------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple[int, int, int, int, int]]:
    """``relpath -> (mode, size, mtime_ns, inode, nlink)`` of every entry under ``root``."""
    out: dict[str, tuple[int, int, int, int, int]] = {}
    for directory, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(directory) / name
            st = path.lstat()
            key = str(path.relative_to(root))
            out[key] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino, st.st_nlink)
    st = root.lstat()
    out["."] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino, st.st_nlink)
    return out


def test_dry_run_changes_nothing_in_the_home(codex_home: Path, env: dict[str, str]) -> None:
    home = codex_home
    first = codex_exec(home, "Dry run thread one")
    second = codex_exec(home, "Dry run thread two")
    with AppServer(home) as server:
        server.thread_name_set(first, "Named before the dry run")
    # Drift: a missing index line and history that lacks every turn but one.
    (home / "session_index.jsonl").write_bytes(b"")
    history_line = {"session_id": first, "ts": 1, "text": "an old prompt"}
    (home / "history.jsonl").write_text(json.dumps(history_line, separators=(",", ":")) + "\n")
    (home / "history.jsonl").chmod(0o600)
    assert not (home / "state_5.sqlite-wal").exists()  # Codex checkpointed on exit

    before = snapshot(home)
    report = repair(home, env, "--dry-run", "--max-threads", "0")
    assert report["dry_run"] is True
    assert report["drift"].get("index_missing") == 2
    assert report["drift"].get("history_missing") == 2
    assert set(report["drift_ids"]["index_missing"]) == {first, second}
    assert report["index_lines_added"] == report["history_lines_added"] == 0
    assert snapshot(home) == before

    text = run_indexd(["repair", "--codex-home", str(home), "--dry-run", "--rebuild",
                       "--include-orphans", "--max-threads", "0"], env).stdout
    assert "would update" in text
    after = snapshot(home)
    assert after == before, sorted(set(after.items()) ^ set(before.items()))
    assert not (home / "state_5.sqlite-wal").exists()
    assert not (home / "state_5.sqlite-shm").exists()


# --------------------------------------------------------------------------------------
# 3. A rename Codex makes while repair runs survives
# --------------------------------------------------------------------------------------


@contextmanager
def held_index_lock(home: Path) -> Iterator[int]:
    """Hold ``session_index.jsonl.lock`` the way Codex does (flock LOCK_EX)."""
    fd = os.open(home / "session_index.jsonl.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def test_codex_rename_during_repair_wins(codex_home: Path, env: dict[str, str]) -> None:
    """Repair plans, then waits for the index lock; Codex renames (DB first, then queues for
    the lock); both race for the lock when we let go. Whoever wins, Codex's name must be the
    thread's last index line. Several rounds, so that both orders usually occur."""
    home = codex_home
    target = codex_exec(home, "Thread that Codex renames")
    other = codex_exec(home, "Thread repair restores")
    lock = home / "session_index.jsonl.lock"
    orders: list[str] = []
    with AppServer(home) as server:
        server.thread_name_set(target, "Name 0")
        for round_no in range(1, 5):
            new_name = f"Name {round_no}"
            (home / "session_index.jsonl").unlink()
            errors: list[BaseException] = []

            def rename(name: str = new_name) -> None:
                try:
                    server.request("thread/name/set", {"threadId": target, "name": name}, timeout=30)
                except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                    errors.append(exc)

            renamer = threading.Thread(target=rename)
            with held_index_lock(home):
                proc = subprocess.Popen(
                    [sys.executable, "-m", "codex_indexd", "repair", "--codex-home", str(home),
                     "--json", "--max-threads", "0", "--no-backup"],
                    cwd=str(REPO_ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True,
                )  # fmt: skip
                # Repair has gathered and planned (with the old name) once it opens the lock.
                wait_for(lambda: proc.pid in pids_with_open(lock), timeout=15,
                         what="repair waiting for the index lock")  # fmt: skip
                assert proc.poll() is None
                assert pids_with_open(lock) - {proc.pid, os.getpid()} == set()
                renamer.start()
                wait_for(lambda: pids_with_open(lock) - {proc.pid, os.getpid()}, timeout=15,
                         what="Codex waiting for the index lock")  # fmt: skip
                assert renamer.is_alive(), "thread/name/set returned while the lock was held"
            # Lock released: both writers go.
            out, err = proc.communicate(timeout=30)
            renamer.join(timeout=30)
            assert not renamer.is_alive() and not errors, errors
            assert proc.returncode == 0, err
            lines = [line for line in read_index_lines(home) if line["id"] == target]
            orders.append("repair-first" if len(lines) == 2 else "codex-first")
            assert lines[-1]["thread_name"] == new_name, (round_no, lines, out)
            assert latest_index_names(home) == {target: new_name, other: "Thread repair restores"}
    assert_well_formed(home)
    assert db_names(home)[target] == "Name 4"
    # The end state is consistent: a fresh plan finds nothing to change in the index.
    final = repair(home, env, "--dry-run", "--max-threads", "0")
    assert final["drift"].get("index_missing", 0) == final["drift"].get("index_stale_name", 0) == 0
    print(f"lock race orders: {orders}")
