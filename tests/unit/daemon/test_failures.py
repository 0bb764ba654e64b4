"""What a failure's log line and status entry may say of an exception: never a file's content."""

from __future__ import annotations

import errno
import json
import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codex_indexd.codex.rollout_fd import NotRegularFile
from codex_indexd.daemon.failures import DETAIL_MAX, safe_detail

PROMPT = "my secret prompt"


@pytest.mark.parametrize(
    "exc",
    [
        ValueError(PROMPT),
        KeyError(PROMPT),
        RuntimeError(f"line: {PROMPT}"),
        TypeError(PROMPT),
        MemoryError(PROMPT),
        json.JSONDecodeError(PROMPT, PROMPT, 3),
        UnicodeDecodeError("utf-8", PROMPT.encode() + b"\xff", len(PROMPT), len(PROMPT) + 1, "bad"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_message_that_may_quote_a_file_is_withheld(exc: Exception) -> None:
    assert PROMPT not in safe_detail(exc) and "secret" not in safe_detail(exc)


def test_an_os_error_gives_its_errno_reason_and_files() -> None:
    assert safe_detail(OSError(errno.EIO, "Input/output error")) == "EIO: Input/output error"
    assert safe_detail(FileNotFoundError(errno.ENOENT, "No such file", "/h/a", None, "/h/b")) == (
        "ENOENT: No such file: /h/a: /h/b"
    )
    assert safe_detail(NotRegularFile("/h/sessions/x is a FIFO")) == "/h/sessions/x is a FIFO"


def test_ours_and_sqlite3_keep_their_message() -> None:
    assert safe_detail(sqlite3.OperationalError("database is locked")) == "database is locked"


@given(st.text(min_size=DETAIL_MAX + 1))
def test_a_detail_is_never_longer_than_the_cap(text: str) -> None:
    assert len(safe_detail(OSError(text))) <= DETAIL_MAX
