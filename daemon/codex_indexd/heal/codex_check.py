"""Which Codex binary healing can use: the mode, the binary (configured or on PATH), the
capabilities its app-server protocol schema offers, and what to tell the user when none fits."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping

from codex_indexd.heal.capability import (
    NEEDED,
    OPTIONAL,
    BinaryKey,
    Capabilities,
    binary_key,
    probe,
)
from codex_indexd.heal.child import AppServerError, run_version
from codex_indexd.records import record

MODES = ("auto", "off")
TESTED_VERSIONS: tuple[tuple[int, int, int], ...] = ((0, 169, 0), (0, 171, 0))
"""Codex releases healing was run against end to end. Information only: whether healing runs
is decided by what the binary's protocol schema offers (`capability.NEEDED`)."""
SOURCE_KINDS = (
    "cli",
    "vscode",
    "exec",
    "appServer",
    "subAgent",
    "subAgentReview",
    "subAgentCompact",
    "subAgentThreadSpawn",
    "subAgentOther",
    "unknown",
)
"""The `thread/list` source kinds when a schema names none (Codex 0.169 and 0.171 list these)."""
VERSION_TIMEOUT_S = 10.0

_ENABLE_TAIL = "then run 'codex-indexd repair --heal-db' (the daemon heals by itself)."
HINT_OFF = (
    'Healing is off: set mode = "auto" under [codex_api] in the codex-indexd config '
    f"(or CODEX_INDEXD_CODEX_API=auto) with Codex CLI on PATH, {_ENABLE_TAIL}"
)
HINT_NO_BINARY = (
    "Install Codex CLI (npm install -g @openai/codex) so that 'codex' is on PATH, or set binary = "
    '"/path/to/codex" under [codex_api] in the codex-indexd config '
    f"(or CODEX_INDEXD_CODEX_BIN), {_ENABLE_TAIL}"
)
HINT_CAPABILITY = (
    "Healing needs an app-server with these methods and parameters; point binary under "
    "[codex_api] (or CODEX_INDEXD_CODEX_BIN) at a Codex CLI that has them (the versions "
    f"tested are {{tested}}), {_ENABLE_TAIL}"
)


def shown_version(version: tuple[int, int, int]) -> str:
    return ".".join(str(part) for part in version)


def tested_versions_text() -> str:
    """The tested releases for people, e.g. `0.169.0, 0.171.0`."""
    return ", ".join(shown_version(v) for v in TESTED_VERSIONS)


def newer_than_tested(version: tuple[int, int, int]) -> bool:
    """True when `version` is newer than every release healing was tested with."""
    return version > max(TESTED_VERSIONS)


def newer_note(version: tuple[int, int, int]) -> str | None:
    """The information line for a Codex newer than the newest tested, else None."""
    if not newer_than_tested(version):
        return None
    tested = tested_versions_text()
    return f"Codex {shown_version(version)} is newer than the versions tested: {tested}"


_VERSION_CACHE: dict[BinaryKey, tuple[int, int, int]] = {}


@record(frozen=True, slots=True)
class CodexCheck:
    """Whether healing can run: the binary, its version, or why not and how to fix it."""

    usable: bool
    binary: str | None = None
    version: str | None = None
    reason: str | None = None
    hint: str = ""
    capabilities: Capabilities | None = None
    info: str | None = None  # e.g. the binary is newer than the versions tested

    @property
    def source_kinds(self) -> tuple[str, ...]:
        """The source kinds `thread/list` accepts (the schema's, else the known ones)."""
        kinds = self.capabilities.source_kinds if self.capabilities is not None else ()
        return kinds or SOURCE_KINDS

    @property
    def metadata_update(self) -> bool:
        """True when the app-server has `thread/metadata/update` (a per-thread row insert)."""
        caps = self.capabilities
        return caps is not None and caps.has(
            "thread/metadata/update", OPTIONAL["thread/metadata/update"]
        )


def _find_binary(binary: str | None, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """Return (path, None) or (None, why not)."""
    search_path = env.get("PATH", os.defpath)
    if binary:
        wanted = os.path.expanduser(binary)
        if os.sep in wanted:
            if os.path.isfile(wanted) and os.access(wanted, os.X_OK):
                return os.path.abspath(wanted), None
            return None, f"the configured codex binary {wanted} does not exist or is not executable"
        found = shutil.which(wanted, path=search_path)
        if found is None:
            return None, f"the configured codex binary {wanted!r} is not on PATH"
        return found, None
    found = shutil.which("codex", path=search_path)
    if found is None:
        return None, "no 'codex' binary on PATH"
    return found, None


def _version_of(path: str, env: Mapping[str, str], timeout_s: float) -> tuple[int, int, int] | None:
    key = binary_key(path)
    if key is not None and key in _VERSION_CACHE:
        return _VERSION_CACHE[key]
    version = run_version(path, env=env, timeout_s=timeout_s)
    if version is not None and key is not None:
        _VERSION_CACHE[key] = version
    return version


def check_codex(
    mode: str = "auto",
    binary: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = VERSION_TIMEOUT_S,
) -> CodexCheck:
    """Decide whether healing can use Codex: mode, binary (configured or PATH), capabilities.

    The binary's protocol schema must offer every method and parameter healing sends; its
    version only adds an information line when it is newer than the versions tested.
    """
    if mode not in MODES:
        raise ValueError(f"codex_api mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "off":
        return CodexCheck(False, reason="codex_api mode is off", hint=HINT_OFF)
    environ = os.environ if env is None else env
    path, why = _find_binary(binary, environ)
    if path is None:
        return CodexCheck(False, reason=why, hint=HINT_NO_BINARY)
    try:
        version = _version_of(path, environ, timeout_s)
        caps = probe(path, env=environ, timeout_s=max(timeout_s, 2 * VERSION_TIMEOUT_S))
    except AppServerError as exc:
        hint = (
            HINT_NO_BINARY
            if exc.kind == "spawn"
            else HINT_CAPABILITY.format(tested=tested_versions_text())
        )
        return CodexCheck(False, binary=path, reason=str(exc), hint=hint)
    shown = shown_version(version) if version is not None else None
    missing = caps.missing(NEEDED)
    if missing:
        named = f"Codex {shown}" if shown else "this Codex"
        return CodexCheck(
            False,
            binary=path,
            version=shown,
            capabilities=caps,
            hint=HINT_CAPABILITY.format(tested=tested_versions_text()),
            reason=f"{path} ({named}) has no {', '.join(missing)} in its app-server protocol",
        )
    info = newer_note(version) if version is not None else None
    return CodexCheck(True, binary=path, version=shown, capabilities=caps, info=info)
