"""`codex-indexd run`: the foreground daemon (placeholder until the daemon lands)."""

from __future__ import annotations

from typing import Any


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("run", help="watch Codex homes and keep their indexes right")
    parser.set_defaults(handler=lambda args: 1)
