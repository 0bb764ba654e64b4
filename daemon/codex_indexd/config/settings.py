"""Our configuration: CLI, then environment, then the TOML file, then defaults.

Every setting knows where its value came from, for `codex-indexd config show`. A bad key or
value raises ConfigError naming the key and its line in the file.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codex_indexd.codex.home import default_codex_home
from codex_indexd.store import dirs


class ConfigError(Exception):
    """A bad configuration; the message names the key and, for the file, the line."""


@dataclass(frozen=True, slots=True)
class Spec:
    key: str  # dotted: table.key
    default: Any
    parse: Callable[[Any], Any]
    env: str | None
    help: str


def _bool(value: Any) -> bool:
    """Only TOML's true/false (and "true"/"false" from the environment)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise ValueError(f"must be true or false, got {value!r}")


def _int(minimum: int, maximum: int, unit: str) -> Callable[[Any], int]:
    """A whole number of `unit` in [minimum, maximum]; no booleans, no fractions."""

    def parse(value: Any) -> int:
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            number = int(value)
        if number is None:
            raise ValueError(f"must be a whole number of {unit}, got {value!r}")
        if not minimum <= number <= maximum:
            raise ValueError(f"must be between {minimum} and {maximum} {unit}, got {number}")
        return number

    return parse


def _seconds(minimum: float, maximum: float) -> Callable[[Any], float]:
    """A finite number of seconds in [minimum, maximum] (no nan, inf or booleans)."""

    def parse(value: Any) -> float:
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = None
        if number is None:
            raise ValueError(f"must be a number of seconds, got {value!r}")
        if not math.isfinite(number) or not minimum <= number <= maximum:
            raise ValueError(f"must be between {minimum:g} and {maximum:g} seconds, got {value!r}")
        return number

    return parse


def _choice(*options: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in options:
            hint = _did_you_mean(str(value), options)
            raise ValueError(f"must be one of {', '.join(options)}, got {value!r}{hint}")
        return str(value)

    return parse


def _did_you_mean(word: str, options: Iterable[str]) -> str:
    """Return " (did you mean 'x'?)" for the closest option, or ""."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {value!r}")
    return value


def _homes(value: Any) -> list[Path]:
    items = value.split(os.pathsep) if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i for i in items):
        raise ValueError("expected a non-empty list of paths")
    return [Path(item).expanduser().absolute() for item in items]


def _sources(value: Any) -> frozenset[str] | None:
    if value == "all":
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValueError('expected "all" or a list of source names like ["cli", "vscode", "exec"]')
    return frozenset(i.strip() for i in items if i.strip())


SPECS: tuple[Spec, ...] = (
    Spec("homes", None, _homes, "CODEX_HOME", "Codex homes to watch"),
    Spec(
        "log_level",
        "info",
        _choice("debug", "info", "warning", "error"),
        "CODEX_INDEXD_LOG_LEVEL",
        "log level",
    ),
    Spec(
        "watch.debounce_ms",
        300,
        _int(0, 60_000, "milliseconds"),
        "CODEX_INDEXD_DEBOUNCE_MS",
        "quiet period before a flush",
    ),
    Spec(
        "watch.max_delay_ms",
        2000,
        _int(0, 600_000, "milliseconds"),
        "CODEX_INDEXD_MAX_DELAY_MS",
        "latest flush after a burst starts",
    ),
    Spec("watch.poll", False, _bool, "CODEX_INDEXD_POLL", "poll instead of inotify/FSEvents"),
    Spec(
        "watch.poll_interval_s",
        2.0,
        _seconds(0.1, 3600.0),
        "CODEX_INDEXD_POLL_INTERVAL_S",
        "polling interval",
    ),
    Spec(
        "watch.reconcile_interval_s",
        600.0,
        _seconds(1.0, 7 * 86400.0),
        "CODEX_INDEXD_RECONCILE_INTERVAL_S",
        "full reconcile period",
    ),
    Spec(
        "policy.max_threads",
        0,
        _int(0, 10_000_000, "threads"),
        "CODEX_INDEXD_MAX_THREADS",
        "threads restored (0 = all)",
    ),
    Spec(
        "policy.include_orphans",
        True,
        _bool,
        "CODEX_INDEXD_INCLUDE_ORPHANS",
        "restore rollouts without a DB row",
    ),
    Spec(
        "policy.history_sources",
        "all",
        _sources,
        "CODEX_INDEXD_HISTORY_SOURCES",
        "sources whose turns go to history",
    ),
    Spec(
        "backups.keep_count",
        20,
        _int(0, 10_000, "backups"),
        "CODEX_INDEXD_BACKUP_KEEP_COUNT",
        "backups kept per file",
    ),
    Spec(
        "backups.keep_mb",
        256,
        _int(0, 1_000_000, "megabytes"),
        "CODEX_INDEXD_BACKUP_KEEP_MB",
        "backup megabytes kept per file",
    ),
    Spec(
        "codex_api.mode",
        "auto",
        _choice("auto", "off"),
        "CODEX_INDEXD_CODEX_API",
        "heal the DB through codex app-server",
    ),
    Spec("codex_api.binary", "", _text, "CODEX_INDEXD_CODEX_BIN", "codex binary (default: PATH)"),
)
_BY_KEY = {spec.key: spec for spec in SPECS}


@dataclass(slots=True)
class Settings:
    """Resolved values and where each came from (`default`, `file:LINE`, `env:NAME`, `cli`)."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    file: Path | None = None

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    @property
    def homes(self) -> list[Path]:
        return list(self.values["homes"])


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
    settings = Settings(file=file_path)
    file_values: dict[str, Any] = {}
    text = ""
    if file_path.exists():
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
            hint = _did_you_mean(key, _BY_KEY)
            raise ConfigError(f"{file_path}:{where or '?'}: unknown key '{key}'{hint}")
    for spec in SPECS:
        raw: Any = spec.default
        source = "default"
        if spec.key in file_values:
            raw, source = file_values[spec.key], f"file:{line_of(text, spec.key) or '?'}"
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
        settings.values[spec.key] = value
        settings.sources[spec.key] = source
    return settings


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
        (spec.key, shown(settings.values[spec.key]), settings.sources[spec.key]) for spec in SPECS
    ]


# Environment variables read outside the settings above (where our own files go, and
# test hooks are not listed).
PATH_VARIABLES: tuple[tuple[str, str], ...] = (
    ("CODEX_INDEXD_CONFIG", "the config file"),
    ("CODEX_INDEXD_STATE_DIR", "locks, journals, backups, status files"),
    ("CODEX_INDEXD_CACHE_DIR", "checkpoints"),
    ("CODEX_INDEXD_LOG_DIR", "the JSON log that `codex-indexd logs` reads"),
)
