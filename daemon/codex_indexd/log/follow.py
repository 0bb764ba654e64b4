"""Read the daemon's rotated JSON-lines log and follow it across rotation."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ("Follower", "read_lines", "rotated_files")


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
    names another inode, the handler has renamed our file to ``.1`` (after closing it, so it
    is complete): we drain it and move on to the next newer file of the rotation chain, one
    file at a time, until we reach the live file again; several rotations between two polls
    therefore lose nothing unless the handler already deleted the files. A live file that
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

    def _open(self, path: Path, expected: tuple[int, int] | None = None) -> bool:
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return False
        stat = os.fstat(handle.fileno())
        if expected is not None and (stat.st_dev, stat.st_ino) != expected:
            handle.close()  # renamed between listing and opening
            return False
        self.close()
        self._handle, self._ident, self._partial = handle, (stat.st_dev, stat.st_ino), b""
        return True

    def _read(self) -> list[str]:
        assert self._handle is not None
        data = self._partial + self._handle.read()
        *lines, self._partial = data.split(b"\n")
        return [_decode(line) for line in lines]

    def _chain(self) -> list[tuple[Path, tuple[int, int]]]:
        """Backups oldest first, then the live file, each with its current identity.

        Listing is not atomic: a rotation during it can show a newer file under an older
        name and hide one in between. Two equal listings in a row saw no rename, and a
        handler stopped mid-rotation still leaves the files in order.
        """
        chain = self._list_chain()
        for _ in range(50):
            again = self._list_chain()
            if again == chain:
                break
            chain = again
        return chain

    def _list_chain(self) -> list[tuple[Path, tuple[int, int]]]:
        chain = []
        for path in [*rotated_files(self.path), self.path]:
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                continue
            chain.append((path, (stat.st_dev, stat.st_ino)))
        return chain

    def _advance(self) -> bool:
        """Switch to the file rotated in right after ours; False if it cannot be found."""
        for _ in range(20):  # names shift while the handler is mid-rotation: look again
            chain = self._chain()
            idents = [ident for _, ident in chain]
            if self._ident not in idents:
                continue
            index = idents.index(self._ident)
            if index + 1 == len(chain):
                return False  # ours is the live file again (it was renamed back?)
            path, ident = chain[index + 1]
            if self._open(path, ident):
                return True
        return self._open(self.path)  # ours was deleted: resume at the live file

    def poll(self) -> list[str]:
        """Return the complete lines that appeared since the previous call."""
        if self._handle is None and not self._open(self.path):
            return []
        lines: list[str] = []
        while True:
            assert self._handle is not None
            lines += self._read()
            try:
                stat = os.stat(self.path)
            except FileNotFoundError:
                return lines  # between rename and re-create; stay on the old file
            if (stat.st_dev, stat.st_ino) == self._ident:
                if stat.st_size < self._handle.tell():
                    self._handle.seek(0)
                    self._partial = b""
                    lines += self._read()
                return lines
            lines += self._read()  # rotated away, hence complete: drain it
            if self._partial:
                lines.append(_decode(self._partial))
                self._partial = b""
            if not self._advance():
                return lines

    def rest(self) -> list[str]:
        """A trailing line without newline (the file is not being followed)."""
        rest, self._partial = self._partial, b""
        return [_decode(rest)] if rest else []
