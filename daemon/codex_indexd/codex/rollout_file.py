"""Reading one rollout file from disk into a `RolloutScan`: plain or `.jsonl.zst` (with the
`zstandard` module, else the `zstd` binary), and one user turn read back by its offset."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from codex_indexd.codex.rollout import RolloutScan
from codex_indexd.codex.rollout_fd import ReadInto, fd_pread, fd_reader, open_rollout
from codex_indexd.codex.scan import CHUNK, MIN_CHUNK, feed_stream
from codex_indexd.index.model import RolloutFacts, UserTurn
from codex_indexd.log import get_logger

log = get_logger("codex_indexd.rollout")
_META_SCAN_LINES = 5  # Codex accepts a few junk lines before `session_meta`
_META_MAX_BYTES = 1 << 20


def scan_file(scan: RolloutScan, path: Path) -> RolloutScan:
    """Feed `scan` with the complete lines of `path` after `scan.offset`; return the scan.

    Only regular files are read (a link is followed only to one), never past the size seen
    at open. Compressed rollouts are read whole into a fresh scan. Raises NotRegularFile
    (an OSError) for anything else, OSError when the file cannot be opened or read.
    """
    return scan_file_sized(scan, path)[0]


def scan_file_sized(scan: RolloutScan, path: Path | str) -> tuple[RolloutScan, int]:
    """`scan_file`, and the file's size seen at open (what was read up to). Raises as
    `scan_file` does."""
    if str(path).endswith(".zst"):
        fresh = _scan_zst(scan, path)
        return fresh, fresh.offset
    fd, size = open_rollout(path)
    try:
        if size > scan.offset:
            # A buffer no larger than what is left to read (a tail, a small rollout): a
            # fresh 1 MiB buffer per file was most of a cold start's cost on many small files.
            chunk = max(MIN_CHUNK, min(CHUNK, size - scan.offset + 1))
            feed_stream(
                scan, fd_reader(fd, scan.offset, size), chunk=chunk, pread=fd_pread(fd, size)
            )
    finally:
        os.close(fd)
    return scan, size


def read_turn(fd: int, offset: int, expected_id: str | None) -> UserTurn | None:
    """Return the user turn (with its text) of the line at `offset` of an uncompressed
    rollout open as `fd`, or None when that line is not a user turn any more. Raises
    OSError."""
    scan = RolloutScan(RolloutFacts(thread_id=expected_id or "", path=""))
    scan.expected_id, scan.offset, scan.lines = expected_id, offset, 1
    size = os.fstat(fd).st_size
    reader = fd_reader(fd, offset, size)
    stop = _StopAfterFirstLine(reader)
    feed_stream(scan, stop, chunk=MIN_CHUNK, pread=fd_pread(fd, size))
    turns = scan.facts.user_turns  # lines after the first one may have been fed too
    return turns[0] if turns and turns[0].offset == offset else None


class _StopAfterFirstLine:
    """A reader that ends the stream once a newline has been delivered."""

    def __init__(self, reader: ReadInto) -> None:
        self.reader = reader
        self.done = False

    def __call__(self, view: memoryview) -> int:
        if self.done:
            return 0
        got = self.reader(view)
        if view[:got].tobytes().find(b"\n") != -1:
            self.done = True
        return got


def _scan_zst(scan: RolloutScan, path: Path | str) -> RolloutScan:
    """Decompress a `.jsonl.zst` rollout as a stream (compressed rollouts are never appended)."""
    fresh = RolloutScan.start(path, archived=scan.facts.archived)
    fresh.keep_text = scan.keep_text
    fresh.facts.path = scan.facts.path
    fd, size = open_rollout(path)
    try:
        _decompress_into(fresh, fd, path)
    finally:
        os.close(fd)
    fresh.offset = size
    return fresh


def _decompress_into(scan: RolloutScan, fd: int, path: Path | str) -> None:
    try:
        import zstandard
    except ImportError:
        _decompress_with_binary(scan, fd, path)
        return
    with os.fdopen(os.dup(fd), "rb", buffering=0) as raw:
        try:
            with zstandard.ZstdDecompressor().stream_reader(raw) as stream:
                feed_stream(scan, stream.readinto)
        except zstandard.ZstdError as exc:
            raise OSError(f"{path}: {exc}") from exc


def _decompress_with_binary(scan: RolloutScan, fd: int, path: Path | str) -> None:
    import shutil
    import subprocess

    binary = shutil.which("zstd")
    if binary is None:
        raise OSError(f"{path}: neither the zstandard module nor a zstd binary")
    with subprocess.Popen(
        [binary, "-dcq"], stdin=fd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    ) as proc:
        assert proc.stdout is not None
        with os.fdopen(proc.stdout.fileno(), "rb", buffering=0, closefd=False) as out:
            feed_stream(scan, out.readinto)
        proc.stdout.close()
    if proc.returncode != 0:
        raise OSError(f"{path}: zstd exited with {proc.returncode}")


def session_meta(path: str) -> dict[str, Any]:
    """Return the `session_meta` payload of a plain rollout (first few lines), or {}."""
    if path.endswith(".zst"):
        return {}
    try:
        with open(path, "rb") as fh:
            for _ in range(_META_SCAN_LINES):
                raw = fh.readline(_META_MAX_BYTES)
                if not raw:
                    break
                try:
                    obj = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(obj, dict) and obj.get("type") == "session_meta":
                    payload = obj.get("payload")
                    return payload if isinstance(payload, dict) else {}
    except OSError:
        pass
    return {}
