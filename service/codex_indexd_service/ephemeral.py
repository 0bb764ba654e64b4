"""Is an interpreter's environment throwaway (a uvx or `pipx run` cache, a temporary venv)?
A service installed from one stops working once the cache is cleaned."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ("EPHEMERAL_MARKERS", "ephemeral_reason", "refusal")

# Path parts of the environments uvx / `uv tool run` and `pipx run` create and later clean.
EPHEMERAL_MARKERS = (
    "/.cache/uv/",  # uv's cache on Linux and macOS (uvx, uv tool run)
    "/uv/archive-",  # the same under another UV_CACHE_DIR
    "/uv/environments-",
    "/.cache/pipx/",  # pipx run, pipx >= 1.3 on Linux
    "/Library/Caches/pipx/",  # pipx run, pipx >= 1.3 on macOS
    "/pipx/.cache/",  # pipx run, older pipx ($PIPX_HOME/.cache)
)


def ephemeral_reason(python: Path, prefix: str | None = None) -> str | None:
    """Return why *python* (or the environment at *prefix*, e.g. ``sys.prefix`` when the
    service runs this interpreter) looks throwaway: a uvx or `pipx run` cache, or under the
    temporary directory; None when it looks installed to stay."""
    places = {str(python), str(Path(python).resolve()), *([prefix] if prefix else [])}
    temp = os.path.realpath(tempfile.gettempdir())
    for place in sorted(places):
        for marker in EPHEMERAL_MARKERS:
            if marker in place + "/":
                return f"{place} is in a cache directory ({marker.strip('/')}) that gets cleaned"
        if os.path.realpath(place).startswith(temp + os.sep):
            return f"{place} is under the temporary directory {temp}"
    return None


def refusal(reason: str) -> str:
    """Return the sentence that refuses an install from a throwaway environment."""
    return (
        f"error: refusing to install the service from a throwaway environment: {reason}, so "
        "the service would stop working once it is cleaned. Install codex-indexd to stay "
        "(`pipx install codex-indexd` or `uv tool install codex-indexd`) and run "
        "`codex-indexd service install` from there, or pass --allow-ephemeral to install "
        "anyway."
    )
