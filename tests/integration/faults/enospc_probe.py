"""Runs inside a private mount namespace with a 64 KiB tmpfs at argv[1] (see test_full_disk).

Prints one JSON object with what it observed. Not a test module by itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))  # run as a script: make `tests.…` importable

from tests.support.daemons import DaemonProcess, source_pythonpath  # noqa: E402
from tests.support.homes import build_home, new_thread  # noqa: E402


def fill(directory: Path) -> Path:
    """Fill the filesystem with a ballast file; return it."""
    ballast = directory / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 512)
    except OSError:
        pass
    finally:
        os.close(fd)
    return ballast


def padded(first: bytes, head: bytes, tail: bytes, size: int = 4096 - 8) -> bytes:
    """Return `first` plus one filler line so that the whole is `size` bytes."""
    filler = size - len(first) - len(head) - len(tail)
    return first + head + b"f" * filler + tail


def main() -> int:
    mount, work = Path(sys.argv[1]), Path(sys.argv[2])
    env = {
        **os.environ,
        "PYTHONPATH": source_pythonpath(),
        "CODEX_INDEXD_STATE_DIR": str(work / "state"),
        "CODEX_INDEXD_CACHE_DIR": str(work / "cache"),
        "CODEX_INDEXD_LOG_DIR": str(work / "log"),
        "CODEX_INDEXD_CONFIG": str(work / "config.toml"),
    }
    threads = [new_thread(i, turns=2, paginated=True, tool_output_bytes=50) for i in range(6)]
    home = build_home(mount / "home", threads, db=False)  # no DB: it would not fit in 64 KiB
    # Both files end just short of a page, so any growth needs a block the disk no longer has.
    index_line = b'{"id":"x","thread_name":"keep","updated_at":"y"}\n'
    (home / "session_index.jsonl").write_bytes(
        padded(index_line, b'{"id":"x","thread_name":"', b'","updated_at":"y"}\n')
    )
    (home / "history.jsonl").write_bytes(
        padded(
            b'{"session_id":"x","ts":1,"text":"keep me"}\n',
            b'{"session_id":"x","ts":2,"text":"',
            b'"}\n',
        )
    )
    os.chmod(home / "history.jsonl", 0o600)
    originals = {n: (home / n).read_bytes() for n in ("session_index.jsonl", "history.jsonl")}
    ballast = fill(mount)
    result: dict[str, object] = {}
    repair = subprocess.run(
        [
            sys.executable,
            "-m",
            "codex_indexd",
            "repair",
            "--codex-home",
            str(home),
            "--max-threads",
            "0",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    result["repair_code"] = repair.returncode
    result["repair_says_enospc"] = "No space left" in repair.stdout
    result["intact_after_repair"] = all((home / n).read_bytes() == d for n, d in originals.items())
    result["temp_files"] = sorted(p.name for p in home.glob(".*tmp"))
    daemon = DaemonProcess(home, env=env)
    log = work / "log" / "codex-indexd.log"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (
        log.exists() and "write.disk_full" in log.read_text()
    ):
        time.sleep(0.05)
    time.sleep(6)  # several retry periods pass while the disk stays full (retries every 5 s)
    text = log.read_text() if log.exists() else ""
    result["disk_full_logged"] = text.count('"write.disk_full"')
    result["intact_while_full"] = all((home / n).read_bytes() == d for n, d in originals.items())
    ballast.unlink()
    deadline = time.monotonic() + 20
    healed = False
    while time.monotonic() < deadline and not healed:
        data = (home / "history.jsonl").read_bytes()
        healed = data.startswith(originals["history.jsonl"]) and data.count(b"\n") == 14
        time.sleep(0.05)
    result["healed_after_space_returns"] = healed
    result["index_kept"] = (
        (home / "session_index.jsonl").read_bytes().startswith(originals["session_index.jsonl"])
    )
    result["daemon_exit"] = daemon.terminate(timeout=10)
    daemon.close()
    print(json.dumps(result))
    shutil.rmtree(mount / "home", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
