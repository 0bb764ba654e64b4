"""The service package imports nothing of the daemon's package (what it needs is passed in),
and the daemon's package imports the service package only in its command line."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def imported(path: Path) -> Iterator[str]:
    """Yield every module name `path` imports (at any depth: lazy imports count)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def top(name: str) -> str:
    return name.split(".", maxsplit=1)[0]


def test_the_service_package_imports_nothing_of_the_daemon() -> None:
    files = sorted((ROOT / "service" / "codex_indexd_service").rglob("*.py"))
    assert files
    found = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in files
        for name in imported(path)
        if top(name) == "codex_indexd"
    }
    assert found == set()


def test_the_daemon_imports_the_service_package_only_in_its_command_line() -> None:
    package = ROOT / "daemon" / "codex_indexd"
    found = {
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if any(top(name) == "codex_indexd_service" for name in imported(path))
    }
    assert found == {"cli.py"}
