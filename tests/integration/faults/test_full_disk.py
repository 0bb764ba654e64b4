"""Full disk: writers on a 64 KiB tmpfs (in a private mount namespace) until ENOSPC."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("enospc_probe.py")


@pytest.mark.slow
@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and unshare(1) to mount a private tmpfs",
)
def test_enospc_keeps_originals_logs_once_and_retries(tmp_path: Path) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    script = f'mount -t tmpfs -o size=64k,nr_inodes=4096 tmpfs "{mount}" && exec "{sys.executable}" "{PROBE}" "{mount}" "{tmp_path}"'
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["repair_code"] == 1 and result["repair_says_enospc"]
    assert result["intact_after_repair"] and result["temp_files"] == []
    assert result["intact_while_full"]
    assert result["disk_full_logged"] == 1, result  # once per episode, not once per retry
    assert result["healed_after_space_returns"] and result["index_kept"]
    assert result["daemon_exit"] == 0
