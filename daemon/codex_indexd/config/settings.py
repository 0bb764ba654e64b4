"""Our configuration: CLI, then environment, then the TOML file, then defaults.

Every setting knows where its value came from, for `codex-indexd config show`. A bad key or
value raises ConfigError naming the key and its line in the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from codex_indexd.codex.home import default_codex_home
from codex_indexd.config import values as parsers
from codex_indexd.records import field, record, replace
from codex_indexd.store import dirs


class ConfigError(Exception):
    """A bad configuration; the message names the key and, for the file, the line."""


@record(frozen=True, slots=True)
class Spec:
    key: str  # dotted: table.key
    default: Any
    parse: Callable[[Any], Any]
    env: str | None
    help: str


SPECS: tuple[Spec, ...] = (
    Spec("homes", None, parsers.homes, "CODEX_HOME", "Codex homes to watch"),
    Spec(
        "log_level",
        "info",
        parsers.choice("debug", "info", "warning", "error"),
        "CODEX_INDEXD_LOG_LEVEL",
        "log level",
    ),
    Spec(
        "watch.debounce_ms",
        300,
        parsers.whole(0, 60_000, "milliseconds"),
        "CODEX_INDEXD_DEBOUNCE_MS",
        "quiet period before a flush",
    ),
    Spec(
        "watch.max_delay_ms",
        2000,
        parsers.whole(0, 600_000, "milliseconds"),
        "CODEX_INDEXD_MAX_DELAY_MS",
        "latest flush after a burst starts",
    ),
    Spec(
        "watch.poll",
        False,
        parsers.boolean,
        "CODEX_INDEXD_POLL",
        "poll instead of inotify/FSEvents",
    ),
    Spec(
        "watch.poll_interval_s",
        2.0,
        parsers.seconds(0.1, 3600.0),
        "CODEX_INDEXD_POLL_INTERVAL_S",
        "polling interval",
    ),
    Spec(
        "watch.reconcile_interval_s",
        600.0,
        parsers.seconds(1.0, 7 * 86400.0),
        "CODEX_INDEXD_RECONCILE_INTERVAL_S",
        "full reconcile period",
    ),
    Spec(
        "policy.max_threads",
        0,
        parsers.whole(0, 10_000_000, "threads"),
        "CODEX_INDEXD_MAX_THREADS",
        "threads restored (0 = all)",
    ),
    Spec(
        "policy.include_orphans",
        True,
        parsers.boolean,
        "CODEX_INDEXD_INCLUDE_ORPHANS",
        "restore rollouts without a DB row",
    ),
    Spec(
        "policy.history_sources",
        "all",
        parsers.sources,
        "CODEX_INDEXD_HISTORY_SOURCES",
        "sources whose turns go to history",
    ),
    Spec(
        "backups.keep_count",
        20,
        parsers.whole(0, 10_000, "backups"),
        "CODEX_INDEXD_BACKUP_KEEP_COUNT",
        "backups kept per file",
    ),
    Spec(
        "backups.keep_mb",
        256,
        parsers.whole(0, 1_000_000, "megabytes"),
        "CODEX_INDEXD_BACKUP_KEEP_MB",
        "backup megabytes kept per file",
    ),
    Spec(
        "codex_api.mode",
        "auto",
        parsers.choice("auto", "off"),
        "CODEX_INDEXD_CODEX_API",
        "heal the DB through codex app-server",
    ),
    Spec(
        "codex_api.binary",
        "",
        parsers.text,
        "CODEX_INDEXD_CODEX_BIN",
        "codex binary (default: PATH)",
    ),
)
_BY_KEY = {spec.key: spec for spec in SPECS}


@record(frozen=True, slots=True)
class WatchSettings:
    """`[watch]`: how events are batched and how files are watched."""

    debounce_ms: int
    max_delay_ms: int
    poll: bool
    poll_interval_s: float
    reconcile_interval_s: float


@record(frozen=True, slots=True)
class PolicySettings:
    """`[policy]`: which threads are restored and whose turns go to history."""

    max_threads: int
    include_orphans: bool
    history_sources: frozenset[str] | None  # None: every source


@record(frozen=True, slots=True)
class BackupSettings:
    """`[backups]`: how many backups of each index file are kept."""

    keep_count: int
    keep_mb: int


@record(frozen=True, slots=True)
class CodexApiSettings:
    """`[codex_api]`: whether and with which binary Codex's app-server heals its DB."""

    mode: str  # "auto" or "off"
    binary: str  # "" for `codex` on PATH


@record(frozen=True, slots=True)
class Settings:
    """Resolved values and where each came from (`default`, `file:LINE`, `env:NAME`, `cli`)."""

    home_paths: tuple[Path, ...]
    log_level: str
    watch: WatchSettings
    policy: PolicySettings
    backups: BackupSettings
    codex_api: CodexApiSettings
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    file: Path | None = None
    # Keys the config file sets whose value the environment or command line replaced, with
    # the file's source (`file:LINE`): e.g. `homes` under a service pinned with --codex-home.
    shadowed: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def homes(self) -> list[Path]:
        """The Codex homes, as a fresh list."""
        return list(self.home_paths)

    def with_homes(self, homes: Iterable[Path]) -> Settings:
        """Return these settings with `homes` instead (their sources unchanged)."""
        return replace(self, home_paths=tuple(homes))

    def value(self, key: str) -> object:
        """Return the value of the dotted `key` (`watch.debounce_ms`); raises KeyError."""
        if key not in _BY_KEY:
            raise KeyError(key)
        if key == "homes":
            return self.homes
        found: object = self
        for part in key.split("."):
            found = getattr(found, part)
        return found


