"""`codex-indexd explain` against threads made by the real Codex CLI (0.169.0).

Every test asks explain (``--json``) why a thread is or is not listed, then asks Codex the
same question through ``codex app-server`` ``thread/list``:

* ``visible`` must equal "the default ``thread/list`` returns it" (what ``codex resume``'s
  picker uses: it scans ``sessions/`` and inserts missing DB rows);
* ``visible_db_only`` must equal "``thread/list`` with ``useStateDbOnly: true`` returns it".

DB-only listings are always taken first, because the default listing repairs the DB.
Tests may write Codex's state DB with sqlite3 to break things; the product never does.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from codexkit import (
    AppServer,
    AppServerError,
    CodexError,
    MockResponsesServer,
    codex_archive,
    codex_exec,
    codex_unarchive,
    find_rollout,
    indexd_env,
    read_index_lines,
    run_codex,
    run_indexd,
)

Report = dict[str, Any]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Environment for codex-indexd with its own dirs under ``tmp_path/indexd``."""
    environment: dict[str, str] = indexd_env(tmp_path / "indexd")
    return environment


# -- codex-indexd explain ------------------------------------------------------------------


def explain_all(home: Path, env: dict[str, str], query: str) -> tuple[int, dict[str, Report]]:
    """Run ``explain --json QUERY``; return the exit status and the reports by thread id."""
    proc = run_indexd(["explain", "--codex-home", str(home), "--json", query], env, check=False)
    assert proc.returncode in (0, 1, 2), proc.stderr
    reports: dict[str, Report] = json.loads(proc.stdout)
    if reports:
        assert proc.returncode == (0 if all(r["visible"] for r in reports.values()) else 1)
    return proc.returncode, reports


def explain(home: Path, env: dict[str, str], query: str, thread_id: str | None = None) -> Report:
    """The one report ``explain --json QUERY`` gives (for ``thread_id`` when given)."""
    _, reports = explain_all(home, env, query)
    assert list(reports) == [thread_id or query], reports
    return next(iter(reports.values()))


def codes(report: Report) -> list[str]:
    return [f["code"] for f in report["findings"]]


def finding(report: Report, code: str) -> dict[str, Any]:
    found = [f for f in report["findings"] if f["code"] == code]
    assert len(found) == 1, (code, codes(report))
    return found[0]


def hiding(report: Report) -> tuple[set[str], set[str]]:
    """Codes that hide the thread from the default list, and from DB-only lists."""
    return (
        {f["code"] for f in report["findings"] if f["hides"]},
        {f["code"] for f in report["findings"] if f["hides_db_only"]},
    )


# -- Codex ---------------------------------------------------------------------------------


def start_thread(app: AppServer, prompt: str) -> str:
    """An interactive thread (source ``vscode``, as the TUI makes) with one finished turn."""
    thread_id: str = app.request("thread/start", {})["thread"]["id"]
    app.request("turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": prompt}]})
    app.wait_for_notification(
        "turn/completed", lambda p: p.get("threadId") == thread_id, timeout=20
    )
    return thread_id


def listed(app: AppServer, **params: Any) -> dict[str, dict[str, Any]]:
    """Every thread of every page of ``thread/list PARAMS``, by id."""
    out: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    for _ in range(100):
        page = app.thread_list(**params, **({"cursor": cursor} if cursor else {}))
        out.update((t["id"], t) for t in page.get("data") or [])
        cursor = page.get("nextCursor")
        if not cursor:
            return out
    raise AssertionError("thread/list kept paging")


def codex_lists(app: AppServer, **params: Any) -> tuple[set[str], set[str]]:
    """Ids in the DB-only listing (taken first) and in the default listing."""
    db_only = set(listed(app, useStateDbOnly=True, **params))
    default = set(listed(app, **params))
    return default, db_only


def assert_codex_agrees(report: Report, thread_id: str, default: set[str], db_only: set[str]) -> None:
    assert report["visible"] == (thread_id in default), (report, default)
    assert report["visible_db_only"] == (thread_id in db_only), (report, db_only)


