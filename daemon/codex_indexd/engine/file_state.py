"""A tracked rollout at rest (`FileState`): what the daemon keeps of each file between reads."""

from __future__ import annotations

import os
import struct

from codex_indexd.codex.rollout import RolloutScan
from codex_indexd.index.model import RolloutFacts
from codex_indexd.records import record

# A file's numbers at rest, packed: dev, ino (unsigned, as stat gives them), size, mtime_ns,
# then where the reader stopped (offset, lines, malformed, too_long) and its flags (1: bare,
# 2: session_meta locked). One bytes object in place of eight int objects and a reader state
# (about 170 bytes less a file: 8 MiB at 50,000 rollouts). The three counts take 4 bytes each
# when they fit (`_NARROW`, 86 bytes an object, in 96-byte blocks), else 8 (`_WIDE`, 98 bytes
# in 112-byte blocks): 0.8 MiB less at 50,000 rollouts. The first five numbers and the flags
# are at the same places in both; the length tells which one a state holds.
_WIDE = struct.Struct("<QQqqqqqqB")
_NARROW = struct.Struct("<QQqqqIIIB")
_HEAD = struct.Struct("<QQqqq")  # dev, ino, size, mtime_ns, offset
_STAT = struct.Struct("<QQqq")
_INODE = struct.Struct("<QQ")
_BARE, _META_LOCKED = 1, 2


def pack_numbers(*numbers: int) -> bytes:
    """Return a state's nine numbers (dev, ino, size, mtime_ns, offset, lines, malformed,
    too_long, flags) packed (see `_NARROW`, `_WIDE`). Raises struct.error for a number that
    fits neither form, or another count of numbers."""
    try:
        return _NARROW.pack(*numbers)
    except struct.error:
        return _WIDE.pack(*numbers)


def pack_columns(*columns: list[int]) -> list[bytes]:
    """Return `pack_numbers` of each row of nine equally long columns (dev, ino, ... flags),
    with no Python step per row unless a count needs the wide form. Raises struct.error for
    a number that fits neither form."""
    try:
        return list(map(_NARROW.pack, *columns))
    except struct.error:
        return list(map(pack_numbers, *columns))


def pack_stat(st: os.stat_result) -> bytes:
    """Return the packed `(dev, ino, size, mtime_ns)` of a stat result, the first bytes of the
    numbers of a `FileState` read from that very file state (see `FileState.same_file`)."""
    return _STAT.pack(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@record(slots=True)
class FileState:
    """A tracked rollout at rest: the file as it was when last read (dev, ino, size, mtime),
    where the reader stopped, and the facts read so far. `resume` gives a reader that goes on
    from there."""

    facts: RolloutFacts
    nums: bytes  # see `pack_numbers`
    expected_id: str | None  # the thread id in the file name

    @classmethod
    def of(cls, scan: RolloutScan, st: os.stat_result) -> FileState:
        """Return the state of a file `scan` has read, as `st` found it."""
        flags = scan.bare | scan._meta_locked << 1
        nums = pack_numbers(
            st.st_dev,
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
            scan.offset,
            scan.lines,
            scan.malformed,
            scan.too_long,
            flags,
        )
        expected = scan.expected_id
        facts = scan.facts
        return cls(facts, nums, facts.thread_id if expected == facts.thread_id else expected)

    def numbers(self) -> tuple[int, int, int, int, int, int, int, int, int]:
        """Return dev, ino, size, mtime_ns, offset, lines, malformed, too_long and flags."""
        nums = self.nums
        return (_NARROW if len(nums) == _NARROW.size else _WIDE).unpack(nums)

    @property
    def dev(self) -> int:
        return int(_HEAD.unpack_from(self.nums)[0])

    @property
    def ino(self) -> int:
        return int(_HEAD.unpack_from(self.nums)[1])

    @property
    def size(self) -> int:
        return int(_HEAD.unpack_from(self.nums)[2])

    @property
    def mtime_ns(self) -> int:
        return int(_HEAD.unpack_from(self.nums)[3])

    @property
    def offset(self) -> int:
        """Where the reader stopped: the end of the last complete line read."""
        return int(_HEAD.unpack_from(self.nums)[4])

    @property
    def lines(self) -> int:
        return self.numbers()[5]

    @property
    def bare(self) -> bool:
        return bool(self.nums[-1] & _BARE)

    @property
    def usable(self) -> bool:
        """True when the file had a `session_meta` Codex would accept (`RolloutScan.usable`)."""
        facts = self.facts
        return facts.has_meta and not self.nums[-1] & _BARE and bool(facts.thread_id)

    def same_inode(self, st: os.stat_result) -> bool:
        """True when `st` is of the file that was read (same device and inode)."""
        dev, ino = _INODE.unpack_from(self.nums)
        return bool(dev == st.st_dev and ino == st.st_ino)

    def same_file(self, stat: bytes) -> bool:
        """True when `stat` (`pack_stat`) is the file as it was read: same dev, inode, size
        and mtime."""
        return self.nums.startswith(stat)

    def resume(self) -> RolloutScan:
        """Return a reader that goes on from where this one stopped, on the same facts (texts
        not kept: the tracker reads them back when it must write them)."""
        _dev, _ino, _size, _mtime, offset, lines, malformed, too_long, flags = self.numbers()
        facts = self.facts
        scan = RolloutScan(
            facts,
            offset,
            lines,
            malformed,
            too_long,
            bool(flags & _BARE),
            self.expected_id,
            bool(flags & _META_LOCKED),
            False,  # keep_text
        )
        scan.unknown_user_shapes, scan.unknown_shape = (
            facts.unknown_user_shapes,
            facts.unknown_shape,
        )
        return scan
