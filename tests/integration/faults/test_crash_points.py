"""Crash consistency: SIGKILL-equivalent exits (`os._exit`) at every instrumented step of
`repair` and of the daemon's writes, then a restart.

Writes go out in 64-byte chunks with a crash point between chunks, so kills land before,
during and after the temp write, the rename, the in-place history rewrite and the journal
steps. After each kill: both files parse, every earlier line is still there, no temp or
journal file is left, history keeps its inode, and a restart reaches exactly the result of
an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from codex_indexd.cli import main
from codex_indexd.codex.home import CodexHome
from codex_indexd.engine import recover
from codex_indexd.write import crashpoints
from tests.support.homes import (
    BASE_TIME,
    build_home,
    index_line,
    iso,
    new_thread,
    user_message,
)

pytestmark = pytest.mark.slow
CHUNK = "64"


def fork_run(argv: list[str], env: dict[str, str]) -> int:
    """Run the CLI in a forked child with extra env; return its exit code."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 99
        try:
            os.environ.update(env)
            crashpoints.reset()
            code = main(argv)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def seed_home(path: Path) -> Path:
    """A home whose repair must append index lines and insert history lines in place."""
    threads = [new_thread(i, turns=3, paginated=i % 2 == 0) for i in range(8)]
    home = build_home(path, threads)
    renamed = threads[1].thread_id
    (home / "session_index.jsonl").write_text(
        index_line(renamed, "User's own name", "2030-01-01T00:00:00Z")
        + index_line(threads[2].thread_id, "stale name", "2020-01-01T00:00:00Z")
    )
    late = threads[3]
    with open(home / "history.jsonl", "w") as handle:
        handle.write(
            json.dumps(
                {
                    "session_id": late.thread_id,
                    "ts": int(late.start.timestamp()) + 10,
                    "text": late.turns[0].text,
                }
            )
            + "\n"
        )
        handle.write(
            json.dumps({"session_id": "codex-only", "ts": 1_900_000_000, "text": "newest by Codex"})
            + "\n"
        )
    os.chmod(home / "history.jsonl", 0o600)
    rollout = next((home / "sessions").rglob(f"*{threads[0].thread_id}.jsonl"))
    with rollout.open("a") as handle:
        handle.write(user_message("a late turn", iso(BASE_TIME.replace(hour=23))))
    return home


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines() if path.exists() else []


Scenario = tuple[str, Callable[[Path], list[str]]]
SCENARIOS: list[Scenario] = [
    ("merge", lambda home: ["repair", "--codex-home", str(home), "--max-threads", "0"]),
    (
        "rebuild",
        lambda home: ["repair", "--codex-home", str(home), "--rebuild", "--max-threads", "0"],
    ),
    ("daemon_once", lambda home: ["run", "--once", "--codex-home", str(home)]),
]


def count_steps(argv: list[str], trace: Path) -> int:
    assert (
        fork_run(argv, {"CODEX_INDEXD_CRASH_TRACE": str(trace), "CODEX_INDEXD_CRASH_CHUNK": CHUNK})
        == 0
    )
    return len(trace.read_text().splitlines())


@pytest.mark.parametrize(("name", "argv_for"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_kill_at_every_step(
    tmp_path: Path,
    name: str,
    argv_for: Callable[[Path], list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    template = seed_home(tmp_path / "template")
    # Every run's home path has the reference's length: the journal records the history
    # file's path, so a longer path can cross a chunk boundary and add a crash point.
    reference = tmp_path / "run0000"
    shutil.copytree(template, reference)
    steps = count_steps(argv_for(reference), tmp_path / "trace")
    assert steps >= 30, steps  # enough distinct points to be meaningful (a merge only appends)
    expected = {n: (reference / n).read_bytes() for n in ("session_index.jsonl", "history.jsonl")}
    before = {n: Counter(lines(template / n)) for n in ("session_index.jsonl", "history.jsonl")}
    originals = {n: (template / n).read_bytes() for n in ("session_index.jsonl", "history.jsonl")}
    killed = 0
    for k in range(1, steps + 1):
        home = tmp_path / f"run{k:04d}"
        shutil.copytree(template, home)
        inode = (home / "history.jsonl").stat().st_ino
        code = fork_run(
            argv_for(home), {"CODEX_INDEXD_CRASH_AT": str(k), "CODEX_INDEXD_CRASH_CHUNK": CHUNK}
        )
        assert code in (86, 0), (k, code)
        killed += code == 86
        recover(CodexHome.at(home))  # what any restart does first
        for file_name in ("session_index.jsonl", "history.jsonl"):
            now = lines(home / file_name)
            for raw in now:
                json.loads(raw)  # parses completely: no torn line
            if name == "rebuild":  # replace semantics: the old file or the new one, nothing between
                assert (home / file_name).read_bytes() in (
                    originals[file_name],
                    expected[file_name],
                ), (k, file_name)
            else:
                assert not (before[file_name] - Counter(now)), (k, file_name)  # nothing lost
        assert (home / "history.jsonl").stat().st_ino == inode
        assert not list(home.glob(".*tmp")) and not list(home.glob("*.tmp"))
        assert not list(Path(os.environ["CODEX_INDEXD_STATE_DIR"]).rglob("*.journal*"))
        assert fork_run(argv_for(home), {}) == 0  # the restart completes the work
        for file_name, data in expected.items():
            assert (home / file_name).read_bytes() == data, (k, file_name)
        shutil.rmtree(home)
    assert killed == steps
