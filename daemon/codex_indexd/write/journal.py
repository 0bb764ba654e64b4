"""Pre-image journal for in-place writes (`history.jsonl`, index appends), and its recovery.

Before we change the file at byte `offset`, the journal stores the old tail (from `offset`)
and the new one, and a digest of the bytes before `offset`, durably. After a crash, `recover`
puts back the old tail, or keeps the new one when it was written completely, and in both cases
keeps every line Codex appended after the crash. It does so only while the bytes before
`offset` are still the ones the journal saw: when Codex rewrote the file since (its
`max_bytes` trim shifts every byte), the journal no longer describes it and is dropped
without touching the file. The file keeps its inode throughout.
"""

from __future__ import annotations

import json
import os

# hashlib.blake2b is this type; importing hashlib would also load OpenSSL (about 2 ms).
from _blake2 import blake2b
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from codex_indexd.index.history import EncodedLines
from codex_indexd.index.lines import parse_history_line
from codex_indexd.log import get_logger
from codex_indexd.records import record
from codex_indexd.write import crashpoints
from codex_indexd.write.atomic import temp_files, write_atomic
from codex_indexd.write.safety import fsync_dir, write_all

log = get_logger("codex_indexd.journal")
VERSION = 2
PREFIX_HEAD = 4096
PREFIX_TAIL = 1 << 16
PIECE = 1 << 20  # bytes of a tail copied at a time when the journal is written
# A tail to write: bytes, or history lines encoded piece by piece as they are written.
Tail = bytes | bytearray | EncodedLines


def prefix_digest(fd: int, offset: int) -> str:
    """Return a digest of the file's first 4 KiB and of the 64 KiB before `offset` (all of
    it when shorter), with `offset` itself: what a rewrite of the bytes before `offset`
    changes."""
    digest = blake2b(str(offset).encode(), digest_size=16)
    head = min(offset, PREFIX_HEAD)
    digest.update(os.pread(fd, head, 0))
    start = max(head, offset - PREFIX_TAIL)
    digest.update(os.pread(fd, offset - start, start))
    return digest.hexdigest()


@record(frozen=True, slots=True)
class JournalRecord:
    path: str
    dev: int
    ino: int
    offset: int
    old_tail: bytes
    new_tail: Tail  # bytes when read back from a journal
    prefix: str | None = None  # `prefix_digest` at `offset` when written; None: not checked


def write_journal(journal: Path, record: JournalRecord) -> None:
    """Write the record durably (temp file, fsync, rename, fsync of the directory), 0600.
    Raises UnsafeOwnDir when the journal's directory is not ours alone, OSError."""
    header = {
        "v": VERSION,
        "path": record.path,
        "dev": record.dev,
        "ino": record.ino,
        "offset": record.offset,
        "old_len": len(record.old_tail),
        "new_len": len(record.new_tail),
        "prefix": record.prefix,
    }
    write_atomic(
        journal,
        tail_pieces(json.dumps(header).encode() + b"\n", record.old_tail, record.new_tail),
        crash_points=True,
        before_sync=lambda: crashpoints.step("journal.written"),
    )
    crashpoints.step("journal.committed")


def tail_pieces(*parts: Tail) -> Iterator[bytes]:
    """Yield the bytes of `parts` in pieces of at most about PIECE bytes (a long tail is
    never copied, nor encoded, whole); a short bytes tail as it is."""
    for part in parts:
        if isinstance(part, EncodedLines):
            yield from part
        elif isinstance(part, bytes) and len(part) <= PIECE:
            yield part
        else:
            with memoryview(part) as view:
                for start in range(0, len(view), PIECE):
                    yield bytes(view[start : start + PIECE])


def _as_bytes(tail: Tail) -> bytes:
    """Return `tail` as bytes (a record read back from a journal holds bytes already)."""
    return tail if isinstance(tail, bytes) else b"".join(tail_pieces(tail))


