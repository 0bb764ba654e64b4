"""Rollout scans shared with a second process: `repair`'s large cold scan and the daemon's
full scan hand a share of their files to one child, which scans them as this process would
and sends the results back pickled, in batches.

The child is forked where the process has no other thread (cheapest), and otherwise spawned
as `python -m codex_indexd.codex.scan_split` (safe beside the daemon's threads; its start and
imports cost about 35 ms). A child that fails, dies or sends something else is logged once
and its share is scanned here: no file is ever left out.

Run as a module, it is that child: it reads `(keep_text, jobs)` pickled on stdin and writes
its results to stdout.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from typing import IO

from codex_indexd.codex.rollout import RolloutScan
from codex_indexd.codex.rollout_fd import NotRegularFile
from codex_indexd.codex.rollout_file import scan_file_sized
from codex_indexd.log import get_logger
from codex_indexd.log.redact import safe_detail
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


def balance(weights: Sequence[int]) -> tuple[list[int], list[int]]:
    """Split file indexes in two shares of about equal weight (largest first, each to the
    lighter share); return (this process's, the child's), each in increasing order."""
    shares: tuple[list[int], list[int]] = ([], [])
    load = [0, 0]
    for i in sorted(range(len(weights)), key=lambda i: -weights[i]):
        side = 0 if load[0] <= load[1] else 1
        shares[side].append(i)
        load[side] += weights[i]
    return sorted(shares[0]), sorted(shares[1])


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
    import threading

    return threading.active_count() == 1 and hasattr(os, "fork")


def child_argv() -> list[str]:
    """Return the command of a spawned child (`-P`: no module of the working directory)."""
    return [sys.executable, "-P", "-m", __name__]


class ScanChild:
    """One child scanning `jobs`; `results()` waits for them."""

    def __init__(self, jobs: list[ScanJob], keep_text: bool) -> None:
        """Start the child (forked when this is the process's only thread, else spawned).
        A child that cannot be started is logged; its jobs are then scanned by `results()`."""
        self.jobs, self.keep_text = jobs, keep_text
        self._pid = -1
        self._source: IO[bytes] | None = None
        self.peak_kib = 0  # the child's VmHWM as it reported it (0: unknown)
        try:
            if may_fork():
                self._fork()
            else:
                self._spawn()
        except OSError as exc:
            log.warning("rollout.scan_child_failed", error=str(exc))

    def _fork(self) -> None:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: scan, send, exit without running the parent's cleanup
            code = 1
            try:
                os.close(read_end)
                with os.fdopen(write_end, "wb") as out:
                    _scan_and_send(self.jobs, self.keep_text, out)
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        self._pid, self._source = pid, os.fdopen(read_end, "rb")

    def _spawn(self) -> None:
        import pickle
        import subprocess
        import tempfile

        # The jobs go through a file: through a pipe, this process would wait for the
        # child's start before it could scan its own share.
        with tempfile.TemporaryFile() as work:
            pickle.dump((self.keep_text, self.jobs), work, 5)
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
            )
        assert child.stdout is not None
        # Waited for below with os.wait4 (for its peak memory), not through the Popen object.
        child.returncode = 0
        self._pid, self._source = child.pid, child.stdout

    def discard(self) -> None:
        """Stop the child and wait for it, its results unread."""
        import signal

        if self._source is not None:
            self._source.close()
            self._source = None
        if self._pid > 0:
            with contextlib.suppress(OSError):
                os.kill(self._pid, signal.SIGKILL)
            os.waitpid(self._pid, 0)
            self._pid = -1

    def results(self) -> list[ScanResult]:
        """Return the child's results, one per job in order; when the child failed, the jobs
        scanned here instead."""
        import pickle

        results: list[ScanResult] | None = None
        source, self._source = self._source, None
        if source is not None:
            results = []
            with source:
                try:
                    # Unpickled as they are read, in frames: no batch is ever held as bytes.
                    while results is not None and len(results) < len(self.jobs):
                        batch = pickle.load(source)
                        if isinstance(batch, list) and batch and all(map(_is_result, batch)):
                            results.extend(batch)
                        else:
                            results = None
                    peak = pickle.load(source) if results is not None else 0
                    self.peak_kib = peak if isinstance(peak, int) else 0
                except (pickle.PickleError, EOFError, ValueError, AttributeError, TypeError):
                    results = None
        status, started = -1, self._pid > 0
        if started:
            _, status = os.waitpid(self._pid, 0)
            self._pid = -1
        if status == 0 and results is not None and len(results) == len(self.jobs):
            return results
        if started:
            log.warning("rollout.scan_child_failed", status=status)
        return [scan_one(path, archived, self.keep_text) for path, archived in self.jobs]


def _is_result(value: object) -> bool:
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
    """Scan every job, then send the results in batches, each its own pickle: unpickling
    holds every object of a pickle until its end, so the reader's peak grows with a batch,
    not with the share."""
    import gc
    import pickle

    gc.disable()  # the scans are all kept until sent: a collector pass finds nothing to free
    results = [scan_one(path, archived, keep_text) for path, archived in jobs]
    for i in range(0, len(results), _BATCH):
        pickle.dump(results[i : i + _BATCH], out, 5)
    pickle.dump(_own_peak_kib(), out, 5)


def _own_peak_kib() -> int:
    """Return this process's VmHWM in KiB (0 when unknown). Not `ru_maxrss`: after a spawn
    that is at least the parent's resident size when it forked."""
    try:
        with open("/proc/self/status", "rb") as status:
            for row in status:
                if row.startswith(b"VmHWM:"):
                    return int(row.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


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
        keep_text, jobs = pickle.load(sys.stdin.buffer)
        with os.fdopen(os.dup(sys.stdout.fileno()), "wb") as out:
            _scan_and_send(jobs, bool(keep_text), out)
    except Exception:  # the parent sees the exit code and scans the share itself
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
