"""Lines too long to hold: their structure with the long strings left out, and those strings
decoded back from the file in pieces.

A candidate line longer than the scanner holds is seen once as it streams past: the bytes
outside strings and every short string are kept (the skeleton), each long string is replaced
by a placeholder object and remembered as a span of file offsets. The skeleton is parsed
like any line; a long string it refers to is then read back with `pread` in pieces, each
piece cut where no escape sequence or UTF-8 character is split and decoded on its own.
Memory is bounded by the skeleton and one piece, not by the line.
"""

from __future__ import annotations

import json
import os
import re

# hashlib.blake2b is this type; importing hashlib would also load OpenSSL (about 2 ms).
from _blake2 import blake2b
from collections.abc import Callable, Iterator
from typing import Any

from codex_indexd.records import field, record

Pread = Callable[[int, int], bytes]  # (offset, length) -> bytes

LONG_STRING = 1024  # raw bytes: a longer string is left out of the skeleton
MAX_SKELETON = 1 << 20  # a line whose skeleton grows past this is not parsed
PIECE = 1 << 20  # bytes read back per piece
PREFIX_CHARS = 4096  # characters of a long text kept for titles
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_HIGH_SURROGATE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}")
# A placeholder no rollout can forge: the key holds a per-process random tag.
_TAG = "\x00long-" + os.urandom(8).hex()  # what secrets.token_hex(8) returns
_TAG_JSON = json.dumps(_TAG).encode()


@record(frozen=True, slots=True)
class LongString:
    """A string value left out of the skeleton: its raw content is file[start:end]."""

    start: int
    end: int


@record(slots=True)
class LineSkeleton:
    """Builds the skeleton of one line from its bytes, fed in order with their offsets."""

    skeleton: bytearray = field(default_factory=bytearray)
    spans: list[LongString] = field(default_factory=list)
    failed: bool = False  # the skeleton outgrew MAX_SKELETON
    _ends: list[int] = field(default_factory=list)  # skeleton offsets after each placeholder
    _in_string: bool = False
    _start: int = 0  # file offset of the current string's first content byte
    _short: bytearray | None = None  # the current string's content while it is short
    _backslashes: int = 0  # trailing backslashes of the current string's content so far

    def feed(self, data: bytes | memoryview, at: int) -> None:
        """Take the next bytes of the line; `at` is the file offset of `data[0]`."""
        if self.failed:
            return
        chunk = bytes(data)
        i, n = 0, len(chunk)
        while i < n:
            if not self._in_string:
                quote = chunk.find(b'"', i)
                if quote == -1:
                    self._emit(chunk[i:])
                    break
                self._emit(chunk[i:quote])
                self._in_string, self._start = True, at + quote + 1
                self._short, self._backslashes = bytearray(), 0
                i = quote + 1
                continue
            quote = chunk.find(b'"', i)
            segment = chunk[i:] if quote == -1 else chunk[i:quote]
            kept = segment.rstrip(b"\\")
            run = len(segment) - len(kept) + (self._backslashes if not kept else 0)
            if quote == -1:
                self._content(segment, run)
                break
            if run % 2:  # an escaped quote: still inside the string
                self._content(chunk[i : quote + 1], 0)
                i = quote + 1
                continue
            self._content(segment, run)
            self._end_string(at + quote)
            i = quote + 1
        if len(self.skeleton) > MAX_SKELETON:
            self.failed = True

    def _emit(self, data: bytes) -> None:
        self.skeleton += data

    def _content(self, data: bytes, trailing_backslashes: int) -> None:
        self._backslashes = trailing_backslashes
        if self._short is not None:
            self._short += data
            if len(self._short) > LONG_STRING:
                self._short = None

    def _end_string(self, end: int) -> None:
        self._in_string = False
        if self._short is not None:
            self.skeleton += b'"' + self._short + b'"'
        else:
            self.skeleton += b"{" + _TAG_JSON + b":%d}" % len(self.spans)
            self.spans.append(LongString(self._start, end))
            self._ends.append(len(self.skeleton))
        self._short = None

    def parse(self, reject_constant: Callable[[str], Any]) -> Any:
        """Return the skeleton's value, long strings as LongString. Raises ValueError where
        the whole line would not parse (the long strings are checked by `check_strings`)."""
        spans = self.spans

        def hook(obj: dict[str, Any]) -> Any:
            if len(obj) == 1 and isinstance(index := obj.get(_TAG), int):
                return spans[index]
            return obj

        obj = json.loads(bytes(self.skeleton), parse_constant=reject_constant, object_hook=hook)
        if _SURROGATE_ESCAPE.search(self.skeleton) is not None:
            json.dumps(obj, ensure_ascii=False, default=lambda _: None).encode("utf-8")
        return obj

    def has_long_key(self) -> bool:
        """True when a long string is an object key (the skeleton cannot say what the line
        holds then)."""
        return any(self.skeleton[end:].lstrip().startswith(b":") for end in self._ends)

    def check_strings(self, pread: Pread) -> None:
        """Decode every long string once. Raises ValueError where Codex's parser would reject
        the line (bad escapes or UTF-8, control characters, a lone surrogate)."""
        for span in self.spans:
            for _piece in decode(pread, span):
                pass


