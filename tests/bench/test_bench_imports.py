"""Fast checks of the import-time benchmark: the `-X importtime` parser and the attribution."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

BENCH_DIR = Path(__file__).resolve().parent


def load_module(name: str) -> ModuleType:
    """Import a module of tests/bench (not a package) the way its scripts import each other."""
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    return importlib.import_module(name)


bench = load_module("bench_imports")

SAMPLE = """\
import time: self [us] | cumulative | imported package
import time:        40 |         40 |       _sqlite3
import time:       300 |        340 |     sqlite3.dbapi2
import time:        10 |        350 |   sqlite3
import time:       200 |        550 | codex_indexd.codex.statedb
import time:        25 |         25 |   codex_indexd.index.model
import time:         5 |         30 | codex_indexd.engine
some output of the command
import time:        70 |         70 | subprocess
"""


def test_importtime_lines_are_parsed_with_their_depth() -> None:
    lines = bench.parse_importtime(SAMPLE)
    assert [(x.module, x.self_us, x.cumulative_us, x.depth) for x in lines] == [
        ("_sqlite3", 40, 40, 3),
        ("sqlite3.dbapi2", 300, 340, 2),
        ("sqlite3", 10, 350, 1),
        ("codex_indexd.codex.statedb", 200, 550, 0),
        ("codex_indexd.index.model", 25, 25, 1),
        ("codex_indexd.engine", 5, 30, 0),
        ("subprocess", 70, 70, 0),
    ]


def test_each_module_is_charged_to_the_nearest_module_of_ours_above_it() -> None:
    importers = bench.first_importers(bench.parse_importtime(SAMPLE))
    assert importers["_sqlite3"] == "codex_indexd.codex.statedb"  # through two of sqlite3's
    assert importers["sqlite3"] == "codex_indexd.codex.statedb"
    assert importers["codex_indexd.index.model"] == "codex_indexd.engine"
    assert importers["codex_indexd.engine"] == ""  # top level
    assert importers["subprocess"] == ""  # imported from a function at run time


def test_the_script_prints_the_three_commands_and_the_tables() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH_DIR / "bench_imports.py"), "--runs", "5", "--top", "3"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    out = result.stdout
    for text in ("python -c pass", "import codex_indexd.commands.repair_home", "repair --dry-run"):
        assert text in out
    assert out.count("first imported by") == 4
    assert "codex_indexd." in out


def test_instructions_are_reported_over_bare_and_at_the_bare_rate() -> None:
    counts = {"bare": 80_000_000, "import": 120_000_000, "repair": 200_000_000}
    summary = bench.instructions_summary(counts, bare_cpu_ms=10.0)
    assert summary["over_bare_millions"] == {"import": 40.0, "repair": 120.0}
    # 8 M instructions per ms at the bare interpreter's rate
    assert summary["over_bare_ms_at_bare_rate"] == {"import": 5.0, "repair": 15.0}
