"""The bad-input corpus: each case is skipped with a log line naming the file, the rest is
repaired, and the command exits 0 reporting a warning count."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from codex_indexd.cli import main
from tests.support.homes import (
    THREADS_DDL,
    build_home,
    new_thread,
    read_jsonl,
    rollout_name,
    session_meta,
    user_message,
    write_rollout,
)

GOOD = 3


def good_home(tmp_path: Path, *, db: bool = True) -> tuple[Path, list[str]]:
    threads = [new_thread(i, turns=1, paginated=True) for i in range(GOOD)]
    home = build_home(tmp_path / "home", threads, db=db)
    return home, [t.thread_id for t in threads]


def sessions_dir(home: Path) -> Path:
    d = home / "sessions" / "2026" / "11" / "20"
    d.mkdir(parents=True, exist_ok=True)
    return d


def bad_rollout(home: Path, i: int, data: bytes) -> Path:
    thread = new_thread(100 + i, turns=1)
    path = sessions_dir(home) / rollout_name(thread)
    path.write_bytes(data)
    return path


def meta_line(i: int) -> bytes:
    thread = new_thread(100 + i, turns=1)
    return session_meta(thread.thread_id, "2026-11-20T10:00:00.000Z", source="cli").encode()


def user_line(text: str) -> bytes:
    return user_message(text, "2026-11-20T10:00:05.000Z").encode()


CASES = {
    "torn_last_line": lambda i: meta_line(i) + user_line("ok") + user_line("torn")[:-15],
    "invalid_utf8": lambda i: (
        meta_line(i)
        + b'{"timestamp":"x","type":"event_msg","payload":{"type":"user_message","message":"\xff\xfe"}}\n'
    ),
    "non_object_json": lambda i: meta_line(i) + b'["user_message"]\n' + b"null\n",
    "missing_session_meta": lambda i: user_line("no meta here"),
    "empty_file": lambda i: b"",
    # over the longest user turn that is streamed (64 MiB): skipped, with a warning
    "huge_line": lambda i: meta_line(i) + user_line("x" * (65 * 1024 * 1024)),
}


def run(
    home: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, dict[str, Any], str]:
    code = main(["repair", "--codex-home", str(home), "--json", "--include-orphans", *extra])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_rollout_is_skipped_and_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    home, ids = good_home(tmp_path)
    path = bad_rollout(home, 0, CASES[case](0))
    code, report, err = run(home, capsys)
    assert code == 0
    assert report["warnings"], report
    assert any(w["path"] == str(path) for w in report["warnings"])
    assert str(path) in err  # the log line names the file
    index_ids = {e["id"] for e in read_jsonl(home / "session_index.jsonl")}
    assert set(ids) <= index_ids
    assert "x" * 1000 not in err  # no prompt text in logs


def test_same_id_in_two_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home, _ids = good_home(tmp_path)
    thread = new_thread(0, turns=1, paginated=True)
    twin = sessions_dir(home).parent / "21"
    twin.mkdir()
    (twin / rollout_name(thread)).write_bytes(
        (sessions_dir(home) / rollout_name(thread)).read_bytes()[:400]
    )
    code, report, err = run(home, capsys)
    assert code == 0
    assert any(w["event"] == "rollout.duplicate_id" for w in report["warnings"])
    assert "rollout.duplicate_id" in err


def test_symlink_loop_and_unreadable_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home, _ids = good_home(tmp_path)
    d = sessions_dir(home)
    loop_a = d / rollout_name(new_thread(200))
    loop_b = d / rollout_name(new_thread(201))
    os.symlink(loop_b, loop_a)
    os.symlink(loop_a, loop_b)
    os.symlink(home / "sessions", d / "dirloop")  # a directory loop is not followed
    unreadable = write_rollout(home, new_thread(202, turns=1))
    os.chmod(unreadable, 0)
    code, report, _err = run(home, capsys)
    assert code == 0
    warned = {w["path"] for w in report["warnings"]}
    assert str(loop_a) in warned
    if os.geteuid() != 0:  # root reads anything
        assert str(unreadable) in warned


def test_locked_db_falls_back_to_sessions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home, ids = good_home(tmp_path)
    db = home / "state_5.sqlite"
    holder = sqlite3.connect(db, timeout=0)
    holder.execute("PRAGMA journal_mode=DELETE")
    holder.execute("BEGIN EXCLUSIVE")
    # A writer mid-transaction in rollback-journal mode: the journal file exists while it
    # holds the lock (an empty one is not "hot", so this fakes nothing SQLite would act on).
    (home / "state_5.sqlite-journal").touch()
    try:
        code, report, err = run(home, capsys)
    finally:
        holder.rollback()
        holder.close()
    assert code == 0
    assert report["source"] == "sessions"
    assert any(w["event"] == "db.locked" for w in report["warnings"])
    assert "db.locked" in err
    assert {e["id"] for e in read_jsonl(home / "session_index.jsonl")} >= set(ids)


@pytest.mark.parametrize("variant", ["corrupt", "no_table", "old_schema"])
def test_bad_db(tmp_path: Path, capsys: pytest.CaptureFixture[str], variant: str) -> None:
    home, ids = good_home(tmp_path, db=False)
    db = home / "state_5.sqlite"
    if variant == "corrupt":
        db.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    elif variant == "no_table":
        sqlite3.connect(db).execute("CREATE TABLE other (x)").connection.commit()
    else:
        conn = sqlite3.connect(db)
        conn.execute(
            "CREATE TABLE threads (id TEXT PRIMARY KEY, rollout_path TEXT, created_at INTEGER,"
            " updated_at INTEGER, title TEXT, archived INTEGER)"
        )
        conn.execute(
            "INSERT INTO threads VALUES (?, '', 1795000000, 1795000001, 'Old schema title', 0)",
            (ids[0],),
        )
        conn.commit()
        conn.close()
    code, report, err = run(home, capsys)
    assert code == 0
    names = {e["id"]: e["thread_name"] for e in read_jsonl(home / "session_index.jsonl")}
    if variant == "old_schema":
        assert report["source"].endswith("state_5.sqlite")
        assert names[ids[0]] == "Old schema title"
    else:
        assert report["source"] == "sessions"
        assert set(ids) <= set(names)
        assert f"db.{variant}" in err
    assert THREADS_DDL  # the full schema is exercised by the other tests


def test_a_db_row_that_is_not_utf8_is_skipped_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home, ids = good_home(tmp_path)
    conn = sqlite3.connect(home / "state_5.sqlite")
    secret = "a private title"
    title = (secret + "\udcff").encode("utf-8", "surrogateescape")
    conn.execute("UPDATE threads SET title = CAST(? AS TEXT) WHERE id = ?", (title, ids[0]))
    conn.commit()
    conn.close()
    code, report, err = run(home, capsys)
    assert code == 0
    assert report["source"].endswith("state_5.sqlite")  # the other rows are read
    assert "statedb.rows_undecodable" in err and secret not in err
    # the skipped row's thread is read from its rollout alone (an orphan, included here)
    assert {e["id"] for e in read_jsonl(home / "session_index.jsonl")} >= set(ids)
