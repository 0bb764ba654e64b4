"""The scan progress bar: drawn on a terminal once the scan takes over a second, never otherwise."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios
from pathlib import Path

import pytest

from tests.support.daemons import cli_command
from tests.support.homes import build_home, new_thread

# slow reads down so the scan outlasts the 1 s delay even on a fast machine
SLOW_SCAN = ["scan-delay-ms=5"]

ROOT = Path(__file__).resolve().parents[2]


def run_repair(home: Path, tty: bool, size: tuple[int, int] = (24, 100)) -> str:
    """Run `repair --dry-run` with stderr on a pty of `size` (rows, columns) or a pipe;
    return what it wrote there."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
    }
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    argv = cli_command("repair", "--codex-home", str(home), "--dry-run", seams=SLOW_SCAN)
    if not tty:
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120).stderr
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=secondary, env=env)
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(primary, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(primary)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_progress_counts_bytes_and_files(tmp_path: Path) -> None:
    threads = [new_thread(i, turns=1) for i in range(300)]
    home = build_home(tmp_path / "h", threads, db=False)
    err = run_repair(home, tty=True)
    assert "scanning" in err and "/300 rollouts" in err, err[-500:]
    assert "kB" in err or "MB" in err, err[-500:]  # a byte count, scaled


@pytest.mark.slow
def test_a_terminal_without_a_size_gets_plain_lines(tmp_path: Path) -> None:
    threads = [new_thread(i, turns=1) for i in range(300)]
    home = build_home(tmp_path / "h", threads, db=False)
    err = run_repair(home, tty=True, size=(0, 0))
    assert "scanning rollouts: " in err and " of 300 files)" in err, err[-500:]
    assert "\r" not in err.replace("\r\n", "\n")  # whole lines, no redrawing


@pytest.mark.slow
@pytest.mark.parametrize("tty", [True, False])
def test_progress_only_on_a_terminal_after_one_second(tmp_path: Path, tty: bool) -> None:
    threads = [new_thread(i, turns=1) for i in range(300)]
    home = build_home(tmp_path / "h", threads, db=False)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "100",
    }
    argv = cli_command("repair", "--codex-home", str(home), "--dry-run", seams=SLOW_SCAN)
    if tty:
        primary, secondary = pty.openpty()
        # a real terminal has a size; tqdm draws nothing on a 0×0 one
        fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=secondary, env=env)
        os.close(secondary)
        chunks = []
        while True:
            try:
                data = os.read(primary, 4096)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=120)
        os.close(primary)
        err = b"".join(chunks).decode(errors="replace")
    else:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        err = done.stderr
    if tty:
        assert "scanning" in err and "rollout" in err, err[-500:]
    else:
        assert "scanning" not in err
