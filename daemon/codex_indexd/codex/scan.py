"""Line scanner for rollouts: one reused buffer, only candidate lines copied.

Bytes are read in large chunks into one buffer; line ends are found with `find(b"\\n")`
and only the first bytes of a line are looked at to decide whether it can matter (a
`session_meta`, a user turn, a rename, or the first line). Such a candidate line is copied
and handed to `RolloutScan.feed`; every other line only counts, and only its timestamp is
decoded when it turns out to be the last one. A line longer than the buffer is read on
without being held, unless it is a candidate: then it is collected up to `MAX_HELD_LINE`;
a longer candidate is described by its skeleton as it streams past, and its long strings
are read back in pieces (see `longline`), so a user turn of any length Codex accepts (and
more, up to `MAX_STREAMED_LINE`) is kept with bounded memory. Where the
stream cannot be read back (a compressed rollout), candidates up to `MAX_CANDIDATE_BYTES`
are held and longer ones skipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from codex_indexd.codex.envelope import (
    ORDINAL,
    ORDINAL_LEN,
    ORDINAL_TYPE_MAX,
    PAYLOAD_TYPE,
    QUICK_AFTER_ORDINAL,
    QUICK_ENVELOPES,
    TS_END,
    TS_LEN,
    TS_PREFIX,
    WS,
    quick_skip,
)
from codex_indexd.codex.longline import LineSkeleton, Pread
from codex_indexd.codex.rollout_fd import ReadInto
from codex_indexd.codex.shapes import KNOWN_PAYLOAD_TYPES

if TYPE_CHECKING:
    from codex_indexd.codex.rollout import RolloutScan

CHUNK = 1 << 20
MIN_CHUNK = 8192  # larger than every head test below
# Codex caps a user turn at 2**20 characters; escaped as JSON that is at most 12 MiB, plus
# the event's envelope and a few MiB of attached image URLs.
MAX_CANDIDATE_BYTES = 16 * 1024 * 1024
# A longer candidate is not held when the file can be read back: its skeleton is parsed.
MAX_HELD_LINE = 1 << 20
# A candidate longer than this (five times the longest turn Codex accepts) is skipped.
MAX_STREAMED_LINE = 64 * 1024 * 1024
_HEAD = 512
_ITEM_HEAD = 4096


def feed_stream(
    scan: RolloutScan, readinto: ReadInto, *, chunk: int = CHUNK, pread: Pread | None = None
) -> None:
    """Feed `scan` with the complete lines `readinto` yields; the stream starts at
    `scan.offset`. Afterwards `scan.offset` is the end of the last complete line (or of the
    bare first line, where scanning stops). `pread` reads the same stream back at file
    offsets (None where it cannot: long candidate lines are then held or skipped)."""
    _Scanner(scan, readinto, max(chunk, MIN_CHUNK), pread).run()


class _Scanner:
    __slots__ = (
        "base",
        "buf",
        "eof",
        "filled",
        "pread",
        "readinto",
        "scan",
        "start",
        "ts",
        "view",
    )

    def __init__(
        self, scan: RolloutScan, readinto: ReadInto, chunk: int, pread: Pread | None = None
    ) -> None:
        self.scan = scan
        self.readinto = readinto
        self.pread = pread
        self.buf = bytearray(chunk)
        self.view = memoryview(self.buf)
        self.base = scan.offset  # file offset of buf[0]
        self.filled = 0
        self.start = 0  # buffer index of the line being looked at
        self.eof = False
        self.ts: bytes | None = None  # raw timestamp of the last counted line, not decoded yet

    def run(self) -> None:
        scan, buf = self.scan, self.buf
        find, starts = buf.find, buf.startswith
        search = 0
        start = self.start  # buffer index of the line being looked at (self.start when it matters)
        mark = 0  # lines in buf[mark:start] are counted but their timestamps not looked at
        counted = 0
        filled = self.filled
        try:
            while True:
                nl = find(b"\n", search, filled)
                if nl != -1:
                    s = start
                    start = search = nl + 1
                    # Most lines: Codex's envelope with a payload type that is never a turn
                    # (the test of `quick_skip`, inlined), after a first line.
                    at = s + TS_END  # where the timestamp's closing quote is, if anywhere
                    if (
                        nl > at
                        and starts(TS_PREFIX, s)
                        and (counted or scan.lines)
                        and (
                            starts(QUICK_ENVELOPES, at)
                            or (
                                starts(ORDINAL, at)
                                and (
                                    c := find(
                                        b',"type":"',
                                        at + ORDINAL_LEN,
                                        min(nl, s + ORDINAL_TYPE_MAX),
                                    )
                                )
                                != -1
                                and starts(QUICK_AFTER_ORDINAL, c)
                            )
                        )
                    ):
                        counted += 1
                        continue
                    e = nl
                    while e > s and buf[e - 1] == 0x0D:
                        e -= 1
                    if e == s:
                        continue
                    if (counted or scan.lines) and self._counts_only(s, e):
                        counted += 1
                        continue
                    scan.lines += counted
                    counted = 0
                    self.start = start
                    self._ts_between(mark, s)
                    mark = start
                    scan.line_start = self.base + s
                    scan.feed(bytes(self.view[s:e]))
                    if scan.bare:
                        return
                    continue
                scan.lines += counted
                counted = 0
                self.start = start
                self._ts_between(mark, start)
                search = self._refill()
                start, filled = self.start, self.filled
                if search < 0:
                    return
                mark = search if start == search else 0
        finally:
            scan.lines += counted
            self._flush_ts()
            scan.offset = self.base + self.start

    def _counts_only(self, s: int, e: int) -> bool:
        """Return True when the line at buf[s:e] (not a file's first, not empty) is only
        counted: not a candidate (its shape is noted when it seems to hold user text), or not
        a JSON object (counted as malformed unless blank). False: it must be fed."""
        buf, find = self.buf, self.buf.find
        if buf[s] != 0x7B:  # not "{": Codex skips it too
            if bytes(self.view[s:e]).strip(WS):
                self.scan.malformed += 1
            return True
        head = min(s + _HEAD, e)
        if find(b'"session_meta"', s, head) != -1 or (
            find(b'"event_msg"', s, head) != -1
            and (
                find(b'"user_message"', s, head) != -1
                or find(b'"thread_name_updated"', s, head) != -1
                or (
                    find(b'"item_completed"', s, head) != -1
                    and find(b'"UserMessage"', s, min(s + _ITEM_HEAD, e)) != -1
                )
            )
        ):
            return False
        if (
            find(b'"input_text"', s, head) != -1 or find(b'"message":', s, head) != -1
        ) and not self._known_payload(s, head):
            self.scan.note_shape(bytes(self.view[s:head]))
        return True

    def _refill(self) -> int:
        """Keep the unfinished line at the front of the buffer and read more after it (or
        handle a line longer than the buffer). Returns where the newline search resumes, or
        -1 when scanning is over (end of the stream, or a bare file)."""
        buf = self.buf
        if self.eof:
            return -1
        if self.start:
            s = self.start
            if (
                self.filled - s > _ITEM_HEAD
                and buf[s] == 0x7B
                and self.scan.lines
                and not self._is_candidate(s, self.filled)
            ):
                return self._skip_rest(s)  # its head decides: no need to keep its bytes
            rest = self.filled - self.start
            buf[:rest] = bytes(self.view[self.start : self.filled])
            self.base += self.start
            self.filled, self.start = rest, 0
        if self.filled == len(buf):
            search = self._long_line()
            return -1 if self.scan.bare else search
        search = self.filled
        got = self.readinto(self.view[self.filled :])
        if got <= 0:
            self.eof = True
        self.filled += max(got, 0)
        return search

    def _flush_ts(self) -> None:
        if self.ts is not None:
            self.scan.facts.last_timestamp = self.ts.decode("ascii", "replace")
            self.ts = None

    def _ts_between(self, lo: int, hi: int) -> None:
        """Note the timestamp of the last line of buf[lo:hi] (complete, counted lines) that
        has one, then hand any pending timestamp to the facts."""
        buf = self.buf
        end = hi - 1  # the newline that ends the last line
        while end >= lo:
            begin = max(buf.rfind(b"\n", lo, end) + 1, lo)
            if buf.startswith(TS_PREFIX, begin, end):
                quote = buf.find(b'"', begin + TS_LEN, end)
                if quote != -1:
                    self.ts = bytes(self.view[begin + TS_LEN : quote])
                    break
            end = begin - 1
        self._flush_ts()

    def _known_payload(self, s: int, head: int) -> bool:
        """True when the line at buf[s:head] has a payload type the reader knows (the fast
        path of `unknown_user_shape`)."""
        at = self.buf.find(PAYLOAD_TYPE, s, head)
        if at == -1:
            return False
        at += len(PAYLOAD_TYPE)
        end = self.buf.find(b'"', at, head)
        return end != -1 and bytes(self.view[at:end]) in KNOWN_PAYLOAD_TYPES

    def _is_candidate(self, s: int, e: int) -> bool:
        """True when the line at buf[s:e] must be parsed (e may end before the line does)."""
        buf = self.buf
        if self.scan.lines == 0:
            return True  # the bare-format test and a leading session_meta
        if buf[s] != 0x7B or quick_skip(buf, s):  # not "{", or never a turn
            return False
        head_end = min(s + _HEAD, e)
        if buf.find(b'"session_meta"', s, head_end) != -1:
            return True
        if buf.find(b'"event_msg"', s, head_end) == -1:
            return False
        if (
            buf.find(b'"user_message"', s, head_end) != -1
            or buf.find(b'"thread_name_updated"', s, head_end) != -1
        ):
            return True
        return (
            buf.find(b'"item_completed"', s, head_end) != -1
            and buf.find(b'"UserMessage"', s, min(s + _ITEM_HEAD, e)) != -1
        )

    def _skip_rest(self, s: int) -> int:
        """Read on to the end of the unfinished line at buf[s:filled], a JSON object that is
        not a candidate (its first _ITEM_HEAD bytes are in the buffer), without holding it;
        then count it. Returns where the newline search resumes (0 at the end of the
        stream, where the line is left unread)."""
        buf, view = self.buf, self.view
        head = bytes(view[s : s + _ITEM_HEAD])
        line_start = self.base + s
        consumed = self.filled - s  # bytes of the line seen so far
        while True:
            got = self.readinto(view)
            if got <= 0:
                self.eof = True
                self.base, self.filled, self.start = line_start, 0, 0
                return 0
            nl = buf.find(b"\n", 0, got)
            if nl != -1:
                break
            consumed += got
        self.base = line_start + consumed
        self.filled, self.start = got, nl + 1
        self._long_line_done(line_start, False, None, None, head=head, blank=False)
        return nl + 1

    def _long_line(self) -> int:
        """Handle a line that fills the whole buffer: collect it (or its skeleton) when it is
        a candidate, else read on to its end without holding it. Returns where the newline
        search resumes."""
        buf, view = self.buf, self.view
        line_start = self.base
        size = len(buf)
        candidate = self._is_candidate(0, size)
        held: bytearray | None = bytearray(buf) if candidate else None
        hold_max = MAX_CANDIDATE_BYTES if self.pread is None else MAX_HELD_LINE
        skeleton = LineSkeleton() if candidate and self.pread is not None else None
        if skeleton is not None:
            skeleton.feed(view, line_start)
        head = bytes(view[: min(size, _ITEM_HEAD)])
        blank = not bytes(view).strip(WS)
        consumed = size  # bytes of the line seen so far
        while True:
            got = self.readinto(view)
            if got <= 0:
                # Unfinished: the line starts the unread remainder; keep its head in place.
                self.eof = True
                self.base, self.filled, self.start = line_start, 0, 0
                return 0
            nl = buf.find(b"\n", 0, got)
            part_end = got if nl == -1 else nl
            if skeleton is not None:
                skeleton.feed(view[:part_end], line_start + consumed)
                if consumed + part_end > MAX_STREAMED_LINE:
                    skeleton = None
            if held is not None:
                held += view[:part_end]
                if len(held) > hold_max:
                    held = None
            if blank:
                blank = not bytes(view[:part_end]).strip(WS)
            if nl != -1:
                break
            consumed += got
        self.base = line_start + consumed  # buf[0] is now this file offset
        self.filled, self.start = got, nl + 1
        self._long_line_done(line_start, candidate, held, skeleton, head=head, blank=blank)
        return nl + 1

    def _long_line_done(
        self,
        line_start: int,
        candidate: bool,
        held: bytearray | None,
        skeleton: LineSkeleton | None,
        *,
        head: bytes,
        blank: bool,
    ) -> None:
        """Feed a long line that ended: held whole, by its skeleton, or only counted."""
        scan = self.scan
        if held is not None:
            while held and held[-1] == 0x0D:
                del held[-1]
            self._flush_ts()
            scan.line_start = line_start
            scan.feed(bytes(held))
        elif skeleton is not None and self.pread is not None:
            self._flush_ts()
            scan.line_start = line_start
            scan.feed_long(head, skeleton, self.pread, blank=blank)
        elif candidate:
            scan.too_long += 1  # logged with the file's other findings by whoever reads it
            scan.note_skipped_turn(head)
        else:
            scan.lines += 1
            self._note_ts_bytes(head)
            if head[:1] != b"{" and not blank:
                scan.malformed += 1
            elif b'"input_text"' in head[:_HEAD] or b'"message":' in head[:_HEAD]:
                scan.note_shape(head[:_HEAD])

    def _note_ts_bytes(self, head: bytes) -> None:
        if head.startswith(TS_PREFIX):
            end = head.find(b'"', TS_LEN)
            if end != -1:
                self.ts = head[TS_LEN:end]
