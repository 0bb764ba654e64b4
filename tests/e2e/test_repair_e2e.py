"""`codex-indexd repair` against homes written by the real Codex CLI (each pinned version), checked
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

from tests.e2e.codexkit import (
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
)
from tests.support.waiting import wait_for

INDEX_KEYS = ["id", "thread_name", "updated_at"]
HISTORY_KEYS = ["session_id", "ts", "text"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Environment for codex-indexd with its own dirs under ``tmp_path/indexd``."""
    environment: dict[str, str] = indexd_env(tmp_path / "indexd")
    return environment


def repair(home: Path, env: dict[str, str], *extra: str) -> dict[str, Any]:
    """Run ``repair --json`` (must exit 0) and return the report."""
    proc = run_indexd(["repair", "--codex-home", str(home), "--json", *extra], env)
    report: dict[str, Any] = json.loads(proc.stdout)
    assert report["status"] == "success", report
    return report


def db_names(home: Path) -> dict[str, str | None]:
    """``threads.id -> name``, read through a read-only connection."""
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
    codex_home: Path, env: dict[str, str], tmux_bin: Path
) -> None:
    """Three exec threads (two named through app-server, one resumed in the TUI, so Codex
    wrote one history line). After losing the index and the history's tail, one repair
    restores both without duplicating Codex's line, and Codex resumes threads by name."""
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

    check_through_codex(home, names, alpha, beta, gamma)


def check_through_codex(
    home: Path, names: dict[str, str], alpha: str, beta: str, gamma: str
) -> None:
    """thread/list shows the names; ``exec resume <name>`` continues the same thread."""
    with AppServer(home) as server:
        listed = {t["id"]: t.get("name") for t in server.thread_list_all(sourceKinds=["exec"])}
    assert listed.get(alpha) == names[alpha]
    assert listed.get(beta) == names[beta]
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


def wait_db_released(home: Path) -> None:
    """Wait until no process (a finishing Codex) holds ``state_5.sqlite*`` open."""
    files = [home / f"state_5.sqlite{suffix}" for suffix in ("", "-wal", "-shm")]
    wait_for(lambda: not set().union(*(pids_with_open(f) for f in files)), timeout=15,
             what="Codex to close the state DB")  # fmt: skip


def leave_wal_behind(db: Path) -> None:
    """Commit a change in a child that exits without closing, so `-wal`/`-shm` stay."""
    code = (
        "import os, sqlite3, sys\n"
        "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "conn.execute('PRAGMA wal_autocheckpoint=0')\n"
        'conn.execute("UPDATE threads SET updated_at_ms = updated_at_ms + 1")\n'
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(db)], check=True, timeout=30)


@pytest.mark.parametrize("db_state", ["checkpointed", "wal-left-by-codex", "wal-without-shm"])
def test_dry_run_changes_nothing_in_the_home(
    codex_home: Path, env: dict[str, str], db_state: str
) -> None:
    """``--dry-run`` leaves every entry of the home as it was (mode, size, mtime, inode),
    including the state DB's ``-wal``/``-shm`` side files, whether ``codex exec`` left the DB
    checkpointed or ``codex app-server`` left a ``-wal`` behind."""
    home = codex_home
    first = codex_exec(home, "Dry run thread one")
    second = codex_exec(home, "Dry run thread two")
    if db_state == "wal-left-by-codex":
        with AppServer(home) as server:
            server.thread_name_set(first, "Named before the dry run")
    wait_db_released(home)
    if db_state == "checkpointed":
        # What a clean Codex shutdown leaves: the last connection checkpoints and removes
        # -wal/-shm. Then repair reads the file as immutable and creates nothing.
        with closing(sqlite3.connect(home / "state_5.sqlite")) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if db_state != "checkpointed" and not (home / "state_5.sqlite-wal").exists():
        # Codex checkpointed on exit this time: leave a -wal the way a killed writer does
        # (a child commits a change, then exits without closing its connection).
        leave_wal_behind(home / "state_5.sqlite")
    if db_state == "wal-without-shm":
        (home / "state_5.sqlite-shm").unlink(missing_ok=True)
    side_files = {p.name for p in home.glob("state_5.sqlite-*")}
    if db_state == "checkpointed":
        assert side_files == set()
    else:
        assert "state_5.sqlite-wal" in side_files
    # Drift: an empty index, and a history that lacks every turn.
    (home / "session_index.jsonl").write_bytes(b"")
    history_line = {"session_id": first, "ts": 1, "text": "an old prompt"}
    (home / "history.jsonl").write_text(json.dumps(history_line, separators=(",", ":")) + "\n")
    (home / "history.jsonl").chmod(0o600)

    before = snapshot(home)
    report = repair(home, env, "--dry-run", "--max-threads", "0")
    assert report["dry_run"] is True
    assert report["drift"].get("index_missing") == 2
    assert report["drift"].get("history_missing") == 2
    assert set(report["drift_ids"]["index_missing"]) == {first, second}
    assert report["index_lines_added"] == report["history_lines_added"] == 0
    after = snapshot(home)
    assert after == before, changed_entries(before, after)

    text = run_indexd(["repair", "--codex-home", str(home), "--dry-run", "--rebuild",
                       "--include-orphans", "--max-threads", "0"], env).stdout  # fmt: skip
    assert "would update" in text
    after = snapshot(home)
    assert after == before, changed_entries(before, after)
    assert {p.name for p in home.glob("state_5.sqlite-*")} == side_files


