"""The scan progress bar: drawn on a terminal once the scan takes over a second, never otherwise."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.support.homes import build_home, new_thread

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("tty", [True, False])
def test_progress_only_on_a_terminal_after_one_second(tmp_path: Path, tty: bool) -> None:
    threads = [new_thread(i, turns=1) for i in range(300)]
    home = build_home(tmp_path / "h", threads, db=False)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "100",
        # slow reads down so the scan outlasts the 1 s delay even on a fast machine
        "CODEX_INDEXD_TEST_SCAN_DELAY_MS": "5",
    }
    argv = [sys.executable, "-m", "codex_indexd", "repair", "--codex-home", str(home), "--dry-run"]
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
