"""Every file of ours for one Codex home (`OurFiles`): the one place their names are made."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from codex_indexd.records import record
from codex_indexd.store.dirs import APP, cache_dir, log_dir, state_dir


def home_key(codex_home: Path) -> str:
    """Return a short stable key for a Codex home, used to name our per-home files.

    It is computed from the home's real path, so a home reached through a symlink has the
    same key (and the same single-instance lock) as the home itself."""
    real = Path(os.path.realpath(codex_home.absolute()))
    digest = _sha256_hex(str(real).encode("utf-8", "surrogateescape"))[:12]
    return f"{real.name or 'root'}-{digest}"


def _sha256_hex(data: bytes) -> str:
    """Return the SHA-256 of `data` in hex, from the interpreter's own implementation where it
    has one: hashlib would load OpenSSL (3.4 MiB of the daemon's RSS) for the same digest."""
    try:
        module = importlib.import_module("_sha2" if sys.version_info >= (3, 12) else "_sha256")
    except ImportError:  # an interpreter built without its own hashes
        module = importlib.import_module("hashlib")
    digest: str = module.sha256(data).hexdigest()
    return digest


LOG_FILE_NAME = f"{APP}.log"


@record(frozen=True, slots=True)
class OurFiles:
    """Every file of ours for one Codex home, under the state, cache and log directories."""

    key: str
    state: Path
    cache: Path
    logs: Path

    @classmethod
    def for_home(cls, codex_home: Path) -> OurFiles:
        """Return the files of `codex_home`, honouring the `CODEX_INDEXD_*_DIR` overrides."""
        return cls(home_key(codex_home), state_dir(), cache_dir(), log_dir())

    @property
    def status(self) -> Path:
        """The daemon's status record, read by `codex-indexd status`."""
        return self.state / "status" / f"{self.key}.json"

    @property
    def instance_lock(self) -> Path:
        """The single-instance lock of the daemon on this home."""
        return self.state / "locks" / f"{self.key}.lock"

    @property
    def history_journal(self) -> Path:
        """The pre-image journal of our writes to `history.jsonl`."""
        return self.state / "journal" / f"{self.key}.history.journal"

    @property
    def index_journal(self) -> Path:
        """The pre-image journal of our appends to `session_index.jsonl`."""
        return self.state / "journal" / f"{self.key}.index.journal"

    @property
    def backups(self) -> Path:
        """The directory of this home's backups of the two index files."""
        return backups_root(self.state) / self.key

    @property
    def heal_attempts(self) -> Path:
        """The record of names sent to Codex's app-server (ids and name hashes)."""
        return self.state / "heal" / f"{self.key}.json"

    @property
    def checkpoint(self) -> Path:
        """The daemon's checkpoint (rollout offsets, facts, the last drift-free record)."""
        return self.cache / f"{self.key}.checkpoint.json"

    @property
    def log_file(self) -> Path:
        """The JSON log (shared by every home)."""
        return self.logs / LOG_FILE_NAME


def backups_root(state: Path | None = None) -> Path:
    """The directory holding one backup directory per home, under `state` (default: the
    state directory)."""
    return (state or state_dir()) / "backups"


def log_file() -> Path:
    """The JSON log the daemon writes and `codex-indexd logs` reads (shared by every home),
    under `CODEX_INDEXD_LOG_DIR` when set."""
    return log_dir() / LOG_FILE_NAME
