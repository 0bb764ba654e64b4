"""`codex-indexd explain` against threads made by the real Codex CLI (each pinned version).

Every test asks explain (``--json``) why a thread is or is not listed, then asks Codex:

* ``visible`` must equal "the ``codex resume`` picker shows it" - checked on the real picker
  in ``test_resume_picker_shows_exactly_the_visible_threads``, elsewhere through
  ``thread/list`` with ``useStateDbOnly: true, modelProviders: []``, which lists the same
  threads except one whose rollout lost its ``session_meta``;
* ``visible_in_scan`` must equal "``thread/list`` with default parameters returns it" - that
  listing scans ``sessions/`` and inserts DB rows for what it finds, so it is taken second;
* ``opens`` is false when ``thread/read`` fails.

Tests may write Codex's state DB with sqlite3 to break things; the product never does.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.codexkit import (
    AppServer,
    AppServerError,
    CodexError,
    MockResponsesServer,
    TuiSession,
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
    data = json.loads(proc.stdout)
    assert data["exit_code"] == proc.returncode
    reports: dict[str, Report] = {t["id"]: t for t in data["threads"]}
    if reports:
        # an archived thread is hidden on purpose: exit 0 with a note
        usable = all((r["visible"] or r["archived"]) and r["opens"] for r in reports.values())
        assert proc.returncode == (0 if usable else 1)
    return proc.returncode, reports


def explain(home: Path, env: dict[str, str], query: str, thread_id: str | None = None) -> Report:
    """The one report ``explain --json QUERY`` gives (for ``thread_id`` when given)."""
    _, reports = explain_all(home, env, query)
    assert list(reports) == [thread_id or query], reports
    return next(iter(reports.values()))


def codes(report: Report) -> list[str]:
    return [f["code"] for f in report["findings"]]


def finding(report: Report, code: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [f for f in report["findings"] if f["code"] == code]
    assert len(found) == 1, (code, codes(report))
    return found[0]


def hiding(report: Report) -> tuple[set[str], set[str]]:
    """Codes hiding the thread from 'codex resume', and from thread/list's default scan."""
    return (
        {f["code"] for f in report["findings"] if f["hides"]},
        {f["code"] for f in report["findings"] if f["hides_in_scan"]},
    )


def breaking(report: Report) -> set[str]:
    return {f["code"] for f in report["findings"] if f["breaks"]}


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
    """Ids in the DB-only listing of every provider (what 'codex resume' shows), then in
    ``thread/list`` with ``params`` only (it scans ``sessions/``)."""
    db_only = set(listed(app, useStateDbOnly=True, **{"modelProviders": [], **params}))
    scan = set(listed(app, **params))
    return db_only, scan


def assert_codex_agrees(report: Report, thread_id: str, db_only: set[str], scan: set[str]) -> None:
    assert report["visible"] == (thread_id in db_only), (report, db_only)
    assert report["visible_in_scan"] == (thread_id in scan), (report, scan)


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


def stored_row(home: Path, thread_id: str) -> dict[str, Any]:
    """The thread's row in the state DB; fails the test when there is none."""
    row = db_row(home, thread_id)
    assert row is not None, f"no row for {thread_id} in the state DB"
    return row


def rollout_of(home: Path, thread_id: str) -> Path:
    path = find_rollout(home, thread_id)
    assert path is not None, thread_id
    return path


def rewrite_lines(path: Path, keep: Callable[[list[str]], list[str]]) -> None:
    """Rewrite a rollout keeping the lines (with their newline) ``keep(lines)`` returns."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(keep(lines)), encoding="utf-8")


def is_session_meta(line: str) -> bool:
    return bool(json.loads(line).get("type") == "session_meta")


def is_user_turn(line: str) -> bool:
    record = json.loads(line)
    payload = record.get("payload") or {}
    item = payload.get("item") or {}
    return (
        payload.get("type") == "user_message"
        or item.get("type") == "UserMessage"
        or (record.get("type") == "response_item" and payload.get("role") == "user")
    )


# --------------------------------------------------------------------------------------
# The real `codex resume` picker shows exactly the threads explain calls visible
# --------------------------------------------------------------------------------------


PICKER_FOOTER = re.compile(r"\d+ / \d+ · \d+%")
"""The picker's footer, e.g. ``1 / 3 · 100%``, drawn once its list is loaded."""


