"""The flap guard pauses a file only when the same lines are written again and again."""

from __future__ import annotations

from codex_indexd.daemon.flap_guard import FlapGuard

NAME = "history.jsonl"


def test_a_file_is_allowed_until_it_is_paused() -> None:
    guard = FlapGuard(limit=3, window_s=600.0, pause_s=600.0)
    assert guard.allow(NAME, 0.0)
    assert guard.paused(0.0) == []


def test_the_same_line_written_more_than_limit_times_pauses_the_file() -> None:
    guard = FlapGuard(limit=3, window_s=600.0, pause_s=100.0)
    for t in range(3):
        assert guard.record(NAME, float(t), ["line"])
    assert not guard.record(NAME, 3.0, ["line"])
    assert not guard.allow(NAME, 3.0)
    assert guard.paused(3.0) == [NAME]
    assert guard.allow("session_index.jsonl", 3.0), "only the fighting file pauses"


def test_the_pause_ends_after_pause_s() -> None:
    guard = FlapGuard(limit=1, window_s=600.0, pause_s=100.0)
    guard.record(NAME, 0.0, ["line"])
    assert not guard.record(NAME, 1.0, ["line"])
    assert not guard.allow(NAME, 100.9)
    assert guard.allow(NAME, 101.0)
    assert guard.paused(101.0) == []


def test_after_a_pause_the_count_starts_again() -> None:
    guard = FlapGuard(limit=1, window_s=600.0, pause_s=10.0)
    guard.record(NAME, 0.0, ["line"])
    assert not guard.record(NAME, 1.0, ["line"])
    assert guard.record(NAME, 20.0, ["line"]), "the writes before the pause were forgotten"


def test_writes_older_than_the_window_are_forgotten() -> None:
    guard = FlapGuard(limit=2, window_s=60.0, pause_s=600.0)
    assert guard.record(NAME, 0.0, ["line"])
    assert guard.record(NAME, 10.0, ["line"])
    assert guard.record(NAME, 100.0, ["line"]), "two of the three writes left the window"
    assert guard.record(NAME, 105.0, ["line"])
    assert not guard.record(NAME, 106.0, ["line"])


def test_many_different_lines_are_normal_activity() -> None:
    guard = FlapGuard(limit=3, window_s=600.0, pause_s=600.0)
    for t in range(1000):
        assert guard.record(NAME, float(t), [f"turn {t}", f"other {t}"])
    assert guard.allow(NAME, 1000.0)


def test_one_write_counts_a_line_once() -> None:
    guard = FlapGuard(limit=1, window_s=600.0, pause_s=600.0)
    assert guard.record(NAME, 0.0, ["line", "line", "line"])
    assert not guard.record(NAME, 1.0, ["line"])
