"""Fixtures for end-to-end tests that drive the real Codex CLI offline.

The binary is found by :func:`codexkit.find_codex_binary`.  Without it the tests are
skipped, unless ``CODEX_INDEXD_REQUIRE_CODEX`` is set (CI), in which case they fail.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from codexkit import (
    CODEX_VERSION,
    MockResponsesServer,
    find_codex_binary,
    find_tmux_binary,
    make_codex_home,
    stop_managed_daemon,
)

E2E_DIR = Path(__file__).resolve().parent
REQUIRE_ENV = "CODEX_INDEXD_REQUIRE_CODEX"


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


@pytest.fixture(scope="session")
def codex_bin() -> Path:
    """The Codex CLI binary; skip (or fail under ``CODEX_INDEXD_REQUIRE_CODEX``) if absent."""
    binary = find_codex_binary()
    if binary is None:
        reason = (
            f"Codex CLI {CODEX_VERSION} not found (set CODEX_BIN, or "
            f"`npm install @openai/codex@{CODEX_VERSION}` into /opt/codex-npm)"
        )
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{REQUIRE_ENV} is set but {reason}", pytrace=False)
        pytest.skip(reason)
    version = _codex_version(binary)
    if version != CODEX_VERSION and os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{binary} is Codex {version}, expected {CODEX_VERSION}", pytrace=False)
    return binary


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
