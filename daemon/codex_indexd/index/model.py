"""Data types shared by readers, the planner and the writers."""

from __future__ import annotations

# hashlib.blake2b is this type; importing hashlib would also load OpenSSL (about 2 ms).
from _blake2 import blake2b
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from enum import StrEnum
from typing import NamedTuple, NoReturn, TypeVar, overload

from codex_indexd.index.timefmt import Stamp, pack_stamp, stamp_text
from codex_indexd.records import field, record

NO_KEY = -1
_KEY_SPAN = 1 << 64
_KEY_HALF = 1 << 63


def signed_key(key: int) -> int:
    """Return a 64-bit text key as the signed value an `array('q')` holds."""
    return key - _KEY_SPAN if key >= _KEY_HALF else key


def unsigned_key(value: int) -> int:
    """Return the text key an `array('q')` value stands for (the inverse of `signed_key`)."""
    return value + _KEY_SPAN if value < 0 else value


def text_key(text: str) -> int:
    """Return a 64-bit digest of a prompt text. The daemon keeps it instead of the text, which
    it reads back from the rollout only when the line must be written."""
    digest = blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@record(frozen=True, slots=True)
class UserTurn:
    """One real user turn of a rollout: epoch seconds of its line, its text (None where only
    the key is kept), the text's key, and the byte offset of its line (-1 when unknown)."""

    ts: int
    text: str | None
    key: int = NO_KEY  # filled in from `text` when not given
    offset: int = -1

    def __post_init__(self) -> None:
        if self.key == NO_KEY:
            object.__setattr__(self, "key", text_key(self.text or ""))


_Item_co = TypeVar("_Item_co", covariant=True)


class BuiltOnRead(Sequence[_Item_co]):
    """A read-only sequence of packed items, each built by `_item` when it is looked at; equal
    to any sequence of the same items (a list, typically)."""

    __slots__ = ()

    def _item(self, i: int) -> _Item_co:
        """Return the item at `0 <= i < len(self)`."""
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> _Item_co: ...

    @overload
    def __getitem__(self, index: slice) -> list[_Item_co]: ...

    def __getitem__(self, index: int | slice) -> _Item_co | list[_Item_co]:
        count = len(self)
        if isinstance(index, slice):
            return [self._item(i) for i in range(*index.indices(count))]
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError(f"{type(self).__name__} index out of range")
        return self._item(index)

    def __iter__(self) -> Iterator[_Item_co]:
        item = self._item
        return (item(i) for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to lists, which do not hash

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self)!r})"


