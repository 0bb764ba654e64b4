"""Heal Codex's own DB through Codex's API, against the real Codex CLI (each pinned version).

* Names renamed with `thread/name/set` are lost when `state_5.sqlite` is rebuilt; the heal
  puts them back through `thread/name/set`, and `thread/list` shows them again.
* A rollout copied in without a DB row gets one from the heal's `thread/list` scan, so the
  DB-only listing shows it.
* Off, no binary, a binary that hangs: detection only, a clear log line, no process left.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from codex_indexd.codex.home import CodexHome
from codex_indexd.engine import HomeFacts, gather
from codex_indexd.heal import NAME_LOST, ROW_MISSING, ROW_STALE, detect, heal_home
from codex_indexd.heal.codex_check import SOURCE_KINDS
from codex_indexd.heal.detect import attempt_key
from tests.e2e.codexkit import AppServer, TuiSession, codex_env, codex_exec, find_rollout
from tests.support.homes import build_home, index_line, new_thread, write_rollout
from tests.support.waiting import wait_for

# names and prompts: never in a log line
PRIVATE_TEXT = ("Apple thread", "Pear thread", "Legacy name", "Archived name", "about apples")


# -- helpers -----------------------------------------------------------------------------


def listed(app: AppServer, *, db_only: bool) -> dict[str, dict[str, Any]]:
    """Every thread `thread/list` returns (all kinds and providers, archived and not)."""
    out: dict[str, dict[str, Any]] = {}
    for archived in (False, True):
        for thread in app.thread_list_all(
            sourceKinds=list(SOURCE_KINDS), archived=archived, useStateDbOnly=db_only
        ):
            out[thread["id"]] = thread
    return out


def db_row(home: Path, thread_id: str) -> dict[str, Any] | None:
    uri = f"file:{home / 'state_5.sqlite'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM threads WHERE id = ?", (thread_id,)).fetchone()
    return dict(row) if row is not None else None


def stored_row(home: Path, thread_id: str) -> dict[str, Any]:
    """The thread's row in the state DB; fails the test when there is none."""
    row = db_row(home, thread_id)
    assert row is not None, f"no row for {thread_id} in the state DB"
    return row


