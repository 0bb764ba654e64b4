"""A cold scan shared with a child (forked or spawned) finds exactly what one process finds:
`repair`'s queue of tickets (`SharedScan`, through `start_scan`) whichever side takes which
ticket, and the daemon's fixed share (`ScanChild`); a child that fails, dies or sends
something else leaves what it did not send to this process."""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codex_indexd.codex import scan_queue, scan_split
from codex_indexd.codex.home import CodexHome
from codex_indexd.engine import gather
from codex_indexd.engine import reading as engine
from codex_indexd.index.model import NO_RENAMES
from tests.support.homes import build_home, new_thread
from tests.support.scan_children import (
    has_children,
    open_descriptors,
    shared_scans,
    wait_until_the_child_sent,
)


def _home(tmp_path: Path, count: int, *, bad: bool = False) -> CodexHome:
    threads = [new_thread(i, turns=1 + i % 4, paginated=i % 2 == 0) for i in range(count)]
    threads += [new_thread(40 + i, archived=True) for i in range(3)]
    home = CodexHome(build_home(tmp_path / "h", threads, db=False))
    if bad:
        junk = home.sessions / "2026" / "11" / "20" / "rollout-2026-11-20T10-00-00-x.jsonl"
        junk.write_bytes(b"not a rollout\n")
    return home


def _facts(scans: dict[str, Any]) -> dict[str, Any]:
    return {t: s.facts for t, s in scans.items()}


@pytest.mark.parametrize("how", ["forked", "spawned"])
def test_a_shared_scan_equals_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    home = _home(tmp_path, 25, bad=True)
    serial_warnings: list[engine.InputWarning] = []
    serial, count = engine.scan_rollouts(home, serial_warnings)
    monkeypatch.setattr(scan_queue, "PARALLEL_SCAN_BYTES", 0)
    shared = shared_scans(monkeypatch, forked=how == "forked")
    split_warnings: list[engine.InputWarning] = []
    split, split_count = engine.scan_rollouts(home, split_warnings)
    assert len(shared) == 1 and shared[0].peak_kib > 0  # a child ran and reported
    assert split_count == count == 29
    assert _facts(split) == _facts(serial)
    assert split_warnings == serial_warnings
    assert len(serial) == 28


@pytest.mark.parametrize(
    ("how", "every"), [("forked", 1), ("forked", 3), ("forked", 16), ("spawned", 16)]
)
def test_a_child_that_took_every_ticket_sends_every_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, every: int
) -> None:
    """Pickled `every` scans at a time (a forked child sees the patched value)."""
    home = _home(tmp_path, 12, bad=True)
    serial_warnings: list[engine.InputWarning] = []
    serial, _ = engine.scan_rollouts(home, serial_warnings)
    monkeypatch.setattr(scan_queue, "PARALLEL_SCAN_BYTES", 0)
    monkeypatch.setattr(scan_queue, "_PICKLE_EVERY", every)
    monkeypatch.setattr(scan_split, "may_fork", lambda: how == "forked")
    started = scan_queue.start_scan(home)
    shared = started.shared
    assert shared is not None
    wait_until_the_child_sent(shared)  # the queue is empty: this process takes no ticket
    warnings: list[engine.InputWarning] = []
    split, count = engine.scan_rollouts(home, warnings, started=started)
    started.discard()
    assert shared.child_files == count == 16 and not has_children()
    assert _facts(split) == _facts(serial) and warnings == serial_warnings
    # Once read, the listing and the tickets are let go: the paths live on in the facts.
    assert started.found == [] and shared.tickets == []


def _queue_program(after_taking: str) -> str:
    """A spawned child that reads its jobs, takes one ticket, then runs `after_taking`."""
    return (
        "import os, pickle, sys\n"
        "keep_text, jobs, (tickets, queue) = pickle.load(sys.stdin.buffer)\n"
        "taken = int.from_bytes(os.read(queue, 4), 'little')\n" + after_taking
    )


