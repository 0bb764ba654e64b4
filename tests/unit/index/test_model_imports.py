"""Imports run one way: the model imports nothing else of ours, the live view and DB
detection do not reach back into the drivers."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "daemon" / "codex_indexd"


def our_imports(path: Path) -> set[str]:
    """Return the `codex_indexd` modules a file imports (at any depth of the file)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found.update(n for n in [node.module, *names] if n.startswith("codex_indexd"))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("codex_indexd"))
    return found


def test_the_model_imports_only_the_model() -> None:
    files = sorted((PACKAGE / "index").glob("*.py"))
    assert files
    for path in files:
        outside = {
            name
            for name in our_imports(path)
            if not name.startswith("codex_indexd.index.") and name != "codex_indexd.index"
        }
        assert not outside, f"{path.name} imports {sorted(outside)}"


def test_readers_and_writers_do_not_import_the_drivers() -> None:
    drivers = ("codex_indexd.engine", "codex_indexd.home_worker", "codex_indexd.daemon")
    for folder in ("codex", "write"):
        for path in sorted((PACKAGE / folder).glob("*.py")):
            bad = {n for n in our_imports(path) if n.startswith(drivers)}
            assert not bad, f"{folder}/{path.name} imports {sorted(bad)}"


def test_the_live_view_and_detection_do_not_reach_back() -> None:
    live = our_imports(PACKAGE / "engine" / "live.py")
    assert not {n for n in live if n.startswith(("codex_indexd.watch", "codex_indexd.home_"))}
    detect = our_imports(PACKAGE / "heal" / "detect.py")
    assert not {n for n in detect if n.startswith(("codex_indexd.diagnose", "codex_indexd.engine"))}
