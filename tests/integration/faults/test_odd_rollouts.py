"""Rollouts that are not regular files, text Codex's parser rejects, blank and long turns:
skipped with a line naming them (or kept whole), never a hang, and SIGTERM still works."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codex_indexd.cli import main
from tests.support.daemons import DaemonProcess, source_pythonpath
from tests.support.homes import (
    BASE_TIME,
    build_home,
    new_thread,
    read_jsonl,
    rollout_lines,
    rollout_name,
    session_meta,
)
from tests.support.waiting import wait_for

HOSTILE = ("fifo", "dev_zero_link", "dir_link", "link_loop")


def sessions_dir(home: Path) -> Path:
    day = home / "sessions" / BASE_TIME.strftime("%Y/%m/%d")
    day.mkdir(parents=True, exist_ok=True)
    return day


def add_hostile(home: Path, kind: str, i: int) -> Path:
    path = sessions_dir(home) / rollout_name(new_thread(i))
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero_link":
        path.symlink_to("/dev/zero")
    elif kind == "dir_link":
        path.symlink_to(home)
    else:
        path.symlink_to(path)
    return path


def index_ids(home: Path) -> set[str]:
    target = home / "session_index.jsonl"
    return {e["id"] for e in read_jsonl(target)} if target.exists() else set()


def test_repair_skips_non_regular_rollouts_without_hanging(tmp_path: Path) -> None:
    threads = [new_thread(i, paginated=True) for i in range(2)]
    home = build_home(tmp_path / "h", threads)
    bad = [add_hostile(home, kind, 50 + n) for n, kind in enumerate(HOSTILE)]
    env = {**os.environ, "PYTHONPATH": source_pythonpath()}
    done = subprocess.run(
        [sys.executable, "-m", "codex_indexd", "repair", "--codex-home", str(home), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    named = {w["path"] for w in report["warnings"]}
    assert set(map(str, bad)) <= named
    assert index_ids(home) == {t.thread_id for t in threads}


def test_daemon_serves_the_others_and_exits_on_sigterm(tmp_path: Path) -> None:
    threads = [new_thread(i, paginated=True) for i in range(2)]
    home = build_home(tmp_path / "h", threads)
    add_hostile(home, "fifo", 60)  # present at start
    add_hostile(home, "dev_zero_link", 61)
    daemon = DaemonProcess(home)
    try:
        wait_for(lambda: index_ids(home) == {t.thread_id for t in threads}, 20, "index written")
        late = new_thread(3, paginated=True)
        add_hostile(home, "fifo", 62)  # arriving while running
        add_hostile(home, "dev_zero_link", 63)
        # (a blank line after each: the reader skips them)
        (sessions_dir(home) / rollout_name(late)).write_text(
            "".join(raw + "\n" for raw in rollout_lines(late))
        )
        wait_for(lambda: late.thread_id in index_ids(home), 20, "a later thread indexed")
        start = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=5) == 0
        assert time.monotonic() - start < 2.0
    finally:
        daemon.close()
    log = daemon.stderr
    assert "not a regular file" in log or "symlink to a" in log


def rollout_with_prompts(home: Path, i: int, prompts: list[bytes]) -> Path:
    thread = new_thread(i)
    path = sessions_dir(home) / rollout_name(thread)
    out = [session_meta(thread.thread_id, "2026-11-20T10:00:00.000Z").encode() + b"\n"]
    for n, message in enumerate(prompts):
        out.append(
            b'{"timestamp":"2026-11-20T10:00:0%d.000Z","type":"event_msg","payload":'
            b'{"type":"user_message","message":"%s"}}\n' % (n + 1, message)
        )
    path.write_bytes(b"".join(out))
    return path


def history_texts(home: Path) -> list[str]:
    return [h["text"] for h in read_jsonl(home / "history.jsonl")]


def test_lone_surrogate_and_invalid_utf8_turns_are_malformed_not_fatal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = build_home(tmp_path / "h", [new_thread(0, paginated=True)])
    path = rollout_with_prompts(
        home, 7, [b"lone \\ud800 surrogate", b"bad \xff\xfe utf8", b"kept after them"]
    )
    assert main(["repair", "--codex-home", str(home), "--json", "--include-orphans"]) == 0
    report = json.loads(capsys.readouterr().out)
    warnings = {(w["event"], w["path"]): w["detail"] for w in report["warnings"]}
    assert warnings[("rollout.malformed_lines", str(path))] == "2 lines"
    assert "kept after them" in history_texts(home)
    assert new_thread(7).thread_id in index_ids(home)


def test_blank_turns_get_no_history_line_as_in_codex(tmp_path: Path) -> None:
    """Codex's composer trims the input and never submits blank text, so no history line."""
    home = build_home(tmp_path / "h", [new_thread(0, paginated=True)])
    rollout_with_prompts(home, 8, [b"   ", b"\\n\\t ", b"real prompt"])
    assert main(["repair", "--codex-home", str(home), "--include-orphans"]) == 0
    texts = history_texts(home)
    assert "real prompt" in texts
    assert not [t for t in texts if not t.strip()]


