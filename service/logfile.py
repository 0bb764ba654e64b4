"""Read the daemon's rotated JSON-lines log and follow it across rotation."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import platformdirs
from codex_indexd_service import APP

__all__ = ("Follower", "default_log_file", "read_lines", "rotated_files")


def default_log_file() -> Path:
    """``platformdirs.user_log_dir("codex-indexd")/codex-indexd.log``, as the daemon writes."""
    return Path(platformdirs.user_log_dir(APP)) / f"{APP}.log"


def rotated_files(base: Path) -> list[Path]:
    """RotatingFileHandler backups of *base*, oldest first (``.log.3``, ``.log.2``, ``.log.1``)."""
    pattern = re.compile(re.escape(base.name) + r"\.(\d+)")
    found: list[tuple[int, Path]] = []
    try:
        entries = list(base.parent.iterdir())
    except OSError:
        return []
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match and entry.is_file():
            found.append((int(match.group(1)), entry))
    return [path for _, path in sorted(found, reverse=True)]


def _decode(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r")


def read_lines(path: Path) -> Iterator[str]:
    """Lines of *path* without their newline; a vanished file yields nothing."""
    try:
        with path.open("rb") as handle:
            for line in handle:
                yield _decode(line.rstrip(b"\n"))
    except FileNotFoundError:
        return


class Follower:
    """Incremental reader of one path that survives rotation and truncation.

    Each :meth:`poll` returns the complete lines appended since the last one. When the path
    names a new inode (the handler renamed the old file to ``.1`` and opened a fresh one),
    the old file is drained first, then the new one is read from its start. A file that
    shrank below the read offset was truncated and is re-read from its start.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: BinaryIO | None = None
        self._ident: tuple[int, int] | None = None
        self._partial = b""

    def close(self) -> None:
        """Close the open file, if any."""
        if self._handle is not None:
            self._handle.close()
        self._handle = None
        self._ident = None

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _open(self) -> bool:
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return False
        stat = os.fstat(handle.fileno())
        self._handle, self._ident, self._partial = handle, (stat.st_dev, stat.st_ino), b""
        return True

    def _read(self) -> list[str]:
        assert self._handle is not None
        data = self._partial + self._handle.read()
        *lines, self._partial = data.split(b"\n")
        return [_decode(line) for line in lines]

    def poll(self) -> list[str]:
        """Return the complete lines that appeared since the previous call."""
        if self._handle is None and not self._open():
            return []
        lines = self._read()
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return lines  # between rename and re-create; keep the old file for now
        assert self._handle is not None
        if (stat.st_dev, stat.st_ino) != self._ident:
            lines += self._read()  # drain the rotated file before switching
            if self._partial:
                lines.append(_decode(self._partial))
            lines += self._skipped_backups()
            self.close()
            if self._open():
                lines += self._read()
        elif stat.st_size < self._handle.tell():
            self._handle.seek(0)
            self._partial = b""
            lines += self._read()
        return lines

    def _skipped_backups(self) -> list[str]:
        """Backups newer than the file we had open: it rotated more than once between polls."""
        backups = rotated_files(self.path)
        for index, path in enumerate(backups):
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                continue
            if (stat.st_dev, stat.st_ino) == self._ident:
                return [line for newer in backups[index + 1 :] for line in read_lines(newer)]
        return []

    def rest(self) -> list[str]:
        """A trailing line without newline (the file is not being followed)."""
        rest, self._partial = self._partial, b""
        return [_decode(rest)] if rest else []