def decode(pread: Pread, span: LongString) -> Iterator[str]:
    """Yield the decoded text of a long string in pieces read back from the file. Raises
    ValueError for text Codex's parser rejects, OSError when the file cannot be read."""
    position, carry = span.start, b""
    while True:
        want = min(PIECE, span.end - position)
        data = carry + (pread(position, want) if want > 0 else b"")
        if want > 0 and len(data) - len(carry) != want:
            raise OSError("the rollout changed while being read")
        position += want
        final = position >= span.end
        cut = len(data) if final else safe_cut(data)
        piece, carry = data[:cut], data[cut:]
        text = json.loads(b'"' + piece + b'"')
        if not isinstance(text, str):
            raise ValueError("not a string")
        if _SURROGATE_ESCAPE.search(piece) is not None:
            text.encode("utf-8")  # a lone surrogate: UnicodeEncodeError, a ValueError
        if text:
            yield text
        if final:
            return


def safe_cut(data: bytes) -> int:
    """Return a cut of `data` (which starts a string's raw content, or follows a previous
    cut) that splits no escape sequence, no surrogate pair and no UTF-8 character, as near
    the end as that allows. Raises ValueError when only invalid text could explain the
    bytes (a valid cut is never more than 16 bytes from the end)."""
    cut = len(data)
    while cut > 0 and data[cut - 1] & 0xC0 == 0x80:  # continuation bytes: back to the lead
        cut -= 1
    if cut > 0 and data[cut - 1] >= 0xC0:  # a lead byte whose character may be cut off
        cut -= 1
    while (earlier := _escape_cut(data, cut)) != cut:
        cut = earlier
    if cut < len(data) - 16:
        raise ValueError("invalid UTF-8 or escape in a string")
    return cut


def _escape_cut(data: bytes, cut: int) -> int:
    """Return `cut`, or the start of the escape sequence (or surrogate pair) it splits."""
    backslash = data.rfind(b"\\", 0, cut)
    if backslash == -1 or cut - backslash > 6:
        return cut
    run_start = backslash
    while run_start > 0 and data[run_start - 1] == 0x5C:
        run_start -= 1
    if (backslash - run_start) % 2:  # the last backslash is itself escaped
        return cut
    length = 6 if data[backslash + 1 : backslash + 2] == b"u" else 2
    if cut < backslash + length:
        return backslash
    if cut == backslash + 6 and _HIGH_SURROGATE.fullmatch(data, backslash, cut):
        return backslash  # keep a surrogate pair in one piece
    return cut


class TurnText:
    """Collects a user turn's text from pieces: its history key (of the text without trailing
    CR/LF), whether it is blank, its first PREFIX_CHARS characters and, when `keep`, the
    text itself, grown in place piece by piece (a long text is never held twice, as a list
    of pieces and their join would be)."""

    def __init__(self, *, keep: bool) -> None:
        self._hash = blake2b(digest_size=8)
        self._pending = ""  # trailing CR/LF not hashed (nor added to the text) yet
        self._prefix: list[str] = []
        self._prefix_len = 0
        self.nonblank = False
        self._text: str | None = "" if keep else None

    def add(self, piece: str) -> None:
        if not piece:
            return
        if not self.nonblank and piece.strip():
            self.nonblank = True
        if self._prefix_len < PREFIX_CHARS:
            head = piece[: PREFIX_CHARS - self._prefix_len]
            self._prefix.append(head)
            self._prefix_len += len(head)
        body = piece.rstrip("\r\n")
        if not body:
            self._pending += piece
            return
        addition = self._pending + body
        self._hash.update(addition.encode("utf-8", "surrogatepass"))
        self._pending = piece[len(body) :]
        if self._text is not None:
            # CPython grows a str in place (a realloc) when the name below holds the only
            # reference to it: the attribute lets go of it first.
            text, self._text = self._text, None
            text += addition
            self._text = text

    @property
    def key(self) -> int:
        return int.from_bytes(self._hash.digest(), "big")

    @property
    def prefix(self) -> str:
        return "".join(self._prefix)

    def text(self) -> str | None:
        """Return the whole text without trailing CR/LF (None unless kept)."""
        return self._text