def test_a_long_user_turn_is_kept_whole(tmp_path: Path) -> None:
    """Codex accepts 2**20 characters; an escaped line of that is far over the old 8 MiB cap."""
    home = build_home(tmp_path / "h", [new_thread(0, paginated=True)])
    long_text = "\\u00e9" * (1 << 20) + "\\u00e9" * 500_000  # 10.5 MiB of JSON escapes
    rollout_with_prompts(home, 9, [long_text.encode()])
    assert main(["repair", "--codex-home", str(home), "--include-orphans"]) == 0
    assert any(t == "é" * ((1 << 20) + 500_000) for t in history_texts(home))
    assert new_thread(9).thread_id in index_ids(home)


def test_a_turn_too_long_to_keep_still_names_its_thread(tmp_path: Path) -> None:
    home = build_home(tmp_path / "h", [new_thread(0, paginated=True)])
    rollout_with_prompts(home, 10, [b"Name me " + b"x" * (20 * 1024 * 1024)])
    assert main(["repair", "--codex-home", str(home), "--include-orphans"]) == 0
    names = {e["id"]: e["thread_name"] for e in read_jsonl(home / "session_index.jsonl")}
    assert names[new_thread(10).thread_id].startswith("Name me x")


def test_tracker_logs_a_non_regular_rollout_once(tmp_path: Path) -> None:
    from structlog.testing import capture_logs

    from codex_indexd.codex.home import CodexHome
    from codex_indexd.engine.live import RolloutTracker

    home = build_home(tmp_path / "h", [new_thread(0)], db=False)
    fifo = add_hostile(home, "fifo", 70)
    tracker = RolloutTracker(CodexHome(home))
    with capture_logs() as logs:
        for _ in range(3):
            assert tracker.full_scan() == 2
            assert not tracker.refresh(fifo)
    refusals = [e for e in logs if e["event"] == "rollout.not_regular"]
    assert len(refusals) == 1 and refusals[0]["path"] == str(fifo)
    assert "FIFO" in refusals[0]["error"]
    assert set(tracker.facts()) == {new_thread(0).thread_id}


TWENTY_MB = 20 * 1024 * 1024


def test_a_20mb_prompt_reaches_history_through_repair(tmp_path: Path) -> None:
    home = build_home(tmp_path / "h", [new_thread(0, paginated=True)])
    rollout_with_prompts(home, 11, [b"Big one " + b"y" * TWENTY_MB, b"and a small one"])
    assert main(["repair", "--codex-home", str(home), "--include-orphans"]) == 0
    texts = history_texts(home)
    assert "Big one " + "y" * TWENTY_MB in texts
    assert "and a small one" in texts
    assert new_thread(11).thread_id in index_ids(home)


def test_a_20mb_prompt_reaches_history_through_the_daemon(tmp_path: Path) -> None:
    home = build_home(tmp_path / "h", [new_thread(0, paginated=True)])
    daemon = DaemonProcess(home)
    try:
        wait_for(lambda: new_thread(0, paginated=True).thread_id in index_ids(home), 20, "ready")
        rollout_with_prompts(home, 12, [b"Huge " + b"\\u00e9" * (TWENTY_MB // 6)])

        def arrived() -> bool:
            target = home / "history.jsonl"
            return target.exists() and target.stat().st_size > TWENTY_MB // 6

        wait_for(arrived, 60, "the long turn in history")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0
    finally:
        daemon.close()
    assert "Huge " + "é" * (TWENTY_MB // 6) in history_texts(home)
    assert new_thread(12).thread_id in index_ids(home)
