"""`codex-indexd logs`: reading rotated files, filtering, formatting, following across
rotation, the journal hint, and where its default file is."""

from __future__ import annotations

import functools
import io
import json
import logging
import logging.handlers
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from codex_indexd.commands import logs as log_command
from codex_indexd.log.follow import rotated_files
from codex_indexd_service.command_runner import Result
from codex_indexd_service.journal_hint import journal_hint
from tests.support.waiting import wait_for

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def line(event: str, level: str = "info", minutes_ago: float = 0, **fields: Any) -> str:
    stamp = (NOW - timedelta(minutes=minutes_ago)).isoformat().replace("+00:00", "Z")
    data = {"timestamp": stamp, "level": level, "event": event, "logger": "codex_indexd.x"}
    return json.dumps({**data, **fields})


def hint_of(runner: Any) -> Any:
    """The journal hint `codex-indexd logs` gets, asking `runner` (None: no hint)."""
    return None if runner is None else functools.partial(journal_hint, runner=runner)


def run_logs(argv: list[str], runner: Any = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = log_command.main(argv, hint=hint_of(runner), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    """A log directory with two rotated files and the live one."""
    base = tmp_path / "codex-indexd.log"
    (tmp_path / "codex-indexd.log.2").write_text(line("a.oldest", minutes_ago=90) + "\n")
    (tmp_path / "codex-indexd.log.1").write_text(
        line("b.older", "warning", minutes_ago=60) + "\nnot json\n[1, 2]\n"
    )
    base.write_text(
        line("index.repaired", "info", minutes_ago=5, path="/x y", count=3)
        + "\n"
        + line("index.failed", "error", minutes_ago=1)
        + "\n"
        + line("watch.tick", "debug", minutes_ago=0.5)
        + "\n"
    )
    return base


@pytest.fixture
def quiet_runner(runner: Any) -> Any:
    """systemctl says the unit is not active: no journal hint."""
    runner.answer(("systemctl",), Result(3, "inactive\n"))
    return runner


def events(text: str) -> list[str]:
    return [json.loads(raw)["event"] for raw in text.splitlines()]


def test_reads_rotated_files_oldest_first_and_skips_bad_lines(
    log_file: Path, quiet_runner: Any
) -> None:
    code, out, err = run_logs(["--file", str(log_file), "--json"], quiet_runner)
    assert code == 0 and err == ""
    assert events(out) == ["a.oldest", "b.older", "index.repaired", "index.failed", "watch.tick"]


def test_json_passes_raw_lines_unchanged(log_file: Path, quiet_runner: Any) -> None:
    _, out, _ = run_logs(
        ["--file", str(log_file), "--json", "--event", "index.repaired"], quiet_runner
    )
    assert out == log_file.read_text().splitlines()[0] + "\n"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--level", "warning"], ["b.older", "index.failed"]),
        (["--level", "WARN"], ["b.older", "index.failed"]),
        (["--event", "index.*"], ["index.repaired", "index.failed"]),
        (["--event", "a.*", "--event", "watch.*"], ["a.oldest", "watch.tick"]),
        (["-n", "2"], ["index.failed", "watch.tick"]),
        (["--level", "info", "-n", "1"], ["index.failed"]),
        (
            ["--since", "2026-11-25T11:00:00Z"],
            ["b.older", "index.repaired", "index.failed", "watch.tick"],
        ),
        (
            ["--since", "2026-11-25T12:00:00+01:00"],
            ["b.older", "index.repaired", "index.failed", "watch.tick"],
        ),
    ],
)
def test_filters(log_file: Path, quiet_runner: Any, argv: list[str], expected: list[str]) -> None:
    _, out, _ = run_logs(["--file", str(log_file), "--json", *argv], quiet_runner)
    assert events(out) == expected


def test_human_lines_are_aligned_and_uncoloured_off_a_tty(
    log_file: Path, quiet_runner: Any
) -> None:
    _, out, _ = run_logs(["--file", str(log_file), "--utc"], quiet_runner)
    rows = out.splitlines()
    assert "\x1b[" not in out
    assert rows[2].startswith("2026-11-25 11:55:00.000 INFO     index.repaired")
    assert rows[2].endswith('path="/x y" count=3')
    assert rows[3].startswith("2026-11-25 11:59:00.000 ERROR    index.failed")
    columns = {row.index(row.split()[3]) for row in rows}
    assert len(columns) == 1  # events start in the same column
    assert "logger=" not in out


def test_colour_on_request(log_file: Path, quiet_runner: Any) -> None:
    _, out, _ = run_logs(
        ["--file", str(log_file), "--color", "always", "--level", "error"], quiet_runner
    )
    assert "\x1b[31mERROR" in out


def test_missing_log_file(tmp_path: Path, quiet_runner: Any) -> None:
    code, _, err = run_logs(["--file", str(tmp_path / "none.log")], quiet_runner)
    assert code == 1 and "no log file" in err


def test_journal_hint_under_systemd(log_file: Path, runner: Any) -> None:
    runner.answer(("systemctl", "--user", "is-active"), Result(0, "active\n"))
    _, out, err = run_logs(["--file", str(log_file), "--level", "error", "-n", "5"], runner)
    assert "journalctl --user-unit codex-indexd.service -n 5 -p err" in err
    assert "journalctl" not in out


