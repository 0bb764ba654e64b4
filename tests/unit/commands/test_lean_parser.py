"""A command line that starts with `repair`, `run` or `explain` is parsed by a parser holding
that subcommand alone (`build_parser(only=...)`): its namespace, help, usage errors and exit
codes are those of the whole parser."""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from codex_indexd.cli import PARSED_HERE, build_parser

LINES = [
    ["repair"],
    ["repair", "--help"],
    ["repair", "--dry-run", "--max-threads", "0", "--rebuild", "--json"],
    ["repair", "--bogus"],
    ["repair", "--max-threads", "fast"],
    ["repair", "--only", "nothing"],
    ["repair", "extra"],
    ["repair", "--codex-home"],
    ["run", "--help"],
    ["run", "--once", "--codex-home", "a", "--codex-home", "b", "--debounce-ms", "5"],
    ["run", "--debounce-ms", "-1"],
    ["explain"],
    ["explain", "--help"],
    ["explain", "019a3c1e", "--json"],
    ["explain", "a", "b"],
]


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[object, str, str]:
    """Return what parsing `argv` gives: the namespace (without its handler) or the exit
    code, and what was printed on stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            found: object = {k: v for k, v in vars(parser.parse_args(argv)).items()}
        except SystemExit as exc:
            found = ("exit", exc.code)
    if isinstance(found, dict):
        found["handler"] = getattr(found["handler"], "__name__", None)
    return found, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv", LINES, ids=[" ".join(a) for a in LINES])
def test_the_lean_parser_parses_helps_and_fails_as_the_whole_one(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    whole = _parse(build_parser(), argv)
    lean = _parse(build_parser(argv[0]), argv)
    assert lean == whole
    assert whole[0] != ("exit", 0) or whole[1]  # help was printed where it exits 0


def test_the_lean_parser_holds_one_subcommand() -> None:
    for name in PARSED_HERE:
        (sub,) = [
            a for a in build_parser(name)._actions if isinstance(a, argparse._SubParsersAction)
        ]
        assert list(sub.choices) == [name]
