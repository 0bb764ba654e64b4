from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Keep our state, cache, log and config dirs inside the test's temp dir."""
    base = tmp_path / "indexd"
    monkeypatch.setenv("CODEX_INDEXD_STATE_DIR", str(base / "state"))
    monkeypatch.setenv("CODEX_INDEXD_CACHE_DIR", str(base / "cache"))
    monkeypatch.setenv("CODEX_INDEXD_LOG_DIR", str(base / "log"))
    monkeypatch.setenv("CODEX_INDEXD_CONFIG", str(base / "config.toml"))
    monkeypatch.delenv("CODEX_HOME", raising=False)
    monkeypatch.delenv("CODEX_SQLITE_HOME", raising=False)
    yield base
