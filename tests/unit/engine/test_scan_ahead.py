"""`DirStats`: a stat by directory descriptor is the stat of the entry's whole path, in any
order of entries from several directories (a trailing separator on the walked root too)."""

from __future__ import annotations

import os
from pathlib import Path

from codex_indexd.engine.scan_ahead import DirStats


def test_stats_by_directory_are_the_entries_own(tmp_path: Path) -> None:
    for day in ("a", "b", "a/c"):
        (tmp_path / day).mkdir(parents=True, exist_ok=True)
        for i in range(3):
            (tmp_path / day / f"f{i}.jsonl").write_bytes(b"x" * (i + len(day)))
    (tmp_path / "b" / "link.jsonl").symlink_to(tmp_path / "a" / "f2.jsonl")
    entries = [
        entry
        for root in (f"{tmp_path}/a", f"{tmp_path}/b/", f"{tmp_path}/a/c", f"{tmp_path}/a")
        for entry in os.scandir(root)
        if entry.is_file()
    ]
    with DirStats() as stat:
        got = [stat(entry) for entry in entries]
    want = [os.stat(entry.path) for entry in entries]
    assert [(s.st_ino, s.st_size) for s in got] == [(s.st_ino, s.st_size) for s in want]