@pytest.mark.parametrize(
    "program",
    [
        "import sys; sys.exit(1)",  # dies at once
        _queue_program("sys.exit(1)"),  # dies holding a ticket
        _queue_program("sys.stdout.buffer.write(b'garbage')"),
        _queue_program("pickle.dump([(tickets[taken][0], 'x')], sys.stdout.buffer)"),
        _queue_program(
            "pickle.dump([(10**6, None)], sys.stdout.buffer); pickle.dump(1, sys.stdout.buffer)"
        ),
        _queue_program("pickle.dump([], sys.stdout.buffer); pickle.dump(1, sys.stdout.buffer)"),
        _queue_program("pickle.dump(1, sys.stdout.buffer)"),  # says it is done, sent nothing
    ],
    ids=["dies", "dies-holding", "garbage", "wrong-type", "no-such-job", "empty", "nothing"],
)
def test_what_a_spawned_child_does_not_send_is_scanned_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, program: str
) -> None:
    home = _home(tmp_path, 6)
    serial, _ = engine.scan_rollouts(home, [])
    monkeypatch.setattr(scan_queue, "PARALLEL_SCAN_BYTES", 0)
    monkeypatch.setattr(scan_split, "may_fork", lambda: False)
    monkeypatch.setattr(scan_split, "child_argv", lambda: [sys.executable, "-c", program])
    started = scan_queue.start_scan(home)
    assert started.shared is not None
    wait_until_the_child_sent(started.shared)  # it took its ticket (or none) and is done
    split, count = engine.scan_rollouts(home, [], started=started)
    started.discard()
    assert count == 9 and not has_children()
    assert _facts(split) == _facts(serial)


@pytest.mark.parametrize("dies", ["at-once", "after-one-file"])
def test_what_a_forked_child_does_not_send_is_scanned_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dies: str
) -> None:
    home = _home(tmp_path, 9)
    serial, _ = engine.scan_rollouts(home, [])
    monkeypatch.setattr(scan_queue, "PARALLEL_SCAN_BYTES", 0)
    monkeypatch.setattr(scan_split, "may_fork", lambda: True)
    parent = os.getpid()
    real_scan_one = scan_split.scan_one
    scanned: list[str] = []

    def scan_one(path: str, archived: bool, keep_text: bool) -> scan_split.ScanResult:
        if os.getpid() != parent and (dies == "at-once" or scanned):
            raise SystemExit(1)  # the child dies holding this ticket
        scanned.append(path)
        return real_scan_one(path, archived, keep_text)

    monkeypatch.setattr(scan_queue, "scan_one", scan_one)
    started = scan_queue.start_scan(home)
    assert started.shared is not None
    wait_until_the_child_sent(started.shared)  # it took a ticket (or all) and died
    split, count = engine.scan_rollouts(home, [], started=started)
    started.discard()
    assert count == 12 and not has_children()
    assert _facts(split) == _facts(serial)


def test_a_child_that_cannot_start_leaves_every_ticket_to_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _home(tmp_path, 4)
    serial, _ = engine.scan_rollouts(home, [])
    monkeypatch.setattr(scan_queue, "PARALLEL_SCAN_BYTES", 0)
    monkeypatch.setattr(scan_split, "may_fork", lambda: False)
    monkeypatch.setattr(scan_split, "child_argv", lambda: [str(tmp_path / "no-such-python")])
    shared = shared_scans(monkeypatch, forked=False)
    split, _ = engine.scan_rollouts(home, [])
    assert _facts(split) == _facts(serial)
    assert shared[0].child_files == 0


def test_tickets_that_do_not_fit_in_the_queue_are_scanned_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _home(tmp_path, 8)
    serial, _ = engine.scan_rollouts(home, [])
    monkeypatch.setattr(scan_queue, "PARALLEL_SCAN_BYTES", 0)
    monkeypatch.setattr(scan_queue, "_PIECE", 8)  # two tickets per write
    real_write = os.write
    writes: list[int] = []

    def write(fd: int, data: bytes) -> int:
        if len(data) == 8 and writes:
            raise BlockingIOError  # the pipe is full after the first two tickets
        writes.append(fd)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    queue, queued = scan_queue.ticket_queue(5)
    assert queued == 2 and list(scan_queue.take_tickets(queue)) == [0, 1]
    os.close(queue)
    split, _ = engine.scan_rollouts(home, [])
    assert _facts(split) == _facts(serial)


def test_a_discarded_scan_leaves_no_child_and_no_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _home(tmp_path, 5)
    monkeypatch.setattr(scan_queue, "PARALLEL_SCAN_BYTES", 0)
    monkeypatch.setattr(scan_split, "may_fork", lambda: True)
    fds = open_descriptors()
    started = scan_queue.start_scan(home)
    assert started.shared is not None and has_children()
    started.discard()
    assert not has_children() and open_descriptors() == fds
    started.discard()  # twice is harmless
    assert started.shared is None


