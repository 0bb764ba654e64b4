"""Our own directories (platformdirs, or the `CODEX_INDEXD_*_DIR` overrides) and the start-up
check that those directories are ours."""

from __future__ import annotations

import os
import stat
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


STATE_SUBDIRS = ("status", "locks", "journal", "backups", "heal")


def private_dir(path: Path) -> Path:
    """Create `path` if needed, and any missing parent, each 0700; return it."""
    missing: list[Path] = []
    current = path
    while not current.is_dir() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            if not directory.is_dir():
                raise
    return path


class UnsafeOwnDir(OSError):
    """A directory of ours belongs to another user, is not a directory, or holds entries
    another user put there while it was open to them; the message says which and what to do."""


def _ours(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeOwnDir(f"{path} should be a directory of codex-indexd's but is not; remove it")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise UnsafeOwnDir(
            f"{path} belongs to uid {st.st_uid}, not to us (uid {os.getuid()}); another user "
            "could read or redirect what codex-indexd writes there. Remove it (or set "
            "CODEX_INDEXD_STATE_DIR / _CACHE_DIR / _LOG_DIR to a directory of yours)"
        )


def secure_dir(path: Path) -> str | None:
    """Make sure `path` is a directory of ours that only we can enter: create it 0700, or
    tighten our own directory's mode to 0700 (then every entry in it must be ours too).
    Return what was fixed, in words, or None. Raises UnsafeOwnDir, OSError."""
    private_dir(path)
    st = os.stat(path)
    _ours(path, st)
    if st.st_mode & 0o077 == 0:
        return None
    os.chmod(path, 0o700)
    for entry in os.scandir(path):
        owner = entry.stat(follow_symlinks=False).st_uid
        if hasattr(os, "getuid") and owner != os.getuid():
            raise UnsafeOwnDir(
                f"{entry.path} belongs to uid {owner}: it was put into {path} while that "
                f"directory was open to others (mode {stat.S_IMODE(st.st_mode):o}); remove it"
            )
    return f"{path} had mode {stat.S_IMODE(st.st_mode):o}; now 700"


def secure_own_dirs() -> list[str]:
    """Check (creating them 0700) the state, cache and log directories and the state's
    subdirectories; return what was fixed. Raises UnsafeOwnDir with a sentence naming the
    directory and what to do, OSError."""
    fixed: list[str] = []
    state = state_dir()
    for path in (state, *(state / sub for sub in STATE_SUBDIRS), cache_dir(), log_dir()):
        note = secure_dir(path)
        if note is not None:
            fixed.append(note)
    return fixed
