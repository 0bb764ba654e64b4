"""Prompt text never reaches a log line, whatever the path; log files are 0600 in a 0700 dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from codex_indexd.cli import main
from tests.support.daemons import DaemonProcess
from tests.support.homes import (
    Turn,
    build_home,
    new_thread,
    rollout_name,
    session_meta,
    user_message,
)
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
MARKER = "PROMPT-MARKER-7f3a"


def home_with_marked_prompts(tmp_path: Path) -> Path:
    threads = [new_thread(i, turns=1, paginated=i % 2 == 0) for i in range(3)]
    for thread in threads:
        thread.turns = [Turn(f"{MARKER} secret prompt of {thread.thread_id}")]
    home = build_home(tmp_path / "h", threads)
    bad_dir = home / "sessions" / "2026" / "11" / "21"
    bad_dir.mkdir(parents=True)
    broken = new_thread(50)
    meta = session_meta(broken.thread_id, "2026-11-21T00:00:00.000Z")
    torn = user_message(f"{MARKER} in a broken file", "2026-11-21T00:00:01.000Z")
    (bad_dir / rollout_name(broken)).write_text(
        meta + '{"type":"event_msg","user_message":"' + MARKER + "\n" + torn[:-30]
    )
    (home / "history.jsonl").write_text(f"not json {MARKER}\n")
    (home / "session_index.jsonl").write_text(f'{{"id": "bad", "thread_name": "{MARKER}"\n')
    return home


def test_repair_and_daemon_logs_never_contain_prompts(
    tmp_path: Path, private_dirs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = home_with_marked_prompts(tmp_path)
    assert (
        main(["repair", "--codex-home", str(home), "--include-orphans", "--log-level", "debug"])
        == 0
    )
    captured = capsys.readouterr()
    assert MARKER in (home / "history.jsonl").read_text()  # the prompts were really processed
    assert MARKER not in captured.err
    daemon = DaemonProcess(home, env={"CODEX_INDEXD_LOG_LEVEL": "debug"})
    log = private_dirs / "log" / "codex-indexd.log"
    try:
        wait_for(lambda: log.exists() and "daemon.ready" in log.read_text(), 15, "daemon.ready")
        with next((home / "sessions" / "2026" / "11" / "20").glob("rollout-*.jsonl")).open(
            "a"
        ) as handle:
            handle.write(user_message(f"{MARKER} appended", "2026-11-25T00:00:00.000Z"))
        wait_for(
            lambda: f"{MARKER} appended" in (home / "history.jsonl").read_text(),
            10,
            "the appended turn in history",
        )
    finally:
        daemon.terminate(timeout=10)
        stderr = daemon.stderr
        daemon.close()
    text = log.read_text()
    assert "index.repaired" in text and "rollout" in text
    assert MARKER not in text and MARKER not in stderr
    assert (log.stat().st_mode & 0o777) == 0o600
    assert (log.parent.stat().st_mode & 0o777) == 0o700