def db_write(home: Path, sql: str, *args: object) -> int:
    """Change Codex's state DB (tests only, with no Codex running); return rows changed."""
    with closing(sqlite3.connect(home / "state_5.sqlite", timeout=5)) as conn, conn:
        return conn.execute(sql, args).rowcount


def db_row(home: Path, thread_id: str) -> dict[str, Any] | None:
    uri = f"file:{home / 'state_5.sqlite'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM threads WHERE id = ?", (thread_id,)).fetchone()
    return dict(row) if row is not None else None


def rollout_of(home: Path, thread_id: str) -> Path:
    path = find_rollout(home, thread_id)
    assert path is not None, thread_id
    return path


def rewrite_lines(path: Path, keep: Any) -> None:
    """Rewrite a rollout keeping the lines (with their newline) ``keep(lines)`` returns."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(keep(lines)), encoding="utf-8")


def is_session_meta(line: str) -> bool:
    return json.loads(line).get("type") == "session_meta"


def is_user_turn(line: str) -> bool:
    record = json.loads(line)
    payload = record.get("payload") or {}
    item = payload.get("item") or {}
    return payload.get("type") in ("user_message",) or item.get("type") == "UserMessage" or (
        record.get("type") == "response_item" and payload.get("role") == "user"
    )


# --------------------------------------------------------------------------------------
# Source: exec threads are not in the default list; an interactive one is
# --------------------------------------------------------------------------------------


def test_exec_thread_is_hidden_from_the_default_list(codex_home: Path, env: dict[str, str]) -> None:
    home = codex_home
    exec_thread = codex_exec(home, "An exec thread about plums")
    with AppServer(home) as app:
        interactive = start_thread(app, "An interactive thread about figs")

    report = explain(home, env, exec_thread)
    assert report["visible"] is False and report["visible_db_only"] is False
    assert hiding(report) == ({"non_interactive_source"}, {"non_interactive_source"})
    assert "'exec'" in finding(report, "non_interactive_source")["message"]
    assert "'codex exec' never writes one" in finding(report, "not_in_index")["message"]
    assert not finding(report, "not_in_index")["hides"]

    control = explain(home, env, interactive)
    assert control["visible"] is True and control["visible_db_only"] is True
    assert hiding(control) == (set(), set())
    assert "non_interactive_source" not in codes(control)

    with AppServer(home) as app:
        default, db_only = codex_lists(app)
        with_exec, with_exec_db = codex_lists(app, sourceKinds=["exec"])
    assert_codex_agrees(report, exec_thread, default, db_only)
    assert_codex_agrees(control, interactive, default, db_only)
    assert exec_thread in with_exec and exec_thread in with_exec_db  # what the message says

    text = run_indexd(["explain", "--codex-home", str(home), exec_thread], env, check=False)
    assert text.returncode == 1
    assert "HIDDEN" in text.stdout and "✗ [non_interactive_source]" in text.stdout


# --------------------------------------------------------------------------------------
# Archive, and back
# --------------------------------------------------------------------------------------


def test_archived_thread_is_hidden_until_unarchived(codex_home: Path, env: dict[str, str]) -> None:
    home = codex_home
    with AppServer(home) as app:
        thread = start_thread(app, "A thread to archive")
    codex_archive(home, thread)
    assert "archived_sessions" in str(rollout_of(home, thread))

    report = explain(home, env, thread)
    assert hiding(report) == ({"archived"}, {"archived"})
    with AppServer(home) as app:
        default, db_only = codex_lists(app)
        in_archive, in_archive_db = codex_lists(app, archived=True)
    assert_codex_agrees(report, thread, default, db_only)
    assert thread in in_archive and thread in in_archive_db

    codex_unarchive(home, thread)
    report = explain(home, env, thread)
    assert "archived" not in codes(report)
    assert report["visible"] is True and report["visible_db_only"] is True
    with AppServer(home) as app:
        default, db_only = codex_lists(app)
    assert_codex_agrees(report, thread, default, db_only)


# --------------------------------------------------------------------------------------
# Names: found by name, the index is not needed, a name only in the index is lost
# --------------------------------------------------------------------------------------


def test_renamed_thread_is_found_by_its_db_name(codex_home: Path, env: dict[str, str]) -> None:
    home = codex_home
    with AppServer(home) as app:
        thread = start_thread(app, "A thread about the orchard")
        other = start_thread(app, "Another thread")
        app.thread_name_set(thread, "Orchard plan")
    assert db_row(home, thread)["name"] == "Orchard plan"  # type: ignore[index]

    report = explain(home, env, "Orchard plan", thread)
    assert report["visible"] is True and report["visible_db_only"] is True
    assert finding(report, "name")["message"] == (
        "Name: 'Orchard plan', from state DB threads.name."
    )
    assert not {"not_in_index", "index_name_stale", "name_lost_in_db"} & set(codes(report))
    assert explain_all(home, env, "  Orchard plan ")[1].keys() == {thread}

    with AppServer(home) as app:
        threads = listed(app)
        assert {t for t, v in threads.items() if v["name"] == "Orchard plan"} == {thread}
        assert threads[other]["name"] is None


def test_thread_without_index_line_is_still_named_by_codex(
    codex_home: Path, env: dict[str, str]
) -> None:
    """Codex 0.169 keeps names in the DB: without its index line the thread is still listed
    under its name and ``codex exec resume <name>`` continues it."""
    home = codex_home
    with AppServer(home) as app:
        thread = start_thread(app, "A thread about pears")
        kept = start_thread(app, "A thread that keeps its line")
        app.thread_name_set(thread, "Pear notes")
        app.thread_name_set(kept, "Kept notes")
    index = home / "session_index.jsonl"
    lines = index.read_bytes().splitlines(keepends=True)
    index.write_bytes(b"".join(line for line in lines if thread.encode() not in line))
    assert [line["id"] for line in read_index_lines(home)] == [kept]

    report = explain(home, env, "Pear notes", thread)
    not_in_index = finding(report, "not_in_index")
    assert not not_in_index["hides"] and not not_in_index["hides_db_only"]
    assert report["visible"] is True and report["visible_db_only"] is True
    assert "not_in_index" not in codes(explain(home, env, kept))

    with AppServer(home) as app:
        default, db_only = codex_lists(app)
        assert listed(app)[thread]["name"] == "Pear notes"
    assert_codex_agrees(report, thread, default, db_only)
    rollout = rollout_of(home, thread)
    size = rollout.stat().st_size
    assert codex_exec(home, "Pears: one more question", resume="Pear notes") == thread
    assert rollout.stat().st_size > size


def test_name_only_in_the_index_is_lost_but_the_thread_stays_listed(
    codex_home: Path, env: dict[str, str]
) -> None:
    home = codex_home
    with AppServer(home) as app:
        thread = start_thread(app, "A thread about apples")
        app.thread_name_set(thread, "Apple thread")
    assert db_write(home, "UPDATE threads SET name = NULL WHERE id = ?", thread) == 1

    report = explain(home, env, "Apple thread", thread)  # found through the index
    lost = finding(report, "name_lost_in_db")
    assert not lost["hides"] and not lost["hides_db_only"]
    assert report["visible"] is True and report["visible_db_only"] is True

    with AppServer(home) as app:
        default, db_only = codex_lists(app)
        assert listed(app)[thread]["name"] is None
    assert_codex_agrees(report, thread, default, db_only)
    archive = run_codex(home, ["archive", "Apple thread"], check=False)
    assert archive.returncode != 0  # Codex resolves names from the DB only
    assert "archived_sessions" not in str(rollout_of(home, thread))


# --------------------------------------------------------------------------------------
# DB row: deleted, stale path, empty preview
# --------------------------------------------------------------------------------------


def test_thread_whose_db_row_was_deleted(codex_home: Path, env: dict[str, str]) -> None:
    """No row: DB-only lists miss it; the default list scans sessions/, shows it and puts
    the row back, after which explain has nothing left to say."""
    home = codex_home
    with AppServer(home) as app:
        thread = start_thread(app, "A thread that loses its row")
    assert db_write(home, "DELETE FROM threads WHERE id = ?", thread) == 1

    report = explain(home, env, thread)
    assert hiding(report) == (set(), {"no_db_row"})
    assert report["visible"] is True and report["visible_db_only"] is False
    with AppServer(home) as app:
        default, db_only = codex_lists(app)
    assert_codex_agrees(report, thread, default, db_only)

    assert db_row(home, thread) is not None, "the default thread/list should insert the row"
    report = explain(home, env, thread)
    assert "no_db_row" not in codes(report)
    assert report["visible"] is True and report["visible_db_only"] is True
    with AppServer(home) as app:
        assert thread in listed(app, useStateDbOnly=True)


def test_stale_path_and_empty_preview_hide_only_from_db_lists(
    codex_home: Path, env: dict[str, str]
) -> None:
    home = codex_home
    with AppServer(home) as app:
        moved = start_thread(app, "A thread whose file moves")
        blank = start_thread(app, "A thread whose preview is blanked")
    source = rollout_of(home, moved)
    target_dir = home / "sessions" / "2020" / "01" / "01"
    target_dir.mkdir(parents=True)
    source.rename(target_dir / source.name)
    assert db_write(home, "UPDATE threads SET preview = '' WHERE id = ?", blank) == 1

    moved_report = explain(home, env, moved)
    blank_report = explain(home, env, blank)
    assert hiding(moved_report) == (set(), {"row_stale_path"})
    assert hiding(blank_report) == (set(), {"empty_preview"})
    with AppServer(home) as app:
        default, db_only = codex_lists(app)
        assert app.thread_read(moved)["id"] == moved  # opening it by id still works
    assert_codex_agrees(moved_report, moved, default, db_only)
    assert_codex_agrees(blank_report, blank, default, db_only)


# --------------------------------------------------------------------------------------
# Rollout: no usable session_meta, no user message, junk before session_meta
# --------------------------------------------------------------------------------------


def test_rollout_without_session_meta(codex_home: Path, env: dict[str, str]) -> None:
    """With its row, a rollout stripped of session_meta stays in DB-only lists but the
    default list skips it and Codex cannot open it; a copy without a row is in no list."""
    home = codex_home
    with AppServer(home) as app:
        thread = start_thread(app, "A thread whose header is lost")
        template = start_thread(app, "A thread to copy")
    rewrite_lines(rollout_of(home, thread), lambda lines: [x for x in lines if not is_session_meta(x)])
    copy = str(uuid.uuid4())
    src = rollout_of(home, template)
    text = "".join(x for x in src.read_text().splitlines(keepends=True) if not is_session_meta(x))
    (src.parent / src.name.replace(template, copy)).write_text(text.replace(template, copy))

    with_row = explain(home, env, thread)
    assert hiding(with_row) == ({"rollout_unparsable"}, set())
    assert "rollout" not in codes(with_row)
    no_row = explain(home, env, copy)  # known only through its file name
    assert hiding(no_row) == ({"rollout_unparsable"}, {"rollout_unparsable"})

    with AppServer(home) as app:
        default, db_only = codex_lists(app)
        for broken in (thread, copy):
            with pytest.raises(AppServerError, match="does not start with session metadata"):
                app.thread_read(broken)
    assert_codex_agrees(with_row, thread, default, db_only)
    assert_codex_agrees(no_row, copy, default, db_only)
    with pytest.raises(CodexError):
        codex_exec(home, "Resume the broken one", resume=thread)


def test_rollout_with_junk_before_session_meta_is_fine(
    codex_home: Path, env: dict[str, str]
) -> None:
    """Codex skips a blank or malformed line ahead of session_meta; so does explain."""
    home = codex_home
    with AppServer(home) as app:
        thread = start_thread(app, "A thread with a junk first line")
    rewrite_lines(rollout_of(home, thread), lambda lines: ["\n", "not json at all\n", *lines])

    report = explain(home, env, thread)
    assert hiding(report) == (set(), set())
    with AppServer(home) as app:
        default, db_only = codex_lists(app)
        assert app.thread_read(thread)["id"] == thread
    assert_codex_agrees(report, thread, default, db_only)


def test_rollout_without_user_message(codex_home: Path, env: dict[str, str]) -> None:
    """A rollout whose user turns are gone: the default list skips it, while its DB row
    (preview still set) keeps it in DB-only lists."""
    home = codex_home
    with AppServer(home) as app:
        thread = start_thread(app, "A thread whose user turns vanish")
    rewrite_lines(rollout_of(home, thread), lambda lines: [x for x in lines if not is_user_turn(x)])

    report = explain(home, env, thread)
    assert hiding(report) == ({"no_user_message"}, set())
    with AppServer(home) as app:
        default, db_only = codex_lists(app)
    assert_codex_agrees(report, thread, default, db_only)


def test_fork_without_its_own_user_message_is_listed(
    codex_home: Path, env: dict[str, str]
) -> None:
    """A paginated fork has no user message of its own (it points at its parent), yet the
    default list shows it: it is not reported as ``no_user_message``."""
    home = codex_home
    with AppServer(home) as app:
        parent = start_thread(app, "A parent thread")
        fork: str = app.request("thread/fork", {"threadId": parent})["thread"]["id"]
    records = [json.loads(x) for x in rollout_of(home, fork).read_text().splitlines()]
    assert records[0]["payload"]["forked_from_id"] == parent
    assert not any(is_user_turn(json.dumps(r)) for r in records)

    report = explain(home, env, fork)
    assert hiding(report) == (set(), set())
    with AppServer(home) as app:
        default, db_only = codex_lists(app)
    assert_codex_agrees(report, fork, default, db_only)


# --------------------------------------------------------------------------------------
# Model provider
# --------------------------------------------------------------------------------------


def test_thread_of_another_model_provider(
    codex_home: Path, env: dict[str, str], mock_server: MockResponsesServer
) -> None:
    home = codex_home
    with AppServer(home) as app:
        thread = start_thread(app, "A thread made with the mock provider")
    assert explain(home, env, thread)["visible"] is True
    config = home / "config.toml"
    text = config.read_text().replace('model_provider = "mock"', 'model_provider = "other"')
    text += (
        '\n[model_providers.other]\nname = "Other"\n'
        f'base_url = "{mock_server.base_url}"\nwire_api = "responses"\n'
        "requires_openai_auth = false\n"
    )
    config.write_text(text)

    report = explain(home, env, thread)
    assert hiding(report) == ({"other_model_provider"}, {"other_model_provider"})
    assert "'mock'" in finding(report, "other_model_provider")["message"]
    with AppServer(home) as app:
        default, db_only = codex_lists(app)
        all_providers, all_providers_db = codex_lists(app, modelProviders=[])
    assert_codex_agrees(report, thread, default, db_only)
    assert thread in all_providers and thread in all_providers_db


# --------------------------------------------------------------------------------------
# Unknown thread
# --------------------------------------------------------------------------------------


def test_unknown_id_or_name_exits_2(codex_home: Path, env: dict[str, str]) -> None:
    home = codex_home
    with AppServer(home) as app:
        known = start_thread(app, "The only thread")
    unknown = str(uuid.uuid4())
    for query in (unknown, unknown.upper(), "No such name"):
        rc, reports = explain_all(home, env, query)
        assert (rc, reports) == (2, {}), query
    text = run_indexd(["explain", "--codex-home", str(home), unknown], env, check=False)
    assert text.returncode == 2 and unknown in text.stdout
    assert explain_all(home, env, known.upper())[1].keys() == {known}

    with AppServer(home) as app:
        with pytest.raises(AppServerError):
            app.thread_read(unknown)
        assert unknown not in listed(app, modelProviders=[], archived=False)
