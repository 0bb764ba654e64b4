"""A newer Codex is noticed as information (status), from hand-made homes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from codex_indexd.codex.home import CodexHome
from codex_indexd.commands.status import home_report, render
from codex_indexd.engine import gather
from codex_indexd.heal.codex_check import CodexCheck
from codex_indexd.heal.drift import (
    STATE_MIGRATIONS,
    drift_notes,
    parse_version,
    unknown_migrations,
)
from codex_indexd.index.model import Policy
from tests.support.homes import Thread, build_home, new_thread, rollout_path


def add_migrations(db: Path, descriptions: list[str]) -> None:
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (version BIGINT PRIMARY KEY, "
        "description TEXT NOT NULL, installed_on TIMESTAMP, success BOOLEAN, checksum BLOB, "
        "execution_time BIGINT)"
    )
    conn.executemany(
        "INSERT INTO _sqlx_migrations (version, description) VALUES (?, ?)",
        list(enumerate(descriptions, start=1)),
    )
    conn.commit()
    conn.close()


def set_cli_version(home: Path, thread: Thread, version: str) -> None:
    path = rollout_path(home, thread)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('"cli_version":"0.169.0"', f'"cli_version":"{version}"'), "utf-8")


def test_parse_version() -> None:
    assert parse_version("0.171.0") == (0, 171, 0)
    assert parse_version("0.172.0-alpha.3") == (0, 172, 0)
    assert parse_version("dev") is None and parse_version(None) is None


def test_the_tested_releases_say_nothing(tmp_path: Path) -> None:
    home = build_home(tmp_path / "h", [new_thread(1), new_thread(2, paginated=True)])
    add_migrations(home / "state_5.sqlite", list(STATE_MIGRATIONS[:62]))  # Codex 0.169.0
    facts = gather(CodexHome.at(home))
    assert unknown_migrations(home / "state_5.sqlite") == []
    assert drift_notes(facts, CodexCheck(True, version="0.171.0")) == []


def test_newer_rollouts_migrations_and_binary_are_information(tmp_path: Path) -> None:
    threads = [new_thread(1), new_thread(2, paginated=True)]
    home = build_home(tmp_path / "h", threads)
    set_cli_version(home, threads[1], "0.172.0")
    add_migrations(home / "state_5.sqlite", [*STATE_MIGRATIONS, "thread tags"])
    facts = gather(CodexHome.at(home))
    info = "Codex 0.173.1 is newer than the versions tested: 0.169.0, 0.171.0"
    notes = drift_notes(facts, CodexCheck(True, version="0.173.1", info=info))
    assert notes[0] == info
    assert "rollouts were written by Codex 0.172.0, newer than the versions tested" in notes[1]
    assert f"{len(STATE_MIGRATIONS) + 1} thread tags" in notes[2]
    assert len(notes) == 3
    report = home_report(home, Policy(), "off", None)  # mode off: the binary is not asked
    assert report["info"] == notes[1:]
    assert not report["errors"]
    lines = render(report)
    assert sum(line.startswith("  info: ") for line in lines) == 2


def test_a_renamed_migration_is_noticed_and_a_db_without_the_table_is_not(tmp_path: Path) -> None:
    home = build_home(tmp_path / "h", [new_thread(1)])
    db = home / "state_5.sqlite"
    assert unknown_migrations(db) == []  # no _sqlx_migrations table at all
    changed = list(STATE_MIGRATIONS[:3])
    changed[2] = "something else"
    add_migrations(db, changed)
    assert unknown_migrations(db) == ["3 something else"]
    assert unknown_migrations(tmp_path / "absent.sqlite") == []


def test_lines_of_unknown_shapes_with_user_text_are_information(tmp_path: Path) -> None:
    threads = [new_thread(1), new_thread(2, paginated=True)]
    home = build_home(tmp_path / "h", threads)
    path = rollout_path(home, threads[1])
    odd = (
        '{"timestamp":"2026-11-25T15:06:11.000Z","type":"response_item","payload":'
        '{"type":"user_input","content":[{"type":"input_text","text":"a private prompt"}]}}\n'
    )
    with path.open("a", encoding="utf-8") as fh:
        fh.write(odd * 2)
    facts = gather(CodexHome.at(home))
    notes = drift_notes(facts)
    assert len(notes) == 1
    assert notes[0].startswith("2 line(s) in 1 rollout(s) have a shape codex-indexd does not know")
    assert "response_item/user_input" in notes[0]
    assert "a private prompt" not in notes[0]
    report = home_report(home, Policy(), "off", None)
    assert report["info"] == notes
