"""Where things are in a `CODEX_HOME`, and the parts of Codex's `config.toml` we obey."""

from __future__ import annotations

import _thread
import errno
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from codex_indexd.log import get_logger
from codex_indexd.records import record

log = get_logger("codex_indexd.home")

_STATE_DB_RE = re.compile(r"^state_(\d+)\.sqlite$")
_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
# Directories deeper than this below sessions/ or archived_sessions/ are neither listed nor
# watched (Codex writes at depth 3: YYYY/MM/DD). Walks stop there with one warning per tree.
MAX_TREE_DEPTH = 64
_reported_too_deep: set[str] = set()  # logged once per process
# Walks and watcher threads report alike. `threading.Lock` is this type; `repair` has no
# other use for `threading`.
_reported_lock = _thread.allocate_lock()


def is_rollout_name(name: str) -> bool:
    """Return True for `rollout-….jsonl` / `rollout-….jsonl.zst` (hidden temp files are not)."""
    return name.startswith("rollout-") and name.endswith((".jsonl", ".jsonl.zst"))


def thread_id_from_name(name: str) -> str | None:
    """Return the thread uuid at the end of a rollout file name, or None."""
    stem = name.removesuffix(".zst").removesuffix(".jsonl")
    match = _UUID_RE.search(stem)
    if match is None:
        return None
    return sys.intern(match.group(0).lower())  # the canonical form `uuid.UUID` would print


def note_too_deep(path: str) -> None:
    """Log one line naming the too-deep directory `path`, the first time any walk or watch
    meets it."""
    with _reported_lock:
        if path in _reported_too_deep:
            return
        _reported_too_deep.add(path)
    log.warning(
        "rollout.tree_too_deep",
        path=path,
        limit=MAX_TREE_DEPTH,
        effect="not listed or watched from here down; the rest of the home is served",
    )


@record(frozen=True, slots=True)
class CodexConfig:
    """The keys of Codex's `config.toml` that matter to the indexes."""

    history_persistence: str = "save-all"
    history_max_bytes: int | None = None
    sqlite_home: Path | None = None
    model_provider: str = "openai"


def default_codex_home() -> Path:
    """Return `$CODEX_HOME` or `~/.codex`."""
    env = os.environ.get("CODEX_HOME")
    return Path(env).expanduser() if env else Path.home() / ".codex"


def read_codex_config(path: Path) -> CodexConfig:
    """Return the relevant settings of a Codex `config.toml`; defaults when absent or bad."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return CodexConfig()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        log.warning("codex_config.unreadable", path=str(path), error=str(exc))
        return CodexConfig()
    history = data.get("history")
    persistence = "save-all"
    max_bytes: int | None = None
    if isinstance(history, dict):
        if isinstance(history.get("persistence"), str):
            persistence = history["persistence"]
        value = history.get("max_bytes")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            max_bytes = value
    sqlite_home = data.get("sqlite_home")
    provider = data.get("model_provider")
    return CodexConfig(
        model_provider=provider if isinstance(provider, str) and provider else "openai",
        history_persistence=persistence,
        history_max_bytes=max_bytes,
        sqlite_home=Path(sqlite_home).expanduser() if isinstance(sqlite_home, str) else None,
    )


@record(frozen=True, slots=True)
class CodexHome:
    """Paths inside one Codex home."""

    root: Path

    @classmethod
    def at(cls, path: Path | str | None) -> CodexHome:
        """Return the home at `path` (or the default one), made absolute."""
        base = Path(path).expanduser() if path is not None else default_codex_home()
        return cls(base.absolute())

    @property
    def sessions(self) -> Path:
        return self.root / "sessions"

    @property
    def archived_sessions(self) -> Path:
        return self.root / "archived_sessions"

    @property
    def session_index(self) -> Path:
        return self.root / "session_index.jsonl"

    @property
    def session_index_lock(self) -> Path:
        return self.root / "session_index.jsonl.lock"

    @property
    def history(self) -> Path:
        return self.root / "history.jsonl"

    @property
    def config_toml(self) -> Path:
        return self.root / "config.toml"

    def config(self) -> CodexConfig:
        return read_codex_config(self.config_toml)

    def sqlite_home(self, config: CodexConfig | None = None) -> Path:
        """Return where the state DB lives: `sqlite_home`, `$CODEX_SQLITE_HOME`, or the home."""
        cfg = config or self.config()
        if cfg.sqlite_home is not None:
            return cfg.sqlite_home
        env = os.environ.get("CODEX_SQLITE_HOME")
        return Path(env).expanduser() if env else self.root

    def state_db(self, config: CodexConfig | None = None) -> Path | None:
        """Return the `state_<N>.sqlite` with the highest N, or None when there is none."""
        directory = self.sqlite_home(config)
        best: tuple[int, Path] | None = None
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return None
        for entry in entries:
            match = _STATE_DB_RE.match(entry.name)
            if match and (best is None or int(match.group(1)) > best[0]):
                best = (int(match.group(1)), Path(entry.path))
        return None if best is None else best[1]


def iter_rollout_paths(root: Path) -> Iterator[Path]:
    """Yield rollout files under `root`, down to MAX_TREE_DEPTH directories, not following
    symlinked directories.

    A plain `.jsonl` wins over its `.jsonl.zst` twin. Unreadable directories are logged, and
    so is the first directory too deep to be listed.
    """
    for entry in iter_rollout_entries(root):
        yield Path(entry.path)


def iter_rollout_entries(root: Path, *, quiet: bool = False) -> Iterator[os.DirEntry[str]]:
    """Like `iter_rollout_paths`, as directory entries (their `stat()` is cached). The walk is
    iterative: no depth costs stack. With `quiet`, what would be logged (a directory that
    cannot be listed, one too deep) raises OSError instead."""
    stack = [(str(root), 0)]
    too_deep: str | None = None
    while stack:
        directory, depth = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if quiet:
                raise
            log.warning("rollout.dir_unreadable", path=directory, error=str(exc))
            continue
        names = {entry.name for entry in entries}
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                if depth < MAX_TREE_DEPTH:
                    stack.append((entry.path, depth + 1))
                elif quiet:
                    raise OSError(errno.ELOOP, "directory too deep", entry.path)
                elif too_deep is None:
                    too_deep = entry.path
                continue
            name = entry.name
            if not is_rollout_name(name):
                continue
            if name.endswith(".zst") and name[: -len(".zst")] in names:
                continue
            yield entry
    if too_deep is not None:
        note_too_deep(too_deep)