Snapshot = dict[str, tuple[int, int, int, int, int]]


def changed_entries(before: Snapshot, after: Snapshot) -> dict[str, tuple[object, object]]:
    """``relpath -> (before, after)`` for every entry that differs."""
    keys = sorted(set(before) | set(after))
    return {k: (before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)}


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


def rename_while_repair_waits(
    home: Path, env: dict[str, str], server: AppServer, thread_id: str, new_name: str
) -> str:
    """One round: repair plans and queues for the index lock we hold; Codex renames (DB
    first) and queues too; we let go. Return which writer appended first."""
    lock = home / "session_index.jsonl.lock"
    errors: list[BaseException] = []

    def rename() -> None:
        try:
            server.request("thread/name/set", {"threadId": thread_id, "name": new_name}, timeout=30)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    renamer = threading.Thread(target=rename)
    with held_index_lock(home):
        proc = subprocess.Popen(
            [sys.executable, "-m", "codex_indexd", "repair", "--codex-home", str(home),
             "--json", "--max-threads", "0", "--no-backup"],
            cwd=str(REPO_ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip

        def others() -> set[int]:
            return pids_with_open(lock) - {proc.pid, os.getpid()}

        # Repair has gathered and planned (with the old name) once it opens the lock file.
        wait_for(lambda: proc.pid in pids_with_open(lock), timeout=15,
                 what="repair waiting for the index lock")  # fmt: skip
        assert proc.poll() is None
        assert others() == set()
        renamer.start()
        wait_for(others, timeout=15, what="Codex waiting for the index lock")
        assert renamer.is_alive(), "thread/name/set returned while the lock was held"
        assert db_names(home)[thread_id] == new_name  # Codex updates the DB before the lock
    # Lock released: both writers go.
    out, err = proc.communicate(timeout=30)
    renamer.join(timeout=30)
    assert not renamer.is_alive() and not errors, errors
    assert proc.returncode == 0, err
    lines = [line for line in read_index_lines(home) if line["id"] == thread_id]
    assert lines[-1]["thread_name"] == new_name, (lines, out)
    return "repair-first" if len(lines) == 2 else "codex-first"


def test_codex_rename_during_repair_wins(codex_home: Path, env: dict[str, str]) -> None:
    """Whoever wins the lock race, Codex's new name is the thread's last index line. Four
    rounds, so that both orders usually occur (each is checked when it does)."""
    home = codex_home
    target = codex_exec(home, "Thread that Codex renames")
    other = codex_exec(home, "Thread repair restores")
    orders: list[str] = []
    with AppServer(home) as server:
        server.thread_name_set(target, "Name 0")
        for round_no in range(1, 5):
            (home / "session_index.jsonl").unlink()
            orders.append(rename_while_repair_waits(home, env, server, target, f"Name {round_no}"))
            assert latest_index_names(home) == {
                target: f"Name {round_no}",
                other: "Thread repair restores",
            }
    assert_well_formed(home)
    assert db_names(home)[target] == "Name 4"
    # The end state is consistent: a fresh plan finds nothing to change in the index.
    final = repair(home, env, "--dry-run", "--max-threads", "0")
    assert final["drift"].get("index_missing", 0) == final["drift"].get("index_stale_name", 0) == 0
    print(f"lock race orders: {orders}")


# --------------------------------------------------------------------------------------
# A rename that reached Codex's DB but not the index is healed
# --------------------------------------------------------------------------------------


def test_rename_missing_from_index_is_restored_from_the_db(
    codex_home: Path, env: dict[str, str]
) -> None:
    """Codex 0.169.0 updates the DB first and may never append the index line (it gives up
    on a lock held for ~30 s). Simulated by dropping Codex's second rename line: the
    DB (what thread/list shows) says "Second name", the index's last line "First name"."""
    home = codex_home
    thread = codex_exec(home, "Thread renamed twice")
    with AppServer(home) as server:
        server.thread_name_set(thread, "First name")
        server.thread_name_set(thread, "Second name")
    index = home / "session_index.jsonl"
    lines = index.read_bytes().splitlines(keepends=True)
    assert [json.loads(line)["thread_name"] for line in lines] == ["First name", "Second name"]
    index.write_bytes(lines[0])  # the append Codex never made
    assert db_names(home)[thread] == "Second name"

    report = repair(home, env, "--max-threads", "0")
    assert report["drift"].get("index_stale_name") == 1, report["drift"]
    assert latest_index_names(home) == {thread: "Second name"}
    assert index.read_bytes().startswith(lines[0])