class ResumePicker(TuiSession):
    """``codex resume ...`` in tmux; ready once the picker has drawn its list."""

    def _ready(self, screen: str) -> bool:
        return "Resume a previous session" in screen and bool(PICKER_FOOTER.search(screen))


def picker_screen(home: Path, tmux_bin: Path, args: list[str], expect: set[str]) -> str:
    """The picker's screen once every word of ``expect`` shows, after a short settle."""
    with ResumePicker(home, args=["resume", *args], tmux_bin=tmux_bin) as tui:
        tui.wait_for_screen(lambda s: all(w in s for w in expect), 20, f"picker rows {expect}")
        time.sleep(1.0)  # let a late row arrive before judging what is absent
        return tui.capture()


PICKER_WORDS = ("limes", "kiwis", "melons", "grapes", "cherries", "quinces", "dates", "figs")


def test_resume_picker_shows_exactly_the_visible_threads(
    codex_home: Path, env: dict[str, str], tmux_bin: Path
) -> None:
    """One thread per kind of damage, each with its own word in its first prompt; the
    picker (``codex resume --all``) lists the words of the threads explain calls visible,
    and ``--include-non-interactive`` adds the exec thread."""
    home = codex_home
    with AppServer(home) as app:
        threads = {word: start_thread(app, f"Thread about {word}") for word in PICKER_WORDS}
    threads["plums"] = codex_exec(home, "Thread about plums")
    assert db_write(home, "DELETE FROM threads WHERE id = ?", threads["kiwis"]) == 1
    moved = rollout_of(home, threads["melons"])
    (home / "sessions" / "2020" / "01" / "01").mkdir(parents=True)
    moved.rename(home / "sessions" / "2020" / "01" / "01" / moved.name)
    assert db_write(home, "UPDATE threads SET preview = '' WHERE id = ?", threads["grapes"]) == 1
    rewrite_lines(
        rollout_of(home, threads["cherries"]), lambda ls: [x for x in ls if not is_user_turn(x)]
    )
    rewrite_lines(
        rollout_of(home, threads["quinces"]), lambda ls: [x for x in ls if not is_session_meta(x)]
    )
    rollout_of(home, threads["dates"]).unlink()
    assert db_write(
        home, "UPDATE threads SET model_provider = 'other' WHERE id = ?", threads["figs"]
    )

    reports = {word: explain(home, env, tid) for word, tid in threads.items()}
    expected = {
        "limes": set(), "kiwis": {"no_db_row"}, "melons": {"row_stale_path"},
        "grapes": {"empty_preview"}, "cherries": set(), "quinces": {"rollout_unparsable"},
        "dates": {"rollout_missing"}, "plums": {"non_interactive_source"},
        "figs": set(),
    }  # fmt: skip
    assert {word: hiding(r)[0] for word, r in reports.items()} == expected
    visible = {word for word, r in reports.items() if r["visible"]}
    assert visible == {"limes", "cherries", "figs"}
    assert "other_model_provider" in codes(reports["figs"])  # its row says 'other'

    screen = picker_screen(home, tmux_bin, ["--all"], visible)
    assert {word for word in threads if word in screen} == visible, screen
    screen = picker_screen(home, tmux_bin, ["--all", "--include-non-interactive"], visible)
    assert {word for word in threads if word in screen} == visible | {"plums"}, screen

    with AppServer(home) as app:  # after the picker: the scan gives kiwis a row
        selected_provider = set(listed(app, useStateDbOnly=True))
        db_only, scan = codex_lists(app)
    assert {w for w, r in reports.items() if r["visible_in_scan"]} == {
        w for w, tid in threads.items() if tid in scan
    }
    # thread/list's DB-only mode differs from the picker: it keeps quinces' row, and
    # without modelProviders: [] it drops figs (its row names another provider).
    assert {w for w in threads if threads[w] in db_only} == visible | {"quinces"}
    assert threads["figs"] not in selected_provider


