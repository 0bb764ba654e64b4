"""Following a log file across rotations: every line once, in order."""

from __future__ import annotations

import os
from pathlib import Path

from codex_indexd.log.follow import Follower


def append(path: Path, text: str) -> None:
    with path.open("a") as handle:
        handle.write(text)


def test_follower_handles_several_rotations_between_polls(tmp_path: Path) -> None:
    base = tmp_path / "x.log"
    base.write_text("1\n")
    with Follower(base) as follower:
        assert follower.poll() == ["1"]
        append(base, "2\n")
        base.rename(tmp_path / "x.log.1")
        base.write_text("3\n")
        os.rename(tmp_path / "x.log.1", tmp_path / "x.log.2")
        base.rename(tmp_path / "x.log.1")
        base.write_text("4\n")
        assert follower.poll() == ["2", "3", "4"]
