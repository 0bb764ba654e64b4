"""The rollout line reader as it was before the buffer scanner: `readline` on a buffered file,
every line copied, lines over 8 MiB skipped. Kept only as the oracle of the equivalence tests;
the per-line logic (`RolloutScan.feed`) is the product's.

With `max_line=None` no line is skipped, and with `long_names_above=N` a user turn on a line
longer than N bytes names its thread from its first `PREFIX_CHARS` characters only: what the
scanner does for lines it reads back in pieces instead of holding them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from codex_indexd.codex.longline import PREFIX_CHARS
from codex_indexd.codex.rollout import RolloutScan, strip_ide_prefix

MAX_LINE_BYTES = 8 * 1024 * 1024
READ_BUFFER = 1 << 20


def iter_complete_lines(
    readline: Callable[[int], bytes], offset: int, *, max_line: int | None = MAX_LINE_BYTES
) -> Iterator[tuple[bytes | None, int]]:
    """Yield `(line, end_offset)` for each complete line read through `readline`.

    `offset` is where the stream is positioned. A line longer than `max_line` yields `None`
    and is skipped without being buffered. A trailing line without a newline is never
    yielded, so the `end_offset` of the last item is where the next read must start.
    """
    position = offset
    while True:
        line = readline(-1 if max_line is None else max_line + 1)
        if not line:
            return
        if line.endswith(b"\n"):
            position += len(line)
            yield line[:-1].rstrip(b"\r"), position
            continue
        if max_line is None or len(line) <= max_line:
            return  # partial last line: being written, or torn by a crash
        skipped = len(line)
        while True:
            rest = readline(READ_BUFFER)
            if not rest:
                return  # the long line is not finished yet
            skipped += len(rest)
            if rest.endswith(b"\n"):
                break
        position += skipped
        yield None, position


def scan_file(
    scan: RolloutScan,
    path: Path,
    *,
    max_line: int | None = MAX_LINE_BYTES,
    long_names_above: int | None = None,
) -> RolloutScan:
    """Feed `scan` with the complete lines of `path` after `scan.offset`; return the scan.

    Compressed rollouts are read whole into a fresh scan. Raises OSError when the file
    cannot be opened or read.
    """
    with path.open("rb", buffering=READ_BUFFER) as handle:
        handle.seek(scan.offset)
        _feed_from(
            scan, handle.readline, path, max_line=max_line, long_names_above=long_names_above
        )
    return scan


def _feed_from(
    scan: RolloutScan,
    readline: Callable[[int], bytes],
    path: Path,
    *,
    max_line: int | None = MAX_LINE_BYTES,
    long_names_above: int | None = None,
) -> None:
    for line, end in iter_complete_lines(readline, scan.offset, max_line=max_line):
        scan.line_start, scan.offset = scan.offset, end
        if line is None:
            scan.too_long += 1
            continue
        if line:
            before = (scan.facts.first_user_message, scan.facts.title)
            scan.feed(line)
            if long_names_above is not None and len(line) > long_names_above:
                _names_from_prefix(scan, before, line)
        if scan.bare:
            return


def _names_from_prefix(
    scan: RolloutScan, before: tuple[str | None, str | None], line: bytes
) -> None:
    """Redo the naming a long user-turn line just did, from the first PREFIX_CHARS
    characters of its text."""
    facts = scan.facts
    if (facts.first_user_message, facts.title) == before:
        return
    turn = _turn_text(line)
    if turn is None:
        return
    text, has_media = turn
    facts.first_user_message, facts.title = before
    stripped = strip_ide_prefix(text[:PREFIX_CHARS]).strip()
    derived = stripped or ("[Image]" if has_media else "")
    if derived and facts.first_user_message is None:
        facts.first_user_message = derived
    if stripped and facts.title is None:
        facts.title = stripped


def _turn_text(line: bytes) -> tuple[str, bool] | None:
    """Return the user text of a turn line and whether it carries media, or None."""
    obj: Any = json.loads(line)
    payload = obj.get("payload") if isinstance(obj, dict) else None
    if not isinstance(payload, dict):
        return None
    if payload.get("type") == "user_message":
        message = payload.get("message")
        media = bool(payload.get("images")) or bool(payload.get("local_images"))
        return (message if isinstance(message, str) else ""), media
    item = payload.get("item")
    if payload.get("type") != "item_completed" or not isinstance(item, dict):
        return None
    parts, media = [], False
    for part in item.get("content") or []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            parts.append(part["text"])
        elif part.get("type") in {"image", "local_image", "localImage"}:
            media = True
    return "".join(parts), media
