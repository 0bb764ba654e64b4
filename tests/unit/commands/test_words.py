"""Codes as words: what `status` and `repair` print instead of the codes JSON keeps."""

from __future__ import annotations

from codex_indexd.commands.words import DRIFT_WORDS, drift_sentence, error_sentence, ids_label
from codex_indexd.heal.detect import REASONS


def test_every_db_drift_reason_has_words() -> None:
    for reason in REASONS:
        assert reason in DRIFT_WORDS
        assert "_" not in drift_sentence({reason: 2}), reason


def test_daemon_errors_read_as_sentences() -> None:
    text = error_sentence("disk_full", "[Errno 28] No space left on device", "2026-12-01T10:00Z")
    assert text.startswith("the disk is full ([Errno 28]")
    assert text.endswith("(at 2026-12-01T10:00Z)") and "disk_full" not in text
    assert error_sentence("flapping", "history.jsonl", None) == (
        "another writer keeps undoing our repairs of history.jsonl"
    )
    assert error_sentence("something_new", "detail", None) == "something new: detail"


def test_id_lists_say_they_are_threads() -> None:
    assert ids_label("history_missing") == "threads with prompts missing from history.jsonl"
    assert ids_label("index_missing") == "threads missing from session_index.jsonl"
    assert ids_label("row_missing") == "rollouts without a row in Codex's DB"
