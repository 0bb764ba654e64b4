"""Index files are read only when they are regular files, never past their size at open."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from codex_indexd.codex.indexfiles import (
    NotRegularFile,
    open_regular,
    read_bytes,
    read_history,
    read_index,
)

LINE = b'{"id":"019a0000-0000-7000-8000-000000000001","thread_name":"n","updated_at":"t"}\n'


def test_a_regular_file_is_read_up_to_its_size_at_open(tmp_path: Path) -> None:
    path = tmp_path / "session_index.jsonl"
    path.write_bytes(LINE)
    with open_regular(path) as reader:
        with open(path, "ab") as grow:
            grow.write(b"appended after the open\n")
        assert reader.read() == LINE
        assert reader.read() == b""
        reader.seek(3)
        assert reader.read(4) == LINE[3:7]
    assert read_index(path).size == len(LINE) + len(b"appended after the open\n")


def test_missing_file_reads_as_empty(tmp_path: Path) -> None:
    assert read_bytes(tmp_path / "absent") == b""
    parsed = read_index(tmp_path / "absent")
    assert parsed.refused is None and parsed.size == 0


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _dev_zero_link(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _directory(path: Path) -> None:
    path.mkdir()


def _link_to_regular(path: Path) -> None:
    target = path.with_name("elsewhere.jsonl")
    target.write_bytes(LINE)
    path.symlink_to(target)


def _socket(path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()


HAZARDS = {
    "fifo": (_fifo, "is a FIFO"),
    "dev_zero_link": (_dev_zero_link, "is a symbolic link"),
    "directory": (_directory, "is a directory"),
    "link_to_regular": (_link_to_regular, "is a symbolic link"),
    "socket": (_socket, "is not a regular file"),
}


@pytest.mark.parametrize("hazard", sorted(HAZARDS))
def test_anything_but_a_regular_file_is_refused_without_blocking(
    tmp_path: Path, hazard: str
) -> None:
    make, reason = HAZARDS[hazard]
    path = tmp_path / "history.jsonl"
    make(path)
    with pytest.raises(NotRegularFile) as caught:
        open_regular(path)
    assert caught.value.reason == reason
    assert str(path) in str(caught.value)
    parsed = read_history(path)
    assert parsed.refused == reason and parsed.parsed == []
    index = read_index(path)
    assert index.refused == reason and index.size == 0


def test_character_device_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    path = tmp_path / "session_index.jsonl"
    os.mknod(path, 0o600 | 0o020000, os.makedev(1, 5))  # /dev/zero's numbers
    assert read_index(path).refused == "is a character device"


def test_a_parse_runs_with_the_collector_paused_and_restores_it() -> None:
    import gc
    import io

    from codex_indexd.codex.indexfiles import extend_from
    from codex_indexd.collector import paused_gc
    from codex_indexd.index.lines import HistoryFile

    seen: list[bool] = []

    class Watched(io.BytesIO):
        def read(self, size: int | None = -1, /) -> bytes:
            seen.append(gc.isenabled())
            return super().read(size)

    was = gc.isenabled()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            seen.clear()
            target = HistoryFile(compact=True)
            extend_from(target, Watched(b'{"session_id":"a","ts":1,"text":"x"}\n'))
            assert len(target) == 1 and seen and not any(seen)
            assert gc.isenabled() is enabled
            try:
                with paused_gc():
                    raise KeyError("inside")
            except KeyError:
                pass
            assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
