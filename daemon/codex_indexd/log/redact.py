"""What a log line may say of an exception: never a file's content, which can be a prompt."""

from __future__ import annotations

import errno

DETAIL_MAX = 300


def safe_detail(exc: BaseException) -> str:
    """Return what a log line may say of `exc`, cut to DETAIL_MAX characters.

    An OSError gives its errno name, its reason and its file names; a decoding error its
    codec, reason and position; an exception of our own package or of sqlite3 its message
    (ours never quote a file's content). Any other message is withheld: a ValueError or a
    KeyError may quote a line of a rollout or of history.jsonl, that is, a user's prompt.
    """
    if isinstance(exc, OSError):
        code = errno.errorcode.get(exc.errno, str(exc.errno)) if exc.errno else ""
        reason = exc.strerror if exc.strerror is not None else (str(exc) if not code else "")
        files = [str(f) for f in (exc.filename, exc.filename2) if f is not None]
        text = ": ".join(part for part in (code, reason, *files) if part)
    elif isinstance(exc, UnicodeError):
        codec = getattr(exc, "encoding", "")
        text = f"{codec} {getattr(exc, 'reason', '')} at byte {getattr(exc, 'start', '?')}"
    elif type(exc).__module__.split(".", 1)[0] in ("codex_indexd", "sqlite3"):
        text = str(exc)
    else:
        text = "message withheld: it may quote a file's content"
    return text[:DETAIL_MAX]
