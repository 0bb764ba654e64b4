"""Huge lines with bounded memory; symlinks and foreign files are not written through."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codex_indexd.cli import main
from tests.support.daemons import source_pythonpath
from tests.support.homes import (
    build_home,
    new_thread,
    read_jsonl,
    rollout_name,
    session_meta,
    user_message,
)

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_2gb_rollout_with_a_200mb_line_is_skipped_with_bounded_memory(tmp_path: Path) -> None:
    home = build_home(tmp_path / "h", [new_thread(0, paginated=True)])
    big = new_thread(1)
    path = home / "sessions" / "2026" / "11" / "20" / rollout_name(big)
    with open(path, "wb") as handle:
        handle.write(session_meta(big.thread_id, "2026-11-20T10:00:00.000Z").encode())
        prefix = b'{"timestamp":"2026-11-20T10:00:01.000Z","type":"event_msg","payload":{"type":"user_message","message":"'
        handle.write(prefix)
        block = b"a" * (1 << 20)
        for _ in range(200):
            handle.write(block)
        handle.write(b'"}}\n')
        handle.write(user_message("after the huge line", "2026-11-20T10:00:02.000Z").encode())
        handle.truncate(2 * 1024**3)  # the rest is a sparse, newline-free tail
    probe = (
        "import resource, sys\n"
        "from codex_indexd.cli import main\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"code = main(['repair', '--codex-home', {str(home)!r}, '--include-orphans', '--json'])\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print('GROWTH_KB', peak - base, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "PYTHONPATH": source_pythonpath()}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    growth_kb = int(done.stderr.rsplit("GROWTH_KB", 1)[1].split()[0])
    assert growth_kb < 64 * 1024, growth_kb
    report = json.loads(done.stdout)
    events = {(w["event"], w["path"]) for w in report["warnings"]}
    assert ("rollout.line_too_long", str(path)) in events
    history = [h["text"] for h in read_jsonl(home / "history.jsonl")]
    assert "after the huge line" in history
    assert not any(len(t) > 1_000_000 for t in history)


def test_symlinked_rollout_dirs_are_not_followed_and_loops_do_not_hang(tmp_path: Path) -> None:
    home = build_home(tmp_path / "h", [new_thread(0)])
    outside = build_home(tmp_path / "outside", [new_thread(5)], db=False)
    (home / "sessions" / "elsewhere").symlink_to(outside / "sessions")
    (home / "sessions" / "loop").symlink_to(home / "sessions")
    assert main(["repair", "--codex-home", str(home), "--include-orphans"]) == 0
    ids = {e["id"] for e in read_jsonl(home / "session_index.jsonl")}
    assert new_thread(5).thread_id not in ids
    assert not (outside / "session_index.jsonl").exists()


@pytest.mark.parametrize("name", ["history.jsonl", "session_index.jsonl"])
def test_symlinked_index_files_are_refused(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    home = build_home(tmp_path / "h", [new_thread(0, paginated=True)])
    target = tmp_path / "precious.jsonl"
    target.write_bytes(b'{"keep":"me"}\n')
    (home / name).symlink_to(target)
    assert main(["repair", "--codex-home", str(home)]) == 1
    out = capsys.readouterr().out
    assert "symlink" in out and "status: failed" in out
    assert target.read_bytes() == b'{"keep":"me"}\n'


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a file owned by another user")
def test_files_of_another_user_are_not_rewritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = build_home(tmp_path / "h", [new_thread(0, paginated=True)])
    (home / "history.jsonl").write_bytes(b"")
    os.chown(home / "history.jsonl", 65534, 65534)
    assert main(["repair", "--codex-home", str(home)]) == 1
    assert "belongs to uid 65534" in capsys.readouterr().out
    assert (home / "history.jsonl").read_bytes() == b""