class Turns(BuiltOnRead[UserTurn]):
    """A rollout's user turns, packed: `ts`, key and offset of each in an `array('q')`, and
    the texts only when one is kept. Each `UserTurn` is built when it is looked at.

    Turns cut from one packed form (`split`, a checkpoint chunk's) share pieces of it, each
    from its own first turn: no array object per rollout (128 bytes a rollout at rest). The
    first `append` to such turns copies them out to an array of their own."""

    __slots__ = ("_at", "_count", "_data", "_texts")

    def __init__(self, turns: Iterable[UserTurn] = ()) -> None:
        self._data = array("q")
        self._at = 0  # index in `_data` of the first turn's `ts`
        self._count = 0
        self._texts: list[str | None] | None = None  # None: no turn keeps its text
        for turn in turns:
            self.append(turn)

    @classmethod
    def packed(cls, data: array[int], texts: list[str | None] | None) -> Turns:
        """Return turns from their packed form (`ts, signed key, offset` per turn, and one
        text per turn or None). Raises ValueError when the two do not fit together."""
        if len(data) % 3 or (texts is not None and len(texts) * 3 != len(data)):
            raise ValueError("packed turns and their texts do not match")
        turns = cls.__new__(cls)  # no empty array made only to be replaced
        turns._data, turns._at, turns._count, turns._texts = data, 0, len(data) // 3, texts
        return turns

    @classmethod
    def split(
        cls, data: array[int], counts: Iterable[int], texts: list[str | None] | None
    ) -> list[Turns]:
        """Return the turns of several rollouts cut in order from one packed form (`counts`
        turns each; see `packed`), which must not be changed after (a piece may be `data`
        itself). Raises ValueError when the counts do not cover it exactly.

        Consecutive rollouts share one piece of `data`, cut so that each one's start in its
        piece is a small int that Python keeps cached (at most `_SHARED_START`): no int
        object per rollout (32 bytes each), and an array object for dozens of rollouts."""
        out: list[Turns] = []
        new, at, base, first = cls.__new__, 0, 0, 0  # turns cut; the piece's first turn, rollout
        for count in counts:
            if 3 * (at - base) > _SHARED_START:
                _give_piece(out, first, data, base, at)
                base, first = at, len(out)
            turns = new(cls)
            turns._at, turns._count = 3 * (at - base), count
            turns._texts = None if texts is None else texts[at : at + count]
            at += count
            out.append(turns)
        if 3 * at != len(data) or (texts is not None and len(texts) != at):
            raise ValueError("packed turns and their counts do not match")
        _give_piece(out, first, data, base, at)
        return out

    @property
    def last_ts(self) -> int | None:
        """`ts` of the last turn (None when there is none), without building the turn."""
        return self._data[self._at + 3 * self._count - 3] if self._count else None

    @property
    def data(self) -> array[int]:
        """The packed `ts, signed key, offset` of every turn (not to be changed)."""
        data, at, end = self._data, self._at, self._at + 3 * self._count
        return data if at == 0 and end == len(data) else data[at:end]

    @property
    def texts(self) -> list[str | None] | None:
        """Every turn's text, or None when no turn keeps one (not to be changed)."""
        return self._texts

    def keyed(self) -> Iterator[tuple[int, int, str | None]]:
        """Yield `(ts, key, text)` of each turn, without building its UserTurn."""
        data, texts, at = self._data, self._texts, self._at
        for i in range(self._count):
            j = at + 3 * i
            yield data[j], unsigned_key(data[j + 1]), texts[i] if texts is not None else None

    def append(self, turn: UserTurn) -> None:
        """Add a turn at the end."""
        if self._at or len(self._data) != 3 * self._count:  # shared: copy ours out first
            self._data = self._data[self._at : self._at + 3 * self._count]
            self._at = 0
        if turn.text is not None and self._texts is None:
            self._texts = [None] * self._count
        self._data.extend((turn.ts, signed_key(turn.key), turn.offset))
        self._count += 1
        if self._texts is not None:
            self._texts.append(turn.text)

    def __len__(self) -> int:
        return self._count

    def _item(self, i: int) -> UserTurn:
        data, j = self._data, self._at + 3 * i
        text = self._texts[i] if self._texts is not None else None
        return UserTurn(data[j], text, unsigned_key(data[j + 1]), data[j + 2])


# The largest start of a rollout's turns in a shared piece (`Turns.split`): CPython caches
# the ints -5..256, so a start up to this costs no object of its own.
_SHARED_START = 256


def _give_piece(out: list[Turns], rollout: int, data: array[int], start: int, end: int) -> None:
    """Give the rollouts of `out` from index `rollout` on, which hold turns `start` to `end`
    of `data`, one array of those turns (`Turns.split`)."""
    piece = data[3 * start : 3 * end] if start or 3 * end != len(data) else data
    for i in range(rollout, len(out)):
        out[i]._data = piece


@record(frozen=True, slots=True)
class Rename:
    """A name given to a thread, from `session_index.jsonl` or a `thread_name_updated` event."""

    name: str
    updated_at: str  # as written (RFC 3339); compared via `epoch_ms`
    epoch_ms: int | None


class _NoRenames(list[Rename]):
    """An empty rename list that refuses to grow (`NO_RENAMES`)."""

    __slots__ = ()

    def _refuse(self, *_args: object) -> NoReturn:
        raise TypeError("NO_RENAMES is shared: give the facts their own list (own_renames)")

    append = extend = insert = __iadd__ = __setitem__ = _refuse


# The one empty rename list of facts loaded from a checkpoint (a list each: 56 bytes a thread).
# A reader that goes on scanning such facts gives them their own list first (`own_renames`).
NO_RENAMES: list[Rename] = _NoRenames()


def own_renames(facts: RolloutFacts) -> None:
    """Give `facts` a rename list of its own in place of the shared `NO_RENAMES`."""
    if facts.renames is NO_RENAMES:
        facts.renames = []


@record(slots=True)
class RolloutFacts:
    """What one rollout file tells about its thread. Built incrementally by the reader."""

    thread_id: str
    path: str
    archived: bool = False
    # session_meta.timestamp and the top-level timestamp of the last complete line, raw: the
    # reader sets strings, the checkpoint keeps them packed (`stamp_text` reads either).
    created_at: Stamp | None = None
    last_timestamp: Stamp | None = None
    source: str | None = None
    history_mode: str = "legacy"
    first_user_message: str | None = None
    title: str | None = None
    user_turns: Turns = field(default_factory=Turns)  # the reader appends to it
    renames: list[Rename] = field(default_factory=list)
    has_meta: bool = False
    # Lines of a shape we do not know that carry user text (their turns are not read), and
    # the first such shape, e.g. "response_item/user_input" (never the text).
    unknown_user_shapes: int = 0
    unknown_shape: str | None = None


