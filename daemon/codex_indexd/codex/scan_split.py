"""Rollout scans shared with a second process, which scans files as this process would and
sends the results back pickled, in batches. Two ways to share:

- `ScanChild` (the daemon's full scan): the child gets a fixed share of the files.
- `scan_queue.SharedScan` (`repair`'s large cold scan): the files wait in a queue of
  tickets, largest first, and each process takes the next ticket whenever it is free.

The child is forked where the process has no other thread (cheapest), and otherwise spawned
as `python -m codex_indexd.codex.scan_split` (safe beside the daemon's threads; its start and
imports cost about 35 ms). A child that fails, dies or sends something else is logged once
and what it did not send is scanned here: no file is ever left out.

Run as a module, it is that child: it reads `(keep_text, jobs, queue)` pickled on stdin
(`queue`: None for a fixed share, else the tickets and the queue's descriptor) and writes
its results to stdout.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import IO, cast

from codex_indexd.codex.rollout import RolloutScan
from codex_indexd.codex.rollout_fd import NotRegularFile
from codex_indexd.codex.rollout_file import scan_file_sized
from codex_indexd.log import get_logger
from codex_indexd.log.redact import safe_detail
from codex_indexd.peak import peak_kib
from codex_indexd.records import record

# `pickle` and `signal` are imported where a child is started or run: `repair` on a small
# home never starts one.

log = get_logger("codex_indexd.scan")
ScanJob = tuple[str, bool]  # a rollout's path and whether it is archived
_BATCH = 256  # scans per pickle the child sends
# The service manager's settings for the daemon itself, never the child's.
_NOT_INHERITED = frozenset({"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS"})


@record(slots=True)
class ScanFailure:
    """Why a file was not scanned: `kind` is "not_regular", "unreadable" (both OSError, with
    `error` its message) or "unparsable" (`error` the exception's type name, `detail` a
    `safe_detail` of it, never the file's text)."""

    kind: str
    error: str
    detail: str = ""


ScanResult = tuple[RolloutScan, int] | ScanFailure  # the scan and the size read up to


def scan_one(path: str, archived: bool, keep_text: bool) -> ScanResult:
    """Scan one rollout from its start; return the scan and the size seen at open, or why it
    could not be scanned. Never raises for the file's trouble."""
    scan = RolloutScan.start(path, archived=archived)
    scan.keep_text = keep_text
    try:
        return scan_file_sized(scan, path)
    except Exception as exc:  # a file the reader chokes on is skipped, not the home
        return failure_of(exc)


def failure_of(exc: Exception) -> ScanFailure:
    """Return why a scan that raised `exc` failed: a non-regular file, an unreadable one (any
    other OSError), or one the reader could not parse (any other exception)."""
    if isinstance(exc, NotRegularFile):
        return ScanFailure("not_regular", str(exc))
    if isinstance(exc, OSError):
        return ScanFailure("unreadable", str(exc))
    return ScanFailure("unparsable", type(exc).__name__, safe_detail(exc))


def tail_start(weights: Sequence[int], child_share: float) -> int:
    """Return the index from which the files hold about `child_share` of the total weight
    (the child's share is that tail); `len(weights)` when the tail would be empty."""
    left = sum(weights) * child_share
    i = len(weights)
    while i > 0 and left > 0:
        i -= 1
        left -= weights[i]
    return i


def may_fork() -> bool:
    """True when a child may be forked: this is the process's only thread (a fork copies
    no other thread, and any lock one of them held stays held in the child)."""
    import _thread

    # Every thread `threading` starts counts here too, without importing it.
    return _thread._count() == 0 and hasattr(os, "fork")


def child_argv() -> list[str]:
    """Return the command of a spawned child (`-P`: no module of the working directory)."""
    return [sys.executable, "-P", "-m", __name__]


class ChildScan:
    """One child process scanning rollouts (forked or spawned) and the pipe its results come
    back through."""

    def __init__(self) -> None:
        self._pid = -1
        self._source: IO[bytes] | None = None
        self.peak_kib = 0  # the child's VmHWM as it reported it (0: unknown)

    def _start(
        self,
        run: Callable[[IO[bytes]], None],
        payload: tuple[object, ...],
        pass_fds: tuple[int, ...] = (),
        *,
        quiet: bool = False,
    ) -> None:
        """Start the child: forked (it calls `run` with its end of the results pipe) when this
        is the process's only thread, else spawned (`payload` on its stdin, `pass_fds` kept
        open in it). A child that cannot be started is logged (`_source` then stays None),
        or with `quiet` its OSError is raised."""
        # Loaded now, while the child starts its work, rather than by both processes at the
        # end of it: the child to send its results, this process to read them.
        import pickle  # noqa: F401

        try:
            if may_fork():
                self._fork(run)
            else:
                self._spawn(payload, pass_fds)
        except OSError as exc:
            if quiet:
                raise
            log.warning("rollout.scan_child_failed", error=str(exc))

    def _fork(self, run: Callable[[IO[bytes]], None]) -> None:
        read_end, write_end = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            raise
        if pid == 0:  # the child: scan, send, exit without running the parent's cleanup
            code = 1
            try:
                os.close(read_end)
                with os.fdopen(write_end, "wb") as out:
                    run(out)
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        self._pid, self._source = pid, os.fdopen(read_end, "rb")

    def _spawn(self, payload: tuple[object, ...], pass_fds: tuple[int, ...]) -> None:
        import pickle
        import subprocess
        import tempfile

        # The jobs go through a file: through a pipe, this process would wait for the
        # child's start before it could scan its own share.
        with tempfile.TemporaryFile() as work:
            pickle.dump(payload, work, 5)
            work.seek(0)
            # The child imports the package from where this process did.
            package_dir = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
            path = os.environ.get("PYTHONPATH")
            env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
            env["PYTHONPATH"] = os.pathsep.join(p for p in (package_dir, path) if p)
            child = subprocess.Popen(
                child_argv(),
                stdin=work,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                close_fds=True,
                pass_fds=pass_fds,
            )
        assert child.stdout is not None
        # Waited for below with os.wait4 (for its peak memory), not through the Popen object.
        child.returncode = 0
        self._pid, self._source = child.pid, child.stdout

    def discard(self) -> None:
        """Stop the child (its results unread, if any are left) and wait for it; a child
        that sent everything is only waited for."""
        if self._source is not None:
            self._source.close()
            self._source = None
            if self._pid > 0:
                import signal

                with contextlib.suppress(OSError):
                    os.kill(self._pid, signal.SIGKILL)
        if self._pid > 0:
            os.waitpid(self._pid, 0)
            self._pid = -1

    def _collect(
        self, valid: Callable[[object], bool], *, reap_later: bool = False
    ) -> tuple[list[object] | None, int | None]:
        """Read the child's batches (each a non-empty list whose items all pass `valid`) up
        to its peak memory, then wait for it. Return the items (None when the child failed,
        died or sent something else) and its wait status (None when none was started).
        With `reap_later`, a child that sent everything but has not exited yet is not
        waited for (its status counts as 0): `discard()` reaps it."""
        import pickle

        items: list[object] | None = None
        source, self._source = self._source, None
        if source is not None:
            items = []
            with source:
                try:
                    # Unpickled as they are read, in frames: no batch is ever held as bytes.
                    while True:
                        batch = pickle.load(source)
                        if type(batch) is int:
                            self.peak_kib = batch
                            break
                        if not (isinstance(batch, list) and batch and all(map(valid, batch))):
                            items = None
                            break
                        items.extend(batch)
                except (pickle.PickleError, EOFError, ValueError, AttributeError, TypeError):
                    items = None
        if self._pid <= 0:
            return None, None
        if reap_later and items is not None:
            pid, status = os.waitpid(self._pid, os.WNOHANG)
            if pid == 0:  # still tearing down its memory
                return items, 0
        else:
            _, status = os.waitpid(self._pid, 0)
        self._pid = -1
        return (items if status == 0 else None), status


class ScanChild(ChildScan):
    """One child scanning `jobs`; `results()` waits for them."""

    def __init__(self, jobs: list[ScanJob], keep_text: bool) -> None:
        """Start the child (forked when this is the process's only thread, else spawned).
        A child that cannot be started is logged; its jobs are then scanned by `results()`."""
        super().__init__()
        self.jobs, self.keep_text = jobs, keep_text
        self._start(lambda out: _scan_and_send(jobs, keep_text, out), (keep_text, jobs, None))

    def results(self) -> list[ScanResult]:
        """Return the child's results, one per job in order; when the child failed, the jobs
        scanned here instead."""
        results, status = self._collect(is_result)
        if results is not None and len(results) == len(self.jobs):
            return cast(list[ScanResult], results)
        if status is not None:
            log.warning("rollout.scan_child_failed", status=status)
        return [scan_one(path, archived, self.keep_text) for path, archived in self.jobs]


def is_result(value: object) -> bool:
    """True when `value` has the shape of a `ScanResult`."""
    if isinstance(value, ScanFailure):
        return True
    return (
        type(value) is tuple
        and len(value) == 2
        and isinstance(value[0], RolloutScan)
        and type(value[1]) is int
    )


def _scan_and_send(jobs: list[ScanJob], keep_text: bool, out: IO[bytes]) -> None:
    """Scan every job, then send the results (`send_results`)."""
    import gc

    gc.disable()  # the scans are all kept until sent: a collector pass finds nothing to free
    send_results([scan_one(path, archived, keep_text) for path, archived in jobs], out)


def send_results(results: Sequence[object], out: IO[bytes]) -> None:
    """Send `results` in batches, each its own pickle, then this process's peak memory (an
    int, which ends the stream): unpickling holds every object of a pickle until its end, so
    the reader's peak grows with a batch, not with the share."""
    import pickle

    for i in range(0, len(results), _BATCH):
        pickle.dump(results[i : i + _BATCH], out, 5)
    pickle.dump(peak_kib(), out, 5)


def _main() -> int:
    """The spawned child: jobs from stdin, results to stdout; return the exit code."""
    import pickle
    import signal

    # A stop signal sent to the daemon's whole group (Ctrl-C, the service manager) is the
    # daemon's to act on, after its start: the child finishes its share, or exits on a
    # broken pipe when the daemon is gone.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        keep_text, jobs, queue = pickle.load(sys.stdin.buffer)
        with os.fdopen(os.dup(sys.stdout.fileno()), "wb") as out:
            if queue is None:
                _scan_and_send(jobs, bool(keep_text), out)
            else:
                from codex_indexd.codex.scan_queue import take_and_send

                tickets, fd = queue
                take_and_send(jobs, tickets, fd, bool(keep_text), out)
    except Exception:  # the parent sees the exit code and scans the share itself
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