def read_journal(journal: Path) -> JournalRecord | None:
    """Return the journal's record, or None when it is absent or unusable (logged)."""
    try:
        data = journal.read_bytes()
    except FileNotFoundError:
        return None
    newline = data.find(b"\n")
    try:
        header = json.loads(data[:newline])
        old_len, new_len = int(header["old_len"]), int(header["new_len"])
        body = data[newline + 1 :]
        if header.get("v") not in (1, VERSION) or len(body) != old_len + new_len or newline < 0:
            raise ValueError("length or version mismatch")
        prefix = header.get("prefix")
        return JournalRecord(
            str(header["path"]),
            int(header["dev"]),
            int(header["ino"]),
            int(header["offset"]),
            body[:old_len],
            body[old_len:],
            prefix if isinstance(prefix, str) else None,
        )
    except (ValueError, KeyError, TypeError) as exc:
        log.error("journal.unusable", journal=str(journal), error=str(exc))
        return None


def journal_left(journal: Path) -> bool:
    """Return True when `journal`, or a temp file of one a crash interrupted, exists."""
    return journal.exists() or bool(temp_files(journal))


def remove_journal(journal: Path) -> None:
    """Remove the journal and any temp file a crash left while writing it."""
    journal.unlink(missing_ok=True)
    for temp in temp_files(journal):
        temp.unlink(missing_ok=True)
    fsync_dir(journal.parent)
    crashpoints.step("journal.removed")


LineParser = Callable[[bytes], object | None]


def _salvage(line: bytes, parse: LineParser) -> bytes | None:
    """Return a valid line inside `line` (a torn line of ours may have Codex's glued on)."""
    if parse(line) is not None:
        return line
    start = line.rfind(b'{"')
    while start > 0:
        if parse(line[start:]) is not None:
            return line[start:]
        start = line.rfind(b'{"', 0, start)
    return None


def foreign_lines(
    found: bytes, record: JournalRecord, parse: LineParser = parse_history_line
) -> list[bytes]:
    """Return the complete lines in `found` that neither the old nor the new tail holds:
    lines another process appended after the crash."""
    new_tail = _as_bytes(record.new_tail)
    ours = Counter(record.old_tail.split(b"\n")) + Counter(new_tail.split(b"\n"))
    pieces = found.split(b"\n")
    if not found.endswith(b"\n"):
        pieces = pieces[:-1]  # a torn last line cannot be a complete append
    extra: list[bytes] = []
    for piece in pieces:
        if ours[piece] > 0:
            ours[piece] -= 1
            continue
        line = _salvage(piece, parse)
        if line is not None:
            extra.append(line)
    return extra


def recover_fd(
    fd: int,
    journal: Path,
    history_path: Path,
    parse: LineParser = parse_history_line,
    *,
    after_error: bool = False,
) -> str | None:
    """Resolve a leftover journal against the open, locked file it describes.

    Returns "rolled_forward", "rolled_back" or "stale" (the journal does not describe this
    file and was dropped); None when there is no journal.
    """
    record = read_journal(journal)
    if record is None:
        if journal_left(journal):
            remove_journal(journal)
        return None
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (record.dev, record.ino) or st.st_size < record.offset:
        log.error("journal.stale", journal=str(journal), path=str(history_path), why="file")
        remove_journal(journal)
        return "stale"
    if record.prefix is not None and prefix_digest(fd, record.offset) != record.prefix:
        # Rewritten since (Codex's trim, an editor): rolling back would glue or double lines.
        log.error("journal.stale", journal=str(journal), path=str(history_path), why="content")
        remove_journal(journal)
        return "stale"
    found = os.pread(fd, st.st_size - record.offset, record.offset)
    if found.startswith(_as_bytes(record.new_tail)):
        outcome = "rolled_forward"  # the new tail is whole; anything after it is Codex's
    else:
        extra = foreign_lines(found, record, parse)
        torn_tail = bool(record.old_tail) and not record.old_tail.endswith(b"\n")
        separator = b"\n" if extra and torn_tail else b""
        restored = record.old_tail + separator + b"".join(line + b"\n" for line in extra)
        os.ftruncate(fd, record.offset)
        write_all(fd, restored, record.offset)
        os.fsync(fd)
        outcome = "rolled_back"
        if not after_error:  # after a failed write the caller reports the error itself
            log.warning(
                "journal.rolled_back", path=str(history_path), kept_appended_lines=len(extra)
            )
    remove_journal(journal)
    if not after_error:
        log.info("journal.recovered", path=str(history_path), outcome=outcome)
    return outcome