# --------------------------------------------------------------------------------------
# Source: exec threads are hidden; an interactive one is not
# --------------------------------------------------------------------------------------


def test_exec_thread_is_hidden(codex_home: Path, env: dict[str, str]) -> None:
    home = codex_home
    exec_thread = codex_exec(home, "An exec thread about plums")
    with AppServer(home) as app:
        interactive = start_thread(app, "An interactive thread about figs")

    report = explain(home, env, exec_thread)
    assert report["visible"] is False and report["visible_in_scan"] is False
    assert hiding(report) == ({"non_interactive_source"}, {"non_interactive_source"})
    assert "'exec'" in finding(report, "non_interactive_source")["message"]
    assert "'codex exec' never writes one" in finding(report, "not_in_index")["message"]

    control = explain(home, env, interactive)
    assert (control["visible"], control["visible_in_scan"], control["opens"]) == (True,) * 3
    assert hiding(control) == (set(), set()) and breaking(control) == set()

    with AppServer(home) as app:
        db_only, scan = codex_lists(app)
        exec_db_only, exec_scan = codex_lists(app, sourceKinds=["exec"])
    assert_codex_agrees(report, exec_thread, db_only, scan)
    assert_codex_agrees(control, interactive, db_only, scan)
    assert exec_thread in exec_db_only and exec_thread in exec_scan  # what the message says

    text = run_indexd(["explain", "--codex-home", str(home), exec_thread], env, check=False)
    assert text.returncode == 1
    assert "HIDDEN" in text.stdout and "✗ Its source is 'exec'" in text.stdout
    text = run_indexd(["explain", "--codex-home", str(home), interactive], env, check=False)
    assert text.returncode == 0 and "visible in 'codex resume'" in text.stdout


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
    assert explain_all(home, env, thread)[0] == 0  # archived on purpose: a note, not a problem
    with AppServer(home) as app:
        db_only, scan = codex_lists(app)
        archived_db_only, archived_scan = codex_lists(app, archived=True)
    assert_codex_agrees(report, thread, db_only, scan)
    assert thread in archived_db_only and thread in archived_scan

    codex_unarchive(home, thread)
    report = explain(home, env, thread)
    assert "archived" not in codes(report)
    assert report["visible"] is True and report["visible_in_scan"] is True
    with AppServer(home) as app:
        db_only, scan = codex_lists(app)
    assert_codex_agrees(report, thread, db_only, scan)


# --------------------------------------------------------------------------------------
# Names: found by name, the index is not needed, a name only in the index is lost
# --------------------------------------------------------------------------------------


def test_renamed_thread_is_found_by_its_db_name(codex_home: Path, env: dict[str, str]) -> None:
    home = codex_home
    with AppServer(home) as app:
        thread = start_thread(app, "A thread about the orchard")
        other = start_thread(app, "Another thread")
        app.thread_name_set(thread, "Orchard plan")
    assert stored_row(home, thread)["name"] == "Orchard plan"

    report = explain(home, env, "Orchard plan", thread)
    assert report["visible"] is True and report["visible_in_scan"] is True
    assert finding(report, "name")["message"] == "Name: 'Orchard plan', from state DB threads.name."
    assert not {"not_in_index", "index_name_stale", "name_lost_in_db"} & set(codes(report))
    assert explain_all(home, env, "  Orchard plan ")[1].keys() == {thread}

    with AppServer(home) as app:
        db_only, scan = codex_lists(app)
        names = {t: v["name"] for t, v in listed(app, useStateDbOnly=True).items()}
    assert_codex_agrees(report, thread, db_only, scan)
    assert names == {thread: "Orchard plan", other: None}


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
    assert "not_in_index" in codes(report)
    assert hiding(report) == (set(), set())
    assert "not_in_index" not in codes(explain(home, env, kept))

    with AppServer(home) as app:
        db_only, scan = codex_lists(app)
        assert listed(app, useStateDbOnly=True)[thread]["name"] == "Pear notes"
    assert_codex_agrees(report, thread, db_only, scan)
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
    assert "name_lost_in_db" in codes(report)
    assert hiding(report) == (set(), set())

    with AppServer(home) as app:
        db_only, scan = codex_lists(app)
        assert listed(app, useStateDbOnly=True)[thread]["name"] is None
    assert_codex_agrees(report, thread, db_only, scan)
    archive = run_codex(home, ["archive", "Apple thread"], check=False)
    assert archive.returncode != 0  # Codex resolves names from the DB only
    assert "archived_sessions" not in str(rollout_of(home, thread))