def _build(
    values: Mapping[str, Any],
    sources: Mapping[str, str],
    file: Path | None,
    shadowed: Mapping[str, str] | None = None,
) -> Settings:
    """Return the Settings of parsed `values` keyed by dotted key."""
    return Settings(
        home_paths=tuple(values["homes"]),
        log_level=values["log_level"],
        watch=WatchSettings(
            debounce_ms=values["watch.debounce_ms"],
            max_delay_ms=values["watch.max_delay_ms"],
            poll=values["watch.poll"],
            poll_interval_s=values["watch.poll_interval_s"],
            reconcile_interval_s=values["watch.reconcile_interval_s"],
        ),
        policy=PolicySettings(
            max_threads=values["policy.max_threads"],
            include_orphans=values["policy.include_orphans"],
            history_sources=values["policy.history_sources"],
        ),
        backups=BackupSettings(
            keep_count=values["backups.keep_count"], keep_mb=values["backups.keep_mb"]
        ),
        codex_api=CodexApiSettings(
            mode=values["codex_api.mode"], binary=values["codex_api.binary"]
        ),
        sources=MappingProxyType(dict(sources)),
        file=file,
        shadowed=MappingProxyType(dict(shadowed or {})),
    )


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted not in _BY_KEY:
            out.update(_flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def line_of(text: str, dotted: str) -> int | None:
    """Return the 1-based line where `dotted` is set in TOML `text` (best effort)."""
    table, _, key = dotted.rpartition(".")
    current = ""
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for number, raw in enumerate(text.splitlines(), 1):
        header = re.match(r"^\s*\[([^\]]+)\]\s*(#.*)?$", raw)
        if header:
            current = header.group(1).strip()
            continue
        if current == table and pattern.match(raw):
            return number
    return None


def load(
    cli: Mapping[str, Any] | None = None,
    *,
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve the settings. Raises ConfigError."""
    env = os.environ if environ is None else environ
    file_path = path or dirs.config_file()
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    file_values: dict[str, Any] = {}
    text = ""
    if file_path.exists():
        import tomllib

        try:
            text = file_path.read_text(encoding="utf-8")
            file_values = _flatten(tomllib.loads(text))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file_path}: {exc}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file_path}: cannot read: {exc}") from exc
    for key in file_values:
        if key not in _BY_KEY:
            where = line_of(text, key)
            hint = parsers.did_you_mean(key, _BY_KEY)
            raise ConfigError(f"{file_path}:{where or '?'}: unknown key '{key}'{hint}")
    shadowed: dict[str, str] = {}
    for spec in SPECS:
        raw: Any = spec.default
        source = "default"
        if spec.key in file_values:
            raw, source = file_values[spec.key], f"file:{line_of(text, spec.key) or '?'}"
            shadowed[spec.key] = source
        if spec.env and env.get(spec.env):
            raw, source = env[spec.env], f"env:{spec.env}"
        if cli and cli.get(spec.key) is not None:
            raw, source = cli[spec.key], "cli"
        if spec.key == "homes" and raw is None:
            raw, source = [str(default_codex_home())], "default"
        try:
            value = spec.parse(raw)
        except (ValueError, TypeError) as exc:
            location = (
                f"{file_path}:{source.removeprefix('file:')}"
                if source.startswith("file:")
                else source
            )
            raise ConfigError(f"{location}: {spec.key} {exc}") from exc
        values[spec.key] = value
        sources[spec.key] = source
        if source.startswith("file:"):
            shadowed.pop(spec.key, None)
    return _build(values, sources, file_path, shadowed)


def typed(value: Any) -> Any:
    """Return a resolved value as JSON has it: paths as strings, sets as sorted lists,
    "all" for no source filter."""
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, frozenset):
        return sorted(value)
    if value is None:
        return "all"
    return value


def shown(value: Any) -> str:
    """Return a resolved value as the config file would spell it (true, 300, "info")."""
    value = typed(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(value)
    return str(value)


def describe(settings: Settings) -> list[tuple[str, str, str]]:
    """Return `(key, value, source)` rows for `config show`."""
    return [
        (spec.key, shown(settings.value(spec.key)), settings.sources[spec.key]) for spec in SPECS
    ]


# Environment variables read outside the settings above (where our own files go).
PATH_VARIABLES: tuple[tuple[str, str], ...] = (
    ("CODEX_INDEXD_CONFIG", "the config file"),
    ("CODEX_INDEXD_STATE_DIR", "locks, journals, backups, status files"),
    ("CODEX_INDEXD_CACHE_DIR", "checkpoints"),
    ("CODEX_INDEXD_LOG_DIR", "the JSON log that `codex-indexd logs` reads"),
)

# Environment variables nobody needs to set: codex-indexd sets the first itself, the
# crash tests set the others.
INTERNAL_VARIABLES: tuple[tuple[str, str], ...] = (
    ("CODEX_INDEXD_STARTED_BY", "set by `service install` on a background daemon (for status)"),
    ("CODEX_INDEXD_CRASH_AT", "tests only: kill the process at the k-th write step"),
    ("CODEX_INDEXD_CRASH_TRACE", "tests only: append the write steps' names to this file"),
    ("CODEX_INDEXD_CRASH_CHUNK", "tests only: write in chunks of this many bytes"),
)
