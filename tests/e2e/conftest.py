"""Fixtures for end-to-end tests that drive the real Codex CLI offline.

Which Codex runs: ``$CODEX_BIN`` when set (any version: a one-line way to try a new release,
``CODEX_BIN=/path/to/codex ./tests/run-all tests/e2e``); otherwise every version pinned in
tests/e2e/package.json (npm aliases ``codex-0169``, ``codex-0171``); otherwise
:func:`codexkit.find_codex_binary`. Every test that uses Codex carries the version in its id
(``test_x[codex-0.171.0]``) and runs on each version (the whole tier takes about 1.5 min per
version); ``CODEX_INDEXD_E2E_NEWEST_ONLY=1`` runs the newest only. Without any binary the tests are skipped, unless
``CODEX_INDEXD_REQUIRE_CODEX`` is set (CI), in which case they fail.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.codexkit import (
    PINNED_CODEX,
    MockResponsesServer,
    find_codex_binary,
    find_tmux_binary,
    make_codex_home,
    stop_managed_daemon,
)

E2E_DIR = Path(__file__).resolve().parent
REQUIRE_ENV = "CODEX_INDEXD_REQUIRE_CODEX"
NEWEST_ONLY_ENV = "CODEX_INDEXD_E2E_NEWEST_ONLY"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test collected from tests/e2e with ``e2e``."""
    for item in items:
        if E2E_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


def _codex_version(binary: Path) -> str:
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.strip().rsplit(" ", 1)[-1] or "unknown"


def _version_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (-1,)


@functools.cache
def codex_versions() -> tuple[tuple[str, Path], ...]:
    """Return (version, binary) pairs to test, oldest first; () when there is no Codex."""
    chosen = os.environ.get("CODEX_BIN")
    if chosen:
        binary = Path(chosen).expanduser()
        return ((_codex_version(binary), binary),) if os.access(binary, os.X_OK) else ()
    pinned = [(v, b) for v, b in PINNED_CODEX.items() if os.access(b, os.X_OK)]
    if not pinned:
        found = find_codex_binary()
        pinned = [(_codex_version(found), found)] if found is not None else []
    return tuple(sorted(pinned, key=lambda pair: _version_key(pair[0])))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each test that uses Codex once per version it should see, named by the version."""
    if "codex_bin" not in metafunc.fixturenames:
        return
    versions = list(codex_versions())
    if os.environ.get(NEWEST_ONLY_ENV):
        versions = versions[-1:]
    params: list[tuple[str, Path | None]] = [(v, b) for v, b in versions] or [("none", None)]
    metafunc.parametrize(
        "codex_bin",
        params,
        ids=[f"codex-{v}" for v, _ in params],
        indirect=True,
        scope="session",
    )


@pytest.fixture(scope="session")
def codex_bin(request: pytest.FixtureRequest) -> Iterator[Path]:
    """This test's Codex CLI binary (also ``$CODEX_BIN`` for helpers that look it up).

    Skips (or fails under ``CODEX_INDEXD_REQUIRE_CODEX``) when there is none.
    """
    _, binary = getattr(request, "param", ("none", None))
    if binary is None:
        reason = (
            "Codex CLI not found (set CODEX_BIN, or `npm install --prefix tests/e2e` for the "
            f"pinned {', '.join(PINNED_CODEX)})"
        )
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{REQUIRE_ENV} is set but {reason}", pytrace=False)
        pytest.skip(reason)
    previous = os.environ.get("CODEX_BIN")
    os.environ["CODEX_BIN"] = str(binary)
    try:
        yield Path(binary)
    finally:
        if previous is None:
            os.environ.pop("CODEX_BIN", None)
        else:
            os.environ["CODEX_BIN"] = previous


@pytest.fixture(scope="session")
def codex_version(codex_bin: Path) -> tuple[int, int, int]:
    """The version of this test's Codex, e.g. (0, 171, 0)."""
    parts = _version_key(_codex_version(codex_bin))
    if parts == (-1,):
        return (0, 0, 0)
    major, minor, patch = (*parts, 0, 0, 0)[:3]
    return major, minor, patch


@pytest.fixture(scope="session")
def tmux_bin() -> Path:
    """tmux for TUI tests; skip (or fail under ``CODEX_INDEXD_REQUIRE_CODEX``) if absent."""
    binary = find_tmux_binary()
    if binary is None:
        reason = "tmux not found (apt-get install tmux) - needed to drive the Codex TUI"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{REQUIRE_ENV} is set but {reason}", pytrace=False)
        pytest.skip(reason)
    return binary


@pytest.fixture
def mock_server() -> Iterator[MockResponsesServer]:
    """A running mock Responses API server on 127.0.0.1 (fresh per test)."""
    with MockResponsesServer() as server:
        yield server


@pytest.fixture
def codex_home(tmp_path: Path, mock_server: MockResponsesServer, codex_bin: Path) -> Iterator[Path]:
    """A fresh offline ``CODEX_HOME`` under ``tmp_path``; stops any managed daemon after."""
    home = make_codex_home(tmp_path / "codex-home", mock_server)
    try:
        yield home
    finally:
        stop_managed_daemon(home, codex_bin=codex_bin)