# --------------------------------------------------------------------------------------
# DB row: deleted, stale path, empty preview
# --------------------------------------------------------------------------------------


def test_thread_whose_db_row_was_deleted(codex_home: Path, env: dict[str, str]) -> None:
    """No row: 'codex resume' (DB lists) misses it; the scanning thread/list shows it and
    puts the row back, after which explain has nothing left to say."""
    home = codex_home
    with AppServer(home) as app:
        thread = start_thread(app, "A thread that loses its row")
    assert db_write(home, "DELETE FROM threads WHERE id = ?", thread) == 1

    rc, reports = explain_all(home, env, thread)
    report = reports[thread]
    assert rc == 1 and hiding(report) == ({"no_db_row"}, set())
    assert report["visible"] is False and report["visible_in_scan"] is True
    with AppServer(home) as app:
        db_only, scan = codex_lists(app)
    assert_codex_agrees(report, thread, db_only, scan)

    assert db_row(home, thread) is not None, "the scanning thread/list should insert the row"
    report = explain(home, env, thread)
    assert "no_db_row" not in codes(report)
    assert report["visible"] is True and report["visible_in_scan"] is True
    with AppServer(home) as app:
        assert thread in listed(app, useStateDbOnly=True)


def test_stale_path_and_empty_preview_hide_from_db_lists_only(
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
    assert hiding(moved_report) == ({"row_stale_path"}, set())
    assert hiding(blank_report) == ({"empty_preview"}, set())
    with AppServer(home) as app:
        db_only, scan = codex_lists(app)
        assert app.thread_read(moved)["id"] == moved  # opening it by id still works
    assert_codex_agrees(moved_report, moved, db_only, scan)
    assert_codex_agrees(blank_report, blank, db_only, scan)

    # Neither the scan nor thread/read fixed the row; putting the file back does.
    assert "row_stale_path" in codes(explain(home, env, moved))
    (target_dir / source.name).rename(source)
    moved_report = explain(home, env, moved)
    assert hiding(moved_report) == (set(), set())
    with AppServer(home) as app:
        db_only, scan = codex_lists(app)
    assert_codex_agrees(moved_report, moved, db_only, scan)


# --------------------------------------------------------------------------------------
# Rollout: no usable session_meta, junk before session_meta, no user message, fork
# --------------------------------------------------------------------------------------


def test_rollout_without_session_meta(codex_home: Path, env: dict[str, str]) -> None:
    """A rollout stripped of session_meta: Codex cannot open or resume it, and no list
    shows it, except that thread/list with useStateDbOnly still returns its DB row."""
    home = codex_home
    with AppServer(home) as app:
        thread = start_thread(app, "A thread whose header is lost")
        template = start_thread(app, "A thread to copy")
    rewrite_lines(rollout_of(home, thread), lambda ls: [x for x in ls if not is_session_meta(x)])
    copy = str(uuid.uuid4())
    src = rollout_of(home, template)
    text = "".join(x for x in src.read_text().splitlines(keepends=True) if not is_session_meta(x))
    (src.parent / src.name.replace(template, copy)).write_text(text.replace(template, copy))

    with_row = explain(home, env, thread)
    assert hiding(with_row) == ({"rollout_unparsable"}, {"rollout_unparsable"})
    assert breaking(with_row) == {"rollout_unparsable"} and with_row["opens"] is False
    assert "rollout" not in codes(with_row)
    no_row = explain(home, env, copy)  # known only through its file name
    assert hiding(no_row) == ({"rollout_unparsable"}, {"rollout_unparsable"})
    assert no_row["opens"] is False

    with AppServer(home) as app:
        db_only, scan = codex_lists(app)
        for broken in (thread, copy):  # (thread/read then gives `copy` a row: do it last)
            with pytest.raises(AppServerError, match="does not start with session metadata"):
                app.thread_read(broken)
    # The DB-only list still returns the row; the picker drops it (see the picker test).
    assert_codex_agrees(with_row, thread, db_only - {thread}, scan)
    assert thread in db_only
    assert_codex_agrees(no_row, copy, db_only, scan)
    with pytest.raises(CodexError):
        codex_exec(home, "Resume the broken one", resume=thread)


def test_rollout_with_junk_before_session_meta_is_fine(
    codex_home: Path, env: dict[str, str]
) -> None:
    """Codex skips a blank or malformed line ahead of session_meta; so does explain."""
    home = codex_home
    with AppServer(home) as app:
        thread = start_thread(app, "A thread with a junk first line")
    rewrite_lines(rollout_of(home, thread), lambda ls: ["\n", "not json at all\n", *ls])

    report = explain(home, env, thread)
    assert hiding(report) == (set(), set()) and report["opens"] is True
    with AppServer(home) as app:
        db_only, scan = codex_lists(app)
        assert app.thread_read(thread)["id"] == thread
    assert_codex_agrees(report, thread, db_only, scan)


def test_rollout_without_user_message(codex_home: Path, env: dict[str, str]) -> None:
    """A rollout whose user turns are gone: the scanning list skips it, while its DB row
    (preview still set) keeps it in 'codex resume'."""
    home = codex_home
    with AppServer(home) as app:
        thread = start_thread(app, "A thread whose user turns vanish")
    rewrite_lines(rollout_of(home, thread), lambda ls: [x for x in ls if not is_user_turn(x)])

    report = explain(home, env, thread)
    assert hiding(report) == (set(), {"no_user_message"})
    with AppServer(home) as app:
        db_only, scan = codex_lists(app)
    assert_codex_agrees(report, thread, db_only, scan)


def test_fork_without_its_own_user_message_is_listed(codex_home: Path, env: dict[str, str]) -> None:
    """A paginated fork has no user message of its own (it points at its parent), yet both
    lists show it: it is not reported as ``no_user_message``."""
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
        db_only, scan = codex_lists(app)
    assert_codex_agrees(report, fork, db_only, scan)


# --------------------------------------------------------------------------------------
# Model provider
# --------------------------------------------------------------------------------------


def test_thread_of_another_model_provider(
    codex_home: Path, env: dict[str, str], mock_server: MockResponsesServer, tmux_bin: Path
) -> None:
    """After config.toml switches provider, thread/list (default parameters) drops the old
    provider's thread; 'codex resume' still shows it."""
    home = codex_home
    with AppServer(home) as app:
        thread = start_thread(app, "A thread about mangos")
    assert "other_model_provider" not in codes(explain(home, env, thread))
    config = home / "config.toml"
    text = config.read_text().replace('model_provider = "mock"', 'model_provider = "other"')
    text += (
        '\n[model_providers.other]\nname = "Other"\n'
        f'base_url = "{mock_server.base_url}"\nwire_api = "responses"\n'
        "requires_openai_auth = false\n"
    )
    config.write_text(text)

    rc, reports = explain_all(home, env, thread)
    report = reports[thread]
    assert rc == 0 and hiding(report) == (set(), {"other_model_provider"})
    assert "'mock'" in finding(report, "other_model_provider")["message"]
    with AppServer(home) as app:
        db_only, scan = codex_lists(app)
        _, any_provider = codex_lists(app, modelProviders=[])
        assert thread not in listed(app, useStateDbOnly=True)  # the selected provider only
    assert_codex_agrees(report, thread, db_only, scan)
    assert thread in any_provider
    screen = picker_screen(home, tmux_bin, ["--all"], {"mangos"})
    assert "mangos" in screen


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
    assert text.returncode == 2 and unknown in text.stderr
    assert explain_all(home, env, known.upper())[1].keys() == {known}

    with AppServer(home) as app:
        with pytest.raises(AppServerError):
            app.thread_read(unknown)
        for archived in (False, True):
            assert unknown not in listed(app, modelProviders=[], archived=archived)