def delete_state_db(home: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{home / 'state_5.sqlite'}{suffix}").unlink(missing_ok=True)


def copy_rollout(src: Path, directory: Path, old_id: str) -> str:
    """Copy a rollout under a fresh thread id into `directory`; return the new id."""
    new_id = str(uuid.uuid4())
    directory.mkdir(parents=True, exist_ok=True)
    text = src.read_text(encoding="utf-8").replace(old_id, new_id)
    (directory / src.name.replace(old_id, new_id)).write_text(text, encoding="utf-8")
    return new_id


def processes_for(home: Path) -> list[int]:
    """Our processes whose environment has CODEX_HOME=home (Linux /proc)."""
    needle = f"CODEX_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state not in ("Z", "X"):
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def facts_of(home: Path) -> HomeFacts:
    return gather(CodexHome.at(home))


@pytest.fixture
def synthetic_home(tmp_path: Path) -> Iterator[Path]:
    """A home (no Codex needed) whose thread lost its name in the DB: detection finds one."""
    home = tmp_path / "synthetic-home"
    thread = new_thread(1, paginated=True)
    build_home(home, [thread])
    (home / "session_index.jsonl").write_text(
        index_line(thread.thread_id, "My apple project", "2026-11-20T11:00:00Z")
    )
    yield home


def fake_codex(directory: Path, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "codex"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return script


# -- real Codex --------------------------------------------------------------------------


def test_names_lost_by_a_db_rebuild_come_back(
    codex_home: Path, codex_bin: Path, codex_version: tuple[int, int, int]
) -> None:
    home = codex_home
    t1 = codex_exec(home, "First prompt about apples", codex_bin=codex_bin)
    t2 = codex_exec(home, "Second prompt about pears", codex_bin=codex_bin)
    t3 = codex_exec(home, "Third prompt, archived later", codex_bin=codex_bin)
    legacy = new_thread(1)  # a hand-written legacy (pre-paginated) rollout, source cli
    write_rollout(home, legacy)
    names = {
        t1: "Apple thread",
        t2: "Pear thread",
        legacy.thread_id: "Legacy name",
        t3: "Archived name",
    }
    with AppServer(home, codex_bin=codex_bin) as app:
        listed(app, db_only=False)  # Codex inserts the legacy thread's row
        for tid, name in names.items():
            app.thread_name_set(tid, name)
        app.request("thread/archive", {"threadId": t3})

    delete_state_db(home)  # like a DB version bump or "Back Up and Rebuild"
    with AppServer(home, codex_bin=codex_bin) as app:
        rebuilt = listed(app, db_only=False)  # Codex backfills the DB from the rollouts
    assert set(names) <= set(rebuilt)
    assert [rebuilt[t]["name"] for t in (t1, t2, t3)] == [None, None, None]
    legacy_row = db_row(home, legacy.thread_id)
    assert legacy_row is not None and legacy_row["title"] == legacy_row["first_user_message"]

    facts = facts_of(home)
    found = detect(facts)
    assert found.names == names and found.archived == {t3}
    attempts: dict[str, int] = {}
    with capture_logs() as logs:
        report = heal_home(facts, binary=str(codex_bin), env=codex_env(home), attempts=attempts)

    assert report.ran and report.error is None, report
    assert report.codex_version == ".".join(map(str, codex_version))
    assert report.detected[NAME_LOST] == 4
    assert report.healed[NAME_LOST] == 3
    assert report.not_healed[NAME_LOST] == 1 and report.not_healed_ids[NAME_LOST] == [t3]
    assert any("archived" in note for note in report.notes)  # Codex 0.169 won't rename those
    assert attempts == {}  # archived threads are not tried: Codex answers "no rollout found"
    with AppServer(home, codex_bin=codex_bin) as app:
        after = listed(app, db_only=True)
    assert {t: after[t]["name"] for t in (t1, t2, legacy.thread_id)} == {
        t1: "Apple thread",
        t2: "Pear thread",
        legacy.thread_id: "Legacy name",
    }
    assert after[t3]["name"] is None
    assert stored_row(home, t1)["name"] == "Apple thread"
    assert stored_row(home, legacy.thread_id)["title"] == "Legacy name"

    summary = [e for e in logs if e["event"] == "heal.done"]
    assert len(summary) == 1 and summary[0]["healed"][NAME_LOST] == 3
    assert not any(name in repr(logs) for name in PRIVATE_TEXT)
    assert processes_for(home) == []


def test_a_rollout_without_a_row_gets_one(codex_home: Path, codex_bin: Path) -> None:
    home = codex_home
    t1 = codex_exec(home, "A prompt about plums", codex_bin=codex_bin)
    src = find_rollout(home, t1)
    assert src is not None
    copied = copy_rollout(src, src.parent, t1)
    archived = copy_rollout(src, home / "archived_sessions", t1)
    with AppServer(home, codex_bin=codex_bin) as app:
        before = listed(app, db_only=True)
    assert copied not in before and archived not in before

    facts = facts_of(home)
    assert detect(facts).missing == {copied, archived}
    with capture_logs() as logs:
        report = heal_home(facts, binary=str(codex_bin), env=codex_env(home), attempts={})
    done = [e for e in logs if e["event"] == "heal.done"]
    # two rows: asked for one by one (thread/metadata/update), no scan needed
    assert (done[0]["inserted"], done[0]["scanned"]) == (2, False)

    assert report.ran and report.error is None, report
    assert report.detected[ROW_MISSING] == 2 and report.healed[ROW_MISSING] == 2
    assert report.total_not_healed == 0
    with AppServer(home, codex_bin=codex_bin) as app:
        active = {
            t["id"]
            for t in app.thread_list_all(sourceKinds=list(SOURCE_KINDS), useStateDbOnly=True)
        }
        in_archive = {
            t["id"]
            for t in app.thread_list_all(
                sourceKinds=list(SOURCE_KINDS), archived=True, useStateDbOnly=True
            )
        }
    assert copied in active and archived in in_archive
    assert stored_row(home, archived)["archived"] == 1
    assert processes_for(home) == []


def test_a_stale_row_is_reported_and_not_retried_forever(codex_home: Path, codex_bin: Path) -> None:
    """Codex 0.169's thread/list scan does not fix a row whose rollout moved: the heal
    reports it, and stops after two tries."""
    home = codex_home
    t1 = codex_exec(home, "A prompt about figs", codex_bin=codex_bin)
    src = find_rollout(home, t1)
    assert src is not None
    moved_dir = home / "sessions" / "2026" / "01" / "02"
    moved_dir.mkdir(parents=True)
    src.rename(moved_dir / src.name)

    facts = facts_of(home)
    assert detect(facts).stale == {t1}
    attempts: dict[str, int] = {}
    for expected in (1, 2):
        report = heal_home(facts, binary=str(codex_bin), env=codex_env(home), attempts=attempts)
        assert report.ran and report.not_healed[ROW_STALE] == 1
        assert attempts == {attempt_key(ROW_STALE, t1): expected}
    assert any("rollout path" in note for note in report.notes)
    assert stored_row(home, t1)["rollout_path"] == str(src)
    third = heal_home(facts, binary=str(codex_bin), env=codex_env(home), attempts=attempts)
    assert not third.ran and third.given_up[ROW_STALE] == 1
    assert processes_for(home) == []


# -- no Codex, or a broken one ------------------------------------------------------------


def test_off_or_no_binary_only_detects(synthetic_home: Path, tmp_path: Path) -> None:
    facts = facts_of(synthetic_home)
    tid = next(iter(facts.rollouts))
    empty_path = {"PATH": str(tmp_path / "no-bin")}
    with capture_logs() as logs:
        off = heal_home(facts, mode="off")
        no_path = heal_home(facts, env=empty_path)
        gone = heal_home(facts, binary=str(tmp_path / "missing" / "codex"))
    for report in (off, no_path, gone):
        assert not report.ran
        assert report.detected[NAME_LOST] == 1 and report.not_healed[NAME_LOST] == 1
        assert report.ids[NAME_LOST] == [tid]
        assert "[codex_api]" in report.how_to_enable
        assert "repair --heal-db" in report.how_to_enable
    assert off.skipped_reason == "codex_api mode is off"
    assert no_path.skipped_reason == "no 'codex' binary on PATH"
    assert "does not exist" in (gone.skipped_reason or "")
    events = [(e["event"], e["reason"]) for e in logs]
    assert events == [
        ("heal.off", off.skipped_reason),
        ("heal.off", no_path.skipped_reason),
        ("heal.off", gone.skipped_reason),
    ]
    assert stored_row(synthetic_home, tid)["name"] is None


def test_a_hanging_codex_ends_cleanly(
    synthetic_home: Path, tmp_path: Path, codex_bin: Path
) -> None:
    pids = tmp_path / "pids"
    script = fake_codex(
        tmp_path / "hang-bin",
        (
            'if [ "$1" = "--version" ]; then echo "codex-cli 0.169.0"; exit 0; fi\n'
            f'if [ "$2" = "generate-json-schema" ]; then exec "{codex_bin}" "$@"; fi\n'
            f'echo $$ >> "{pids}"\n'
            "sleep 600 &\n"
            f'echo $! >> "{pids}"\n'
            "wait\n"
        ),
    )
    facts = facts_of(synthetic_home)
    attempts: dict[str, int] = {}
    started = time.monotonic()
    with capture_logs() as logs:
        report = heal_home(facts, binary=str(script), timeout_s=2.0, attempts=attempts)
    elapsed = time.monotonic() - started
    assert elapsed < 15
    assert not report.ran and report.error is not None
    assert "initialize" in report.error and "no answer" in report.error
    assert report.not_healed[NAME_LOST] == 1 and attempts == {}
    failed = [e for e in logs if e["event"] == "heal.codex_failed"]
    assert len(failed) == 1 and failed[0]["kind"] == "timeout"
    assert [e["event"] for e in logs].count("heal.done") == 1
    started_pids = [int(p) for p in pids.read_text().split()]
    assert len(started_pids) == 2
    wait_for(lambda: not any(alive(p) for p in started_pids), timeout=5, what="children gone")


def test_a_codex_whose_version_hangs_is_not_used(synthetic_home: Path, tmp_path: Path) -> None:
    script = fake_codex(tmp_path / "hang-version-bin", "exec sleep 600\n")
    started = time.monotonic()
    with capture_logs() as logs:
        report = heal_home(facts_of(synthetic_home), binary=str(script), timeout_s=1.0)
    assert time.monotonic() - started < 10
    assert not report.ran and "did not answer" in (report.skipped_reason or "")
    assert [e["event"] for e in logs] == ["heal.off"]
    assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _runs(p, script)]


def _runs(proc_dir: Path, script: Path) -> bool:
    try:
        return str(script).encode() in (proc_dir / "cmdline").read_bytes() and alive(
            int(proc_dir.name)
        )
    except OSError:
        return False


def test_a_codex_without_the_protocol_on_path_is_not_used(
    synthetic_home: Path, tmp_path: Path
) -> None:
    """A `codex` found on PATH is checked like a configured one: by what its schema offers."""
    script = fake_codex(tmp_path / "old-bin", 'echo "codex-cli 0.150.3"\n')
    report = heal_home(facts_of(synthetic_home), env={**os.environ, "PATH": str(script.parent)})
    assert not report.ran
    assert "generate-json-schema' wrote no readable ClientRequest.json" in (
        report.skipped_reason or ""
    )
    assert "the versions tested are 0.169.0, 0.171.0" in report.how_to_enable
    assert shutil.which("codex", path=str(script.parent)) == str(script)


def test_a_newer_codex_heals_and_status_says_it_is_newer(
    codex_home: Path, codex_bin: Path, tmp_path: Path
) -> None:
    """A release we have not tested, with the methods healing needs, still heals."""
    home = codex_home
    t1 = codex_exec(home, "A prompt about quinces", codex_bin=codex_bin)
    with AppServer(home, codex_bin=codex_bin) as app:
        app.request("thread/name/set", {"threadId": t1, "name": "Quince thread"})
    delete_state_db(home)
    with AppServer(home, codex_bin=codex_bin) as app:
        assert t1 in listed(app, db_only=False)  # Codex backfills the DB from the rollouts
    newer = fake_codex(
        tmp_path / "newer-bin",
        f'if [ "$1" = "--version" ]; then echo "codex-cli 0.999.0"; exit 0; fi\n'
        f'exec "{codex_bin}" "$@"\n',
    )
    facts = facts_of(home)
    assert set(detect(facts).names) == {t1}
    report = heal_home(facts, binary=str(newer), env=codex_env(home), attempts={})
    assert report.ran and report.healed[NAME_LOST] == 1 and report.codex_version == "0.999.0"
    assert stored_row(home, t1)["name"] == "Quince thread"
    from codex_indexd.heal.drift import status_info

    info = status_info(facts_of(home), "auto", str(newer))
    assert "Codex 0.999.0 is newer than the versions tested: 0.169.0, 0.171.0" in info


def test_the_tui_automatic_names_come_back_after_a_db_rebuild(
    codex_home: Path,
    codex_bin: Path,
    codex_version: tuple[int, int, int],
    tmux_bin: Path,
    tmp_path: Path,
) -> None:
    """Codex 0.171's TUI names every new thread (the prompt cut to one short line); after a
    DB rebuild healing puts that name back. Codex 0.169's TUI names nothing: nothing to heal."""
    home = codex_home
    workdir = tmp_path / "work"
    workdir.mkdir()
    prompt = "Tell me about cherries and plums and every other stone fruit\nwith a second line"
    with TuiSession(home, cwd=workdir, codex_bin=codex_bin, tmux_bin=tmux_bin) as tui:
        entry = tui.submit(prompt)
        tui.quit()
    tid = entry["session_id"]
    names_itself = codex_version >= (0, 171, 0)
    if names_itself:
        wait_for(lambda: (db_row(home, tid) or {}).get("name"), timeout=20, what="TUI name")
    tui_name = (db_row(home, tid) or {}).get("name")
    assert bool(tui_name) == names_itself
    if names_itself:
        assert isinstance(tui_name, str)
        assert tui_name != prompt and "\n" not in tui_name and len(tui_name) < len(prompt)

    delete_state_db(home)
    with AppServer(home, codex_bin=codex_bin) as app:
        assert tid in listed(app, db_only=False)  # Codex backfills the DB from the rollouts
    assert (db_row(home, tid) or {}).get("name") is None

    facts = facts_of(home)
    assert detect(facts).names == ({tid: tui_name} if names_itself else {})
    report = heal_home(facts, binary=str(codex_bin), env=codex_env(home), attempts={})
    assert report.error is None, report
    assert report.healed[NAME_LOST] == (1 if names_itself else 0)
    assert (db_row(home, tid) or {}).get("name") == tui_name
    assert processes_for(home) == []
