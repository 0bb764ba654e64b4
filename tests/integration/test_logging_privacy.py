"""Prompt text never reaches a log line, whatever the path; log files are 0600 in a 0700 dir."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from codex_indexd.cli import main
from tests.support.homes import Turn, build_home, line, new_thread, rollout_name
from tests.support.waiting import start_daemon

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
    meta = line(
        {
            "timestamp": "2026-11-21T00:00:00.000Z",
            "type": "session_meta",
            "payload": {"id": broken.thread_id, "timestamp": "2026-11-21T00:00:00.000Z"},
        }
    )
    torn = line(
        {
            "timestamp": "2026-11-21T00:00:01.000Z",
            "type": "event_msg",
            "payload": {"type": "user_message", "message": f"{MARKER} in a broken file"},
        }
    )
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
    daemon = start_daemon(home, extra_env={"CODEX_INDEXD_LOG_LEVEL": "debug"})
    log = private_dirs / "log" / "codex-indexd.log"
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (
            log.exists() and "daemon.ready" in log.read_text()
        ):
            time.sleep(0.05)
        with next((home / "sessions" / "2026" / "11" / "20").glob("rollout-*.jsonl")).open(
            "a"
        ) as handle:
            handle.write(
                line(
                    {
                        "timestamp": "2026-11-25T00:00:00.000Z",
                        "type": "event_msg",
                        "payload": {"type": "user_message", "message": f"{MARKER} appended"},
                    }
                )
            )
        deadline = time.monotonic() + 10
        while (
            time.monotonic() < deadline
            and f"{MARKER} appended" not in (home / "history.jsonl").read_text()
        ):
            time.sleep(0.05)
        assert f"{MARKER} appended" in (home / "history.jsonl").read_text()
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=10)
    text = log.read_text()
    assert "index.repaired" in text and "rollout" in text
    assert MARKER not in text and MARKER not in stderr
    assert (log.stat().st_mode & 0o777) == 0o600
    assert (log.parent.stat().st_mode & 0o777) == 0o700