@given(st.lists(st.integers(min_value=0, max_value=1 << 30), max_size=300), st.integers(1, 50))
def test_tickets_hold_each_file_once_largest_first(weights: list[int], most: int) -> None:
    tickets = scan_queue.tickets_of(weights, most)
    flat = [i for ticket in tickets for i in ticket]
    assert sorted(flat) == list(range(len(weights)))
    assert len(tickets) <= most + 1 and all(tickets)
    assert [weights[i] for i in flat] == sorted(weights, reverse=True)
    target = max(-(-sum(weights) // most), 1)
    assert all(sum(weights[i] for i in ticket) >= target for ticket in tickets[:-1])


def test_a_full_queue_of_tickets_fits_in_one_page() -> None:
    most = scan_queue.MAX_TICKETS + 1
    tickets = scan_queue.tickets_of([1] * 5000)
    assert len(tickets) <= most and most * 4 <= 4096
    queue, queued = scan_queue.ticket_queue(len(tickets))
    try:
        assert queued == len(tickets)
        assert list(scan_queue.take_tickets(queue)) == list(range(len(tickets)))
    finally:
        os.close(queue)


@pytest.mark.parametrize("batch", [1, 3, 256])
@pytest.mark.parametrize("child", ["sends", "dies", "dies-midway"])
def test_a_fixed_share_comes_in_batches_or_is_scanned_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int, child: str
) -> None:
    """The daemon's `ScanChild`: its scans come in pickles of `_BATCH`; when it fails before
    or after sending some of them, this process scans the share itself: the same results."""
    home = _home(tmp_path, 9)
    jobs = scan_queue.start_scan(home).found
    serial = [scan_split.scan_one(path, archived, True) for path, archived in jobs]
    monkeypatch.setattr(scan_split, "may_fork", lambda: True)
    monkeypatch.setattr(scan_split, "_BATCH", batch)
    parent = os.getpid()
    real_dump = pickle.dump
    sent: list[int] = []

    def dump(obj: object, out: Any, protocol: int) -> None:
        if os.getpid() != parent and child == "dies-midway" and sent:
            raise SystemExit(1)  # the child exits 1 after its first batch
        sent.append(1)
        real_dump(obj, out, protocol)

    real_scan_one = scan_split.scan_one

    def scan_one(path: str, archived: bool, keep_text: bool) -> scan_split.ScanResult:
        if os.getpid() != parent and child == "dies":
            raise SystemExit(1)
        return real_scan_one(path, archived, keep_text)

    monkeypatch.setattr(pickle, "dump", dump)
    monkeypatch.setattr(scan_split, "scan_one", scan_one)
    results = scan_split.ScanChild(jobs, keep_text=True).results()
    assert [_of(r) for r in results] == [_of(r) for r in serial]


def _of(result: scan_split.ScanResult) -> object:
    return result if isinstance(result, scan_split.ScanFailure) else (result[0].facts, result[1])


def test_a_scan_sent_back_shares_this_process_strings(tmp_path: Path) -> None:
    """Unpickled, a scan's strings are copies of their own: `shared_strings` makes them the
    listed path and the interned id, source, mode, first message and title (which the DB's
    rows and the index's lines intern too), the first turn's text that first message
    again, and changes no value."""
    home = _home(tmp_path, 3)
    path, archived = scan_queue.start_scan(home).found[0]
    sent = scan_split.scan_one(path, archived, True)
    assert not isinstance(sent, scan_split.ScanFailure)
    back = pickle.loads(pickle.dumps(sent))
    assert back[0].facts.path is not path
    assert back[0].facts.user_turns.texts is not None
    first = sent[0].facts.first_user_message
    assert first is not None and back[0].facts.first_user_message is not sys.intern(first)
    shared = scan_queue.shared_strings(back, path)
    assert shared is back and shared[0].facts == sent[0].facts and shared[1] == sent[1]
    facts = shared[0].facts
    assert facts.path is path
    for value in (facts.thread_id, facts.source, facts.history_mode, facts.first_user_message):
        assert value is not None and value is sys.intern("".join(value))
    assert facts.title is not None and facts.title is sys.intern("".join(facts.title))
    texts = facts.user_turns.texts
    assert texts is not None and texts[0] is facts.first_user_message
    failure = scan_split.ScanFailure("unreadable", "gone")
    assert scan_queue.shared_strings(failure, path) is failure


def test_gathered_facts_without_a_rename_share_the_one_empty_list(tmp_path: Path) -> None:
    home = _home(tmp_path, 4)
    serial, _ = engine.scan_rollouts(home, [])
    facts = gather(home).rollouts
    assert facts == _facts(serial) and len(facts) == 7
    assert all(f.renames is NO_RENAMES for f in facts.values())
