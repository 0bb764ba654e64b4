"""Our own directories (platformdirs), and a stable per-home key inside them."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import platformdirs

APP = "codex-indexd"


def _dir(env: str, default: Callable[[str], str]) -> Path:
    override = os.environ.get(env)
    return Path(override).expanduser() if override else Path(default(APP))


def state_dir() -> Path:
    """Locks, journals, backups, the daemon's status file. `CODEX_INDEXD_STATE_DIR` overrides."""
    return _dir("CODEX_INDEXD_STATE_DIR", platformdirs.user_state_dir)


def cache_dir() -> Path:
    """Checkpoints (rollout offsets and facts). `CODEX_INDEXD_CACHE_DIR` overrides."""
    return _dir("CODEX_INDEXD_CACHE_DIR", platformdirs.user_cache_dir)


def log_dir() -> Path:
    """The JSON log. `CODEX_INDEXD_LOG_DIR` overrides."""
    return _dir("CODEX_INDEXD_LOG_DIR", platformdirs.user_log_dir)


def config_file() -> Path:
    """Our TOML config. `CODEX_INDEXD_CONFIG` overrides."""
    override = os.environ.get("CODEX_INDEXD_CONFIG")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir(APP)) / "config.toml"


def home_key(codex_home: Path) -> str:
    """Return a short stable key for a Codex home, used to name our per-home files."""
    digest = hashlib.sha256(str(codex_home.absolute()).encode("utf-8")).hexdigest()[:12]
    return f"{codex_home.name or 'root'}-{digest}"


def private_dir(path: Path) -> Path:
    """Create `path` (0700) if needed and return it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
