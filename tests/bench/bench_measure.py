"""Measuring child processes for the benchmarks: wall time, CPU time, peak RSS, warm-up."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

READ_CHUNK = 1 << 20


def iter_files(root: Path) -> Iterator[Path]:
    """Every regular file below `root`."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            yield Path(dirpath, name)


def warm(homes: Sequence[Path]) -> int:
    """Read every file once so both tools start with the same (warm) page cache."""
    total = 0
    for home in homes:
        for path in iter_files(home):
            with path.open("rb", buffering=0) as handle:
                while chunk := handle.read(READ_CHUNK):
                    total += len(chunk)
    return total


def maxrss_kib(ru_maxrss: int) -> int:
    """`ru_maxrss` in KiB (Linux reports KiB, macOS bytes)."""
    return ru_maxrss // 1024 if sys.platform == "darwin" else ru_maxrss


# Runs in a small `python -S` process: forks, execs the command, reaps it with `os.wait4` and
# reports "wall maxrss utime stime exit" on fd argv[1]. Measuring from a small launcher matters:
# Linux carries the RSS high-water mark of the pre-exec address space into the child's
# `ru_maxrss`, and with vfork/posix_spawn that address space is the (big) benchmark process.
LAUNCHER = """
import os, sys, time
fd, cmd = int(sys.argv[1]), sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
code = os.waitstatus_to_exitcode(status)
os.write(fd, f"{wall!r} {usage.ru_maxrss} {usage.ru_utime!r} {usage.ru_stime!r} {code}".encode())
"""


def run_child(cmd: Sequence[str], env: dict[str, str], log: Path) -> tuple[float, float, int, int]:
    """Run `cmd`; return (wall s, user+sys CPU s, peak RSS KiB, exit code) via `os.wait4`."""
    read_fd, write_fd = os.pipe()
    try:
        with log.open("wb") as out:
            subprocess.run(
                [sys.executable, "-S", "-c", LAUNCHER, str(write_fd), *cmd],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                pass_fds=(write_fd,),
                check=True,
            )
        os.close(write_fd)
        write_fd = -1
        with os.fdopen(read_fd, "rb") as report:
            read_fd = -1
            wall, rss, utime, stime, code = report.read().decode().split()
    finally:
        for fd in (read_fd, write_fd):
            if fd != -1:
                os.close(fd)
    return float(wall), float(utime) + float(stime), maxrss_kib(int(rss)), int(code)


def measure_floors(python: str, workdir: Path, with_ours: bool) -> dict[str, float]:
    """Peak RSS of the bare interpreter and of importing ours (`repair --help`), in MiB."""
    commands = {"bare python": [python, "-c", "pass"]}
    if with_ours:
        commands["ours imports"] = [python, "-m", "codex_indexd", "repair", "--help"]
    floors: dict[str, float] = {}
    for name, cmd in commands.items():
        samples = [run_child(cmd, dict(os.environ), workdir / "floor.log")[2] for _ in range(3)]
        floors[name] = statistics.median(samples) / 1024
    return floors
