"""The Codex simulator (tests/support/codexsim.py) against the real CLI: the history trim
under `[history] max_bytes` (bytes and inode), the TUI's history line vs its rollout turn,
and `codex exec` writing no history line."""

from __future__ import annotations

import os
import random
from datetime import datetime
from pathlib import Path

from tests.e2e.codexkit import (
    MockResponsesServer,
    TuiSession,
    codex_exec,
    find_rollout,
    make_codex_home,
    read_history,
    read_rollout,
    stop_managed_daemon,
)
from tests.support.codexsim import CodexSim, append_history_locked
from tests.support.waiting import wait_for

MAX_BYTES = 250


def user_turn_times(home: Path, thread_id: str) -> list[float]:
    rollout = find_rollout(home, thread_id)
    assert rollout is not None
    out = []
    for record in read_rollout(rollout):
        payload = record.get("payload") or {}
        if (
            payload.get("type") == "item_completed"
            and (payload.get("item") or {}).get("type") == "UserMessage"
        ):
            out.append(
                datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp()
            )
    return out


def submit(tui: TuiSession, home: Path, prompt: str) -> None:
    """Type `prompt` and wait for its history line (found anywhere: the trim shortens the
    file, so counting lines, as `TuiSession.submit` does, would miss it)."""
    tui.send_text(prompt)
    tui.wait_for_screen(lambda s: prompt[:40] in s, 30, "prompt echoed in composer")
    tui.send_key("Enter")
    wait_for(
        lambda: any(e.get("text") == prompt for e in read_history(home)),
        timeout=30,
        what="history.jsonl entry",
    )


def test_history_trim_matches_the_real_tui(
    tmp_path: Path, mock_server: MockResponsesServer, codex_bin: Path, tmux_bin: Path
) -> None:
    home = make_codex_home(tmp_path / "real", mock_server, history_max_bytes=MAX_BYTES)
    scratch = tmp_path / "sim"
    scratch.mkdir()
    prompts = [f"Prompt number {n} about the simulator's trimming rule" for n in range(4)]
    inode = None
    try:
        with TuiSession(home, codex_bin=codex_bin, tmux_bin=tmux_bin) as tui:
            for prompt in prompts:
                submit(tui, home, prompt)
                real = (home / "history.jsonl").read_bytes()
                newest = real.splitlines(keepends=True)[-1]
                # The same append through the simulator, on a file that held the same bytes.
                result = append_history_locked(scratch, newest, MAX_BYTES)
                assert result.ok
                assert (scratch / "history.jsonl").read_bytes() == real, prompt
                st = (home / "history.jsonl").stat()
                inode = inode or st.st_ino
                assert st.st_ino == inode and st.st_mode & 0o777 == 0o600
        assert len(real) <= MAX_BYTES and real.count(b"\n") < len(prompts)  # it did trim
        entry_sid = real.splitlines()[-1].split(b'"')[3].decode()
        hist_ts = [int(raw.split(b'"ts":')[1].split(b",")[0]) for raw in real.splitlines()]
        turn_ts = user_turn_times(home, entry_sid)
        # The history line's ts is taken 0-1 s before the rollout's user turn (in seconds).
        assert int(turn_ts[-1]) - hist_ts[-1] in (0, 1)
    finally:
        stop_managed_daemon(home, codex_bin=codex_bin)


def test_exec_writes_no_history_like_the_simulator(
    tmp_path: Path, mock_server: MockResponsesServer, codex_bin: Path
) -> None:
    home = make_codex_home(tmp_path / "real", mock_server)
    thread_id = codex_exec(home, "An exec prompt", codex_bin=codex_bin)
    assert not (home / "history.jsonl").exists()
    assert len(user_turn_times(home, thread_id)) == 1
    sim = CodexSim(tmp_path / "sim", random.Random(0))
    thread = sim.new_thread(tui=False)
    sim.exec_turn(thread)
    assert not (tmp_path / "sim" / "history.jsonl").exists()
    assert not os.path.exists(tmp_path / "sim" / "session_index.jsonl")  # exec never names
