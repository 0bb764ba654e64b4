"""`codex-indexd repair` run as a program ends through `cli.quick_exit`: the same output,
files and exit code as `main()` gives in-process, exit functions run, and a thread still
running gets the normal exit that waits for it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codex_indexd.cli import main
from tests.support.homes import build_home, new_thread

REPO = Path(__file__).resolve().parents[2]


def _program(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "daemon"), str(REPO)]))
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


def _cli(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return _program(
        f"import sys; sys.argv = ['codex-indexd', *{argv!r}]\n"
        "from codex_indexd.cli import entry_point; entry_point()"
    )


@pytest.mark.parametrize(
    "extra",
    [["--dry-run"], ["--rebuild", "--no-backup"], ["--json"], ["--max-threads", "x"]],
    ids=["dry-run", "rebuild", "merge-json", "usage-error"],
)
def test_a_quick_exit_gives_what_main_gives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    threads = [new_thread(i, turns=2) for i in range(4)]
    ours = build_home(tmp_path / "ours" / "home", threads)
    theirs = tmp_path / "theirs" / "home"
    shutil.copytree(ours, theirs, symlinks=True)
    ran = _cli(["repair", "--codex-home", str(ours), *extra])
    try:
        code = main(["repair", "--codex-home", str(theirs), *extra])
    except SystemExit as exc:
        code = exc.code  # type: ignore[assignment]
    out, err = capsys.readouterr()
    assert ran.returncode == code
    assert ran.stdout == out.replace(str(theirs), str(ours))
    assert ran.stderr == err.replace(str(theirs), str(ours))
    for name in ("session_index.jsonl", "history.jsonl"):
        assert (ours / name).exists() == (theirs / name).exists()
        if (ours / name).exists():
            assert (ours / name).read_bytes() == (theirs / name).read_bytes()
    if extra[0] == "--rebuild":
        assert (ours / "history.jsonl").stat().st_size > 0  # it did write


def test_a_quick_exit_runs_the_exit_functions_and_flushes(tmp_path: Path) -> None:
    home = build_home(tmp_path / "home", [new_thread(0)])
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: sys.stdout.write('exit function ran\\n'))\n"
        f"sys.argv = ['codex-indexd', 'repair', '--codex-home', {str(home)!r}, '--dry-run']\n"
        "sys.stdout.write('unflushed ')\n"
        "from codex_indexd.cli import entry_point; entry_point()"
    )
    ran = _program(code)
    assert ran.returncode == 0
    assert ran.stdout.startswith("unflushed conversations refreshed: 1\n")
    assert ran.stdout.endswith("status: success\nexit function ran\n")


def test_a_thread_still_running_gets_the_normal_exit() -> None:
    code = (
        "import threading\n"
        "from codex_indexd.cli import quick_exit\n"
        "release = threading.Event()\n"
        "thread = threading.Thread(target=lambda: (release.wait(), print('thread finished')))\n"
        "thread.start()\n"
        "try:\n"
        "    quick_exit(3)\n"
        "except SystemExit as exc:\n"
        "    print('raised', exc.code)\n"
        "release.set()\n"
        "thread.join()\n"
    )
    ran = _program(code)
    assert ran.returncode == 0
    assert ran.stdout == "raised 3\nthread finished\n"
