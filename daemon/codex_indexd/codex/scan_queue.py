"""`repair`'s rollout scan, shared with a child through a queue: the files are cut into
tickets, largest first (`tickets_of`), the ticket numbers wait in a pipe (`ticket_queue`),
and each process takes the next one whenever it is free (`SharedScan`). `start_scan` lists
a home's rollouts and starts the child at once, so it scans while this process still
prepares (imports, config, the state DB's reader); whichever side is slower (a busy core)
simply takes fewer tickets. The child itself is `scan_split`'s: forked, or spawned with the
queue's descriptor.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from typing import IO, cast

from codex_indexd.codex.home import CodexHome, iter_rollout_entries
from codex_indexd.codex.scan_split import (
    ChildScan,
    ScanFailure,
    ScanJob,
    ScanResult,
    is_result,
    scan_one,
    send_results,
)
from codex_indexd.log import get_logger

log = get_logger("codex_indexd.scan")

# A queue holds at most this many tickets (and one more), 4 bytes each: they fit in a pipe
# of one page, the least a pipe holds, so the queue is filled before either side reads.
MAX_TICKETS = 1000
_TICKET = 4
_PIECE = 512  # bytes of tickets per write: POSIX makes a write up to PIPE_BUF (>= 512) whole
# The child pickles its scans this many at a time (each pickle names its classes once: 125
# rollouts pickled one by one are 1.7 times the bytes and take 2.5 times as long to load).
_PICKLE_EVERY = 16


def tickets_of(weights: Sequence[int], most: int = MAX_TICKETS) -> list[list[int]]:
    """Cut file indexes into tickets, largest files first: a ticket closes once it weighs
    at least 1/`most` of the total (so there are at most `most` + 1), which leaves each
    large file a ticket of its own and groups small ones. Returns the tickets in the order
    they are taken, each a list of indexes."""
    target = max(-(-sum(weights) // most), 1)
    tickets: list[list[int]] = []
    current: list[int] = []
    load = 0
    for i in sorted(range(len(weights)), key=lambda i: -weights[i]):
        current.append(i)
        load += weights[i]
        if load >= target:
            tickets.append(current)
            current, load = [], 0
    if current:
        tickets.append(current)
    return tickets


def ticket_queue(count: int) -> tuple[int, int]:
    """Return a pipe's read end holding the ticket numbers 0..`count`-1 (4 bytes each, in
    order), its write end closed, and how many of them it holds: all of them unless the
    pipe is smaller than a page (the rest are left to whoever made the queue). Raises
    OSError."""
    read_end, write_end = os.pipe()
    queued = 0
    try:
        os.set_blocking(write_end, False)
        data = b"".join(n.to_bytes(_TICKET, "little") for n in range(count))
        for start in range(0, len(data), _PIECE):
            piece = data[start : start + _PIECE]
            try:
                written = os.write(write_end, piece)
            except BlockingIOError:
                break
            queued += written // _TICKET
            if written < len(piece):
                break
    except OSError:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    return read_end, queued


def take_tickets(queue: int) -> Iterator[int]:
    """Yield ticket numbers taken from `queue` until it is empty (a read shorter than a
    ticket, which only a broken queue gives, also ends it)."""
    while True:
        try:
            got = os.read(queue, _TICKET)
        except OSError:
            return
        if len(got) != _TICKET:
            return
        yield int.from_bytes(got, "little")


class SharedScan(ChildScan):
    """`jobs` scanned by this process and one child, which take tickets (`tickets_of`
    `weights`) from a shared queue: the child starts at once, this process in `results()`."""

    def __init__(
        self, jobs: list[ScanJob], weights: Sequence[int], keep_text: bool, *, quiet: bool = False
    ) -> None:
        """Queue the tickets and start the child. When the queue or the child cannot be
        made, that is logged and `results()` scans here what the child does not; with
        `quiet`, the OSError is raised instead (nothing is left running)."""
        super().__init__()
        self.jobs, self.keep_text = jobs, keep_text
        self.tickets = tickets_of(weights)
        self.child_files = 0  # how many files the child sent back
        self._queue = -1
        self._unqueued: list[int] = []
        try:
            self._queue, queued = ticket_queue(len(self.tickets))
        except OSError as exc:
            if quiet:
                raise
            log.warning("rollout.scan_child_failed", error=str(exc))
            return
        self._unqueued = list(range(queued, len(self.tickets)))
        tickets, queue = self.tickets, self._queue
        try:
            self._start(
                lambda out: take_and_send(jobs, tickets, queue, keep_text, out),
                (keep_text, jobs, (tickets, queue)),
                (queue,),
                quiet=quiet,
            )
        except OSError:
            self._close_queue()
            raise

    def results(self, progress: Callable[[int, int], None] | None = None) -> list[ScanResult]:
        """Scan tickets here until the queue is empty, then take the child's results; return
        one result per job, in order. Whatever the child did not send back (it failed, died,
        or was never started) is scanned here. `progress(done, total)` is called before each
        file this process scans."""
        total = len(self.jobs)
        done: list[ScanResult | None] = [None] * total
        here = 0

        def scan(i: int) -> None:
            nonlocal here
            here += 1
            if progress is not None:
                progress(here, total)
            path, archived = self.jobs[i]
            done[i] = scan_one(path, archived, self.keep_text)

        # One ticket at a time: the child takes the others meanwhile.
        queued = take_tickets(self._queue) if self._queue >= 0 else iter(())
        for ticket in chain(queued, self._unqueued):
            for i in self.tickets[ticket]:
                scan(i)
        self._close_queue()
        theirs, status = self._collect(lambda item: _is_numbered(item, total), reap_later=True)
        for i, result in cast(list[tuple[int, ScanResult]], theirs or []):
            if done[i] is None:
                done[i] = shared_strings(result, self.jobs[i][0])
                self.child_files += 1
        missing = [i for i in range(total) if done[i] is None]
        if missing and status is not None:
            log.warning("rollout.scan_child_failed", status=status, files=len(missing))
        for i in missing:
            scan(i)
        self.tickets = []  # all taken: a list and an int per rollout
        return [r if r is not None else ScanFailure("unreadable", "not scanned") for r in done]

    def discard(self) -> None:
        """Stop the child (if it still runs) and wait for it; close the queue."""
        super().discard()
        self._close_queue()

    def _close_queue(self) -> None:
        if self._queue >= 0:
            os.close(self._queue)
            self._queue = -1


# Below this many bytes of rollouts a second process costs more than it saves. Measured on 2
# cores, page cache warm, small-lines homes, the whole `repair --rebuild --dry-run` (child
# begun before the options are parsed), medians of 9, shared / one process: with the other
# core free 55 / 57 ms at 16 MiB, 67 / 70 at 32, 66 / 83 at 64 and 89 / 118 at 128 MiB;
# with the other core busy 65 / 58, 78 / 67, 102 / 87 and 122 / 119 (three processes then
# share two cores, and the child's work comes on top). Those figures are of a forked child;
# a spawned one (where the process has other threads) starts about 35 ms later.
PARALLEL_SCAN_BYTES = 128 * 1024 * 1024


class StartedScan:
    """A home's rollouts, listed (sessions/ then archived_sessions/), and their scan begun:
    on a large home a child (`SharedScan`) is already scanning them when this is made.
    `discard()` ends it: the child is stopped, or reaped once it sent its results."""

    def __init__(self, home: CodexHome, found: list[ScanJob], shared: SharedScan | None) -> None:
        self.home = home
        self.found = found
        self.shared = shared

    def results(self, progress: Callable[[int, int], None] | None = None) -> list[ScanResult]:
        """Return one result per listed file, in order (scanning here what the child does
        not); `progress(done, total)` is called before each file this process scans."""
        if self.shared is None:
            out: list[ScanResult] = []
            for done, (path, archived) in enumerate(self.found, 1):
                if progress is not None:
                    progress(done, len(self.found))
                out.append(scan_one(path, archived, True))
            return out
        results = self.shared.results(progress)
        if progress is not None:
            progress(len(self.found), len(self.found))
        return results

    def discard(self) -> None:
        """Stop the child if it still scans, and wait for it; nothing without one."""
        shared, self.shared = self.shared, None
        if shared is not None:
            shared.discard()


def start_scan(home: CodexHome, *, quiet: bool = False) -> StartedScan:
    """List the home's rollouts and, when they weigh PARALLEL_SCAN_BYTES or more, start a
    child scanning them (`SharedScan`): the sooner it starts, the more of them it takes.
    With `quiet`, what would be logged (a directory that cannot be listed, a child that
    cannot be started) raises OSError instead."""
    # Paths as strings: a Path object per rollout, all held during the scan, was about
    # 0.5 KiB each.
    found = [(e.path, False) for e in iter_rollout_entries(home.sessions, quiet=quiet)]
    found += [(e.path, True) for e in iter_rollout_entries(home.archived_sessions, quiet=quiet)]
    sizes = [_size(path) for path, _ in found]
    if sum(sizes) < PARALLEL_SCAN_BYTES:
        return StartedScan(home, found, None)
    return StartedScan(home, found, SharedScan(found, sizes, keep_text=True, quiet=quiet))


def shared_strings(result: ScanResult, path: str) -> ScanResult:
    """Return a result the child sent back, its facts' strings made this process's shared
    ones: unpickled, each is a copy of its own. The path becomes the listed one, the id,
    source, mode, first message and title interned (the DB's rows and the index's lines
    intern theirs: one object for all), and a turn's text that was the first message (one
    object in the child) that object again. About 0.4 KiB a rollout."""
    if isinstance(result, ScanFailure):
        return result
    facts = result[0].facts
    if facts.path == path:
        facts.path = path
    intern = sys.intern
    facts.thread_id = intern(facts.thread_id)
    if facts.source is not None:
        facts.source = intern(facts.source)
    facts.history_mode = intern(facts.history_mode)
    first = facts.first_user_message
    if first is not None:
        facts.first_user_message = intern(first)
        texts = facts.user_turns.texts  # the reader's own list, only this scan's
        if texts and texts[0] is first:
            texts[0] = facts.first_user_message
    if facts.title is not None:
        facts.title = intern(facts.title)
    return result


def _size(path: str) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def _is_numbered(value: object, total: int) -> bool:
    """True when `value` is a job's index below `total` and a `ScanResult`."""
    return (
        type(value) is tuple
        and len(value) == 2
        and type(value[0]) is int
        and 0 <= value[0] < total
        and is_result(value[1])
    )


def take_and_send(
    jobs: list[ScanJob], tickets: list[list[int]], queue: int, keep_text: bool, out: IO[bytes]
) -> None:
    """Scan the jobs of each ticket taken from `queue` until it is empty, then send them as
    `send_results` does, (index, result) pairs: pickled `_PICKLE_EVERY` at a time as they
    are scanned, so that little pickling is left once the queue is empty (this process
    waits for the child's results then), and each pickle names the classes it holds once."""
    import gc
    import pickle

    gc.disable()  # the scans are all kept until sent: a collector pass finds nothing to free
    pickled = bytearray()
    pending: list[tuple[int, ScanResult]] = []
    for ticket in take_tickets(queue):
        for i in tickets[ticket]:
            pending.append((i, scan_one(*jobs[i], keep_text)))
        if len(pending) >= _PICKLE_EVERY:
            pickled += pickle.dumps(pending, 5)
            pending = []
    os.close(queue)
    if pending:
        pickled += pickle.dumps(pending, 5)
    out.write(pickled)
    send_results([], out)
