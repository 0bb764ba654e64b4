"""Imports run one way (docs/architecture.md): the pure model imports nothing else of ours;
readers and writers import the model and nothing that drives them; the engine, healing and our
own files never import a driver (the CLI, its commands, the daemon); the live view and DB
detection do not reach back. The service package is checked in tests/unit/service."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "daemon" / "codex_indexd"
# Modules that stand in for the standard library: any module may import them, they import
# nothing of ours.
FOUNDATION = ("codex_indexd.records", "codex_indexd.collector", "codex_indexd.peak")
DRIVERS = ("codex_indexd.cli", "codex_indexd.commands", "codex_indexd.daemon")
LOWER_THAN_ENGINE = (*DRIVERS, "codex_indexd.engine", "codex_indexd.heal")

# folder -> the modules of ours it must not import (by prefix)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "codex": (*LOWER_THAN_ENGINE, "codex_indexd.write", "codex_indexd.watch"),
    "write": (*LOWER_THAN_ENGINE, "codex_indexd.watch", "codex_indexd.config"),
    "watch": (*LOWER_THAN_ENGINE, "codex_indexd.write"),
    "store": LOWER_THAN_ENGINE,
    "log": LOWER_THAN_ENGINE,
    "config": LOWER_THAN_ENGINE,
    "engine": (*DRIVERS, "codex_indexd.heal"),
    "heal": DRIVERS,
}


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
            if not name.startswith("codex_indexd.index.")
            and name != "codex_indexd.index"
            and not name.startswith(FOUNDATION)
        }
        assert not outside, f"{path.name} imports {sorted(outside)}"


@pytest.mark.parametrize("module", FOUNDATION)
def test_the_foundation_imports_nothing_of_ours(module: str) -> None:
    assert not our_imports(PACKAGE / f"{module.rsplit('.', 1)[1]}.py")


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_no_folder_imports_what_drives_it(folder: str) -> None:
    files = sorted((PACKAGE / folder).glob("*.py"))
    assert files, folder
    for path in files:
        bad = {n for n in our_imports(path) if n.startswith(FORBIDDEN[folder])}
        assert not bad, f"{folder}/{path.name} imports {sorted(bad)}"


def test_the_live_view_and_detection_do_not_reach_back() -> None:
    live = our_imports(PACKAGE / "engine" / "live.py")
    assert not {n for n in live if n.startswith(("codex_indexd.watch", "codex_indexd.daemon"))}
    detect = our_imports(PACKAGE / "heal" / "detect.py")
    assert not {n for n in detect if n.startswith("codex_indexd.engine")}


def test_every_module_is_at_most_400_lines() -> None:
    roots = (PACKAGE, PACKAGE.parents[1] / "service" / "codex_indexd_service")
    long = {
        str(p.relative_to(root)): n
        for root in roots
        for p in root.rglob("*.py")
        if (n := p.read_text(encoding="utf-8").count("\n")) > 400
    }
    assert not long, long


def test_no_two_modules_share_a_name() -> None:
    roots = (PACKAGE, PACKAGE.parents[1] / "service" / "codex_indexd_service")
    seen: dict[str, list[str]] = {}
    for root in roots:
        for p in root.rglob("*.py"):
            if p.name not in ("__init__.py", "__main__.py"):
                seen.setdefault(p.name, []).append(str(p.relative_to(root.parent)))
    assert not {k: v for k, v in seen.items() if len(v) > 1}
