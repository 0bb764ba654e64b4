"""The tracker keeps prompt texts as keys and reads a text back from its own rollout line."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from codex_indexd.codex.home import CodexHome
from codex_indexd.engine.live import RolloutTracker
from codex_indexd.index.model import HistoryLine, text_key
from tests.support.homes import build_home, new_thread, rollout_path


def scanned(tmp_path: Path, turns: int = 3) -> tuple[RolloutTracker, str, list[str], Path]:
    thread = new_thread(0, turns=turns)
    home = build_home(tmp_path / "h", [thread], db=False)
    tracker = RolloutTracker(CodexHome(home))
    tracker.full_scan()
    path = rollout_path(home, thread)
    return tracker, thread.thread_id, [turn.text for turn in thread.turns], path


def keyed_lines(tracker: RolloutTracker, thread_id: str) -> list[HistoryLine]:
    turns = tracker.facts()[thread_id].user_turns
    return [HistoryLine(thread_id, turn.ts, None, turn.key) for turn in turns]


def test_turns_hold_keys_and_offsets_not_texts(tmp_path: Path) -> None:
    tracker, thread_id, texts, _ = scanned(tmp_path)
    turns = tracker.facts()[thread_id].user_turns
    assert [turn.text for turn in turns] == [None, None, None]
    assert [turn.key for turn in turns] == [text_key(text) for text in texts]
    assert all(turn.offset > 0 for turn in turns)
    assert len({turn.offset for turn in turns}) == 3


def test_texts_are_read_back_from_their_lines(tmp_path: Path) -> None:
    tracker, thread_id, texts, _ = scanned(tmp_path)
    found = tracker.read_texts(keyed_lines(tracker, thread_id))
    turns = tracker.facts()[thread_id].user_turns
    assert found == {
        (thread_id, turn.ts, turn.key): text for turn, text in zip(turns, texts, strict=True)
    }


def test_a_line_that_no_longer_holds_its_turn_is_left_out_and_logged(tmp_path: Path) -> None:
    tracker, thread_id, _, path = scanned(tmp_path)
    lines = keyed_lines(tracker, thread_id)
    path.write_bytes(b"x" * 7 + path.read_bytes())  # every offset now points mid-line
    with capture_logs() as logs:
        assert tracker.read_texts(lines) == {}
    assert [r["event"] for r in logs].count("rollout.turn_moved") == 3
    assert all("Prompt" not in str(r) for r in logs), "a prompt reached the log"
