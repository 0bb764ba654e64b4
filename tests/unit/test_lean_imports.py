"""What `repair` imports: building the CLI parser loads no command, and a repair of a home in
use (config.toml, index, history) loads neither the healer, nor the daemon, nor structlog,
subprocess or OpenSSL's hashlib. Structural checks on `sys.modules` in a fresh interpreter;
the time they save is measured by tests/bench/bench_imports.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codex_indexd.commands.arguments import ONLY_CHOICES
from codex_indexd.index.lines import canonical_uuid
from codex_indexd.index.model import OnlyFile
from tests.support.homes import build_home, index_line, new_thread

REPO = Path(__file__).resolve().parents[2]

NEVER_FOR_REPAIR = (
    "codex_indexd.commands.explain",
    "codex_indexd.commands.run",
    "codex_indexd.daemon",
    "codex_indexd.engine.diagnose",
    "codex_indexd.heal.child",
    "codex_indexd.heal.codex_check",
    "codex_indexd.heal.heal",
    "codex_indexd.watch",
    "ctypes",
    "difflib",
    "pickle",
    "platform",
    "signal",
    "structlog",
    "subprocess",
    "threading",
    "uuid",
    "watchdog",
)
"""Modules a repair without --heal-db never needs (ctypes: only to reserve space for an
append; uuid: index ids are made canonical without it; pickle, signal: only when a large
scan is shared with a second process; threading: its locks come from `_thread`, and whether
the process may fork is asked of `_thread` too)."""

PARSER_ONLY = "from codex_indexd.cli import build_parser; build_parser()"


def modules_after(code: str, env: dict[str, str]) -> set[str]:
    """Run `code` in a fresh interpreter and return the names in its `sys.modules` at the end."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    last = done.stdout.strip().splitlines()[-1]
    return set(json.loads(last))


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """Return the `names` that are in `modules` themselves or by one of their submodules."""
    return [n for n in names if any(m == n or m.startswith(n + ".") for m in modules)]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Our environment with our own dirs and config under `tmp_path`."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("CODEX_")}
    base = tmp_path / "ours"
    out |= {
        "CODEX_INDEXD_STATE_DIR": str(base / "state"),
        "CODEX_INDEXD_CACHE_DIR": str(base / "cache"),
        "CODEX_INDEXD_LOG_DIR": str(base / "log"),
        "CODEX_INDEXD_CONFIG": str(base / "config.toml"),
    }
    return out


def home_in_use(root: Path) -> Path:
    """A home with two threads, a state DB, a config.toml, an index line and a history line."""
    threads = [new_thread(0), new_thread(1, paginated=True)]
    home = build_home(root / "home", threads)
    (home / "config.toml").write_text('[history]\npersistence = "save-all"\n')
    (home / "session_index.jsonl").write_text(
        index_line(threads[0].thread_id, "first", "2026-01-01T00:00:00Z")
    )
    line = {"session_id": threads[0].thread_id, "ts": 1767225600, "text": "hello"}
    (home / "history.jsonl").write_text(json.dumps(line) + "\n")
    return home


def test_building_the_parser_imports_no_command(env: dict[str, str]) -> None:
    modules = modules_after(PARSER_ONLY, env)
    assert "codex_indexd.commands.arguments" in modules  # the check sees our modules
    assert not loaded(modules, ("codex_indexd.commands.repair", *NEVER_FOR_REPAIR))
    assert not loaded(modules, ("codex_indexd.engine", "codex_indexd.index", "dataclasses"))


def test_a_repair_begins_its_scan_before_the_planner_and_the_config_are_imported(
    env: dict[str, str],
) -> None:
    """What `repair` has imported when it starts its scan (`commands.repair` and
    `codex.scan_queue`, before its options are parsed): neither argparse, nor the config
    file's reader (platformdirs, tomllib), nor the state DB's, the planner or the writers;
    those load while a child scans."""
    code = "import codex_indexd.cli, codex_indexd.commands.repair, codex_indexd.codex.scan_queue"
    modules = modules_after(code, env)
    assert "codex_indexd.codex.scan_split" in modules  # the check sees the scanner
    later = (
        "argparse",
        "codex_indexd.commands.arguments",
        "codex_indexd.commands.repair_home",
        "codex_indexd.config",
        "codex_indexd.engine",
        "codex_indexd.index.plan",
        "codex_indexd.write",
        "platformdirs",
        "sqlite3",
        "tomllib",
    )
    assert not loaded(modules, (*later, *NEVER_FOR_REPAIR))


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "writing"])
def test_a_repair_imports_only_what_it_needs(
    tmp_path: Path, env: dict[str, str], dry_run: bool
) -> None:
    home = home_in_use(tmp_path)
    argv = ["repair", "--codex-home", str(home), "--json", *(["--dry-run"] if dry_run else [])]
    code = f"from codex_indexd.cli import main\nassert main({argv!r}) == 0"
    modules = modules_after(code, env)
    assert "codex_indexd.commands.repair" in modules
    assert "codex_indexd.heal.detect" in modules  # the report's DB drift
    assert not loaded(modules, NEVER_FOR_REPAIR)
    if dry_run:
        assert "_hashlib" not in modules  # blake2b comes from _blake2, sha256 only to write
        writers = ("codex_indexd.write.history_writer", "codex_indexd.write.index_writer")
        assert not loaded(modules, writers)
    else:
        assert (home / "session_index.jsonl").read_text().count("\n") == 2  # it did write


def test_the_only_choices_are_the_model_values() -> None:
    assert tuple(o.value for o in OnlyFile) == ONLY_CHOICES


UUID_TEXT = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: "{" + str(u).upper() + "}"),
    st.uuids().map(lambda u: "urn:uuid:" + u.hex),
    st.text(alphabet="0123456789abcdefABCDEF-{}+_ :urnid\t", max_size=45),
    st.text(max_size=40),
)


@given(UUID_TEXT)
def test_canonical_uuid_is_what_uuid_prints(text: str) -> None:
    try:
        expected: str | None = str(uuid.UUID(text))
    except ValueError:
        expected = None
    try:
        got: str | None = canonical_uuid(text)
    except ValueError:
        got = None
    assert got == expected