class ThreadRow(NamedTuple):
    """One row of the state DB `threads` table (only the columns we use). A named tuple:
    50,000 rows are built from the DB's result tuples at each start, one C call each."""

    thread_id: str
    rollout_path: str | None
    title: str
    first_user_message: str
    name: str | None
    created_at_ms: int | None
    updated_at_ms: int | None
    archived: bool
    source: str | None = None
    history_mode: str | None = None
    preview: str | None = None
    model_provider: str | None = None


@record(frozen=True, slots=True)
class IndexLine:
    """A parsed `session_index.jsonl` line; its `updated_at` is kept packed (`pack_stamp`),
    so that lines built from the same text are equal."""

    thread_id: str
    thread_name: str
    stamp: Stamp  # `updated_at` as given, packed when it can be

    def __post_init__(self) -> None:
        if type(self.stamp) is str:
            object.__setattr__(self, "stamp", pack_stamp(self.stamp))

    @property
    def updated_at(self) -> str:
        return stamp_text(self.stamp)


@record(frozen=True, slots=True)
class HistoryLine:
    """A `history.jsonl` line's fields. Lines are matched on `(session_id, key)`; `text` is
    None where only the key is kept (the daemon's long-lived copies)."""

    session_id: str
    ts: int
    text: str | None
    key: int = NO_KEY  # filled in from `text` when not given

    def __post_init__(self) -> None:
        if self.key == NO_KEY:
            object.__setattr__(self, "key", text_key(self.text or ""))


class OnlyFile(StrEnum):
    SESSION_INDEX = "session-index"
    HISTORY = "history"
    BOTH = "both"


@record(frozen=True, slots=True)
class Policy:
    """Which threads are restored and how the files are written."""

    max_threads: int = 100  # 0 = no limit
    include_orphans: bool = False
    only: OnlyFile = OnlyFile.BOTH
    history_max_bytes: int | None = None  # None = unbounded
    history_enabled: bool = True  # False when [history] persistence = "none"
    history_sources: frozenset[str] | None = None  # None = every source contributes
    history_ts_tolerance_s: int = 5

    @property
    def writes_index(self) -> bool:
        """True when `session_index.jsonl` is ours to write."""
        return self.only in (OnlyFile.SESSION_INDEX, OnlyFile.BOTH)

    @property
    def writes_history(self) -> bool:
        """True when `history.jsonl` is ours to write (and Codex keeps one)."""
        return self.history_enabled and self.only in (OnlyFile.HISTORY, OnlyFile.BOTH)


class DriftReason(StrEnum):
    INDEX_MISSING = "index_missing"  # restored thread has no index line
    INDEX_STALE_NAME = "index_stale_name"  # latest index name differs from the desired one
    HISTORY_MISSING = "history_missing"  # a user turn has no matching history line
    HISTORY_UNORDERED = "history_out_of_order"  # missing turns are older than the file's tail


@record(frozen=True, slots=True)
class IndexEntry:
    """A desired `session_index.jsonl` line for one restored thread."""

    thread_id: str
    thread_name: str
    updated_at: str
    sort_us: int  # epoch microseconds of `updated_at`, for ordering


@record(frozen=True, slots=True)
class Drift:
    """What differs between Codex's index files and what the facts say they should hold."""

    index_append: tuple[IndexEntry, ...] = ()
    index_reasons: Mapping[str, DriftReason] = field(default_factory=dict)
    history_add: tuple[HistoryLine, ...] = ()
    # Missing turns left out: they would not survive `[history] max_bytes` (or do not fit
    # under it now), or they are TUI turns whose own history line may still be on its way.
    history_over_cap: int = 0
    history_pending: tuple[HistoryLine, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.index_append and not self.history_add

    def counts(self) -> dict[str, int]:
        """Counts by reason, for reports and `status`."""
        out: dict[str, int] = {}
        for reason in self.index_reasons.values():
            out[reason.value] = out.get(reason.value, 0) + 1
        if self.history_add:
            out[DriftReason.HISTORY_MISSING.value] = len(self.history_add)
        return out