def test_no_journal_hint_without_systemd(log_file: Path, quiet_runner: Any) -> None:
    assert run_logs(["--file", str(log_file)], quiet_runner)[2] == ""


class Following:
    """`logs -f` running in a thread, writing into a StringIO."""

    def __init__(self, argv: list[str], runner: Any) -> None:
        self.out, self.stop = io.StringIO(), threading.Event()
        self.thread = threading.Thread(
            target=log_command.main,
            args=(argv,),
            kwargs={
                "hint": hint_of(runner),
                "stop": self.stop,
                "out": self.out,
                "err": io.StringIO(),
            },
        )
        self.thread.start()

    def events(self) -> list[str]:
        return events(self.out.getvalue())

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive()


@pytest.fixture
def follow(quiet_runner: Any) -> Iterator[Callable[..., Following]]:
    started: list[Following] = []

    def start(*argv: str) -> Following:
        started.append(Following(["-f", "--json", "--interval", "0.01", *argv], quiet_runner))
        return started[-1]

    yield start
    for following in started:
        following.close()


def append(path: Path, text: str) -> None:
    with path.open("a") as handle:
        handle.write(text)


def test_follow_prints_the_tail_then_new_lines(log_file: Path, follow: Any) -> None:
    tail = follow("--file", str(log_file), "-n", "2")
    wait_for(lambda: tail.events() == ["index.failed", "watch.tick"])
    append(log_file, line("new.one") + "\n" + line("new.partial")[:20])
    wait_for(lambda: tail.events()[-1] == "new.one")
    append(log_file, line("new.partial")[20:] + "\n")
    wait_for(lambda: tail.events()[-1] == "new.partial")
    assert tail.events().count("new.one") == 1


def test_follow_across_rotation_and_truncation(tmp_path: Path, follow: Any) -> None:
    base = tmp_path / "codex-indexd.log"
    tail = follow("--file", str(base))  # the file does not exist yet
    base.write_text(line("first") + "\n")
    wait_for(lambda: tail.events() == ["first"])
    base.rename(tmp_path / "codex-indexd.log.1")  # what RotatingFileHandler does
    append(tmp_path / "codex-indexd.log.1", line("late.in.old") + "\n")
    base.write_text(line("after.rotation") + "\n")
    wait_for(lambda: tail.events()[-1:] == ["after.rotation"])
    assert tail.events() == ["first", "late.in.old", "after.rotation"]
    base.write_text(line("cut") + "\n")  # same inode, shorter than what was read
    wait_for(lambda: tail.events()[-1:] == ["cut"])


def test_follow_sees_every_line_of_a_rotating_file_handler(tmp_path: Path, follow: Any) -> None:
    base = tmp_path / "codex-indexd.log"
    handler = logging.handlers.RotatingFileHandler(base, maxBytes=400, backupCount=500)
    logger = logging.getLogger("test.rotation")
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(handler)
    try:
        logger.info(line("seq", n=0))
        tail = follow("--file", str(base), "-n", "1000")
        wait_for(lambda: len(tail.events()) == 1)
        for n in range(1, 200):
            logger.info(line("seq", n=n))
            if n % 7 == 0:  # let the follower interleave (correctness does not need it)
                time.sleep(0.002)
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert len(rotated_files(base)) > 10
    wait_for(lambda: len(tail.events()) >= 200)
    numbers = [json.loads(raw)["n"] for raw in tail.out.getvalue().splitlines()]
    assert numbers == list(range(200))


def test_no_match_says_no_entries(log_file: Path, quiet_runner: Any) -> None:
    code, out, _ = run_logs(["--file", str(log_file), "--event", "nothing.*"], quiet_runner)
    assert code == 0 and out == "-- No entries --\n"
    code, out, _ = run_logs(["--file", str(log_file), "--json", "--event", "x.*"], quiet_runner)
    assert code == 0 and out == ""  # JSON output stays parseable


def test_log_dir_variable_moves_the_default_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`codex-indexd logs` reads the log file the daemon's own files name, so
    CODEX_INDEXD_LOG_DIR moves both."""
    from codex_indexd.cli import main as top_main

    directory = tmp_path / "custom-logs"
    directory.mkdir()
    (directory / "codex-indexd.log").write_text(line("from.the.daemon") + "\n")
    monkeypatch.setenv("CODEX_INDEXD_LOG_DIR", str(directory))
    assert top_main(["logs", "--json"]) == 0
    assert events(capsys.readouterr().out) == ["from.the.daemon"]


def test_the_default_file_is_the_daemons_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEX_INDEXD_LOG_DIR", str(tmp_path / "moved"))
    (tmp_path / "moved").mkdir()
    (tmp_path / "moved" / "codex-indexd.log").write_text(line("x.moved") + "\n")
    code, out, _ = run_logs(["--json"])
    assert code == 0 and events(out) == ["x.moved"]


def test_the_given_log_file_is_the_default(log_file: Path, quiet_runner: Any) -> None:
    out = io.StringIO()
    assert log_command.main(["--json"], hint=hint_of(quiet_runner), out=out, log_file=log_file) == 0
    assert events(out.getvalue())[-1] == "watch.tick"
