"""The daemon's parses of a home's two index files, and which of their contents a plan (or
our own write after it) vouches for.

A file's content is known by its fingerprint `(dev, inode, size, mtime_ns)`. The parse is
extended when the file only grew (its old last line is still where it was), and read again
otherwise. A content a plan read, or our own write produced from exactly what the plan saw,
is verified: its change event is our echo, not a reason to plan.
"""

from __future__ import annotations

from pathlib import Path

from codex_indexd.codex.home import CodexHome
from codex_indexd.codex.indexfiles import (
    NotRegularFile,
    extend_from,
    file_fingerprint,
    open_index_file,
)
from codex_indexd.index.lines import HistoryFile, IndexFile, still_prefix
from codex_indexd.records import field, record
from codex_indexd.watch.debounce import Debouncer
from codex_indexd.write.index_writer import WriteResult

Fingerprint = tuple[int, int, int, int]


def drop_own_echoes(
    debouncer: Debouncer, key: str, root: Path, own: dict[str, Fingerprint]
) -> None:
    """Our own writes come back as events: drop those marks of home `key` (at `root`) while
    the files are exactly as we left them (a batch for them would only find its own lines)."""
    for name, fingerprint in own.items():
        path = root / name

        def unchanged(path: Path = path, fingerprint: Fingerprint = fingerprint) -> bool:
            return file_fingerprint(path) == fingerprint

        debouncer.discard_if(key, str(path), unchanged)


@record(slots=True)
class PlanDue:
    """What the next plan must look at: everything, or the threads whose facts changed
    since a plan that left no drift."""

    full: bool = True
    dirty: set[str] = field(default_factory=set)


@record(slots=True)
class Cached:
    """One file's parse and the fingerprint of the content it holds."""

    fingerprint: Fingerprint | None = None
    loaded: bool = False
    index: IndexFile = field(default_factory=IndexFile)
    history: HistoryFile = field(default_factory=lambda: HistoryFile(compact=True))


class IndexCache:
    """Both index files of one home, parsed incrementally; see the module docstring."""

    def __init__(self, home: CodexHome, due: PlanDue) -> None:
        self.home = home
        self.due = due
        self.index_cache = Cached()
        self.history_cache = Cached()
        # Per file name, the fingerprint of the content the last plan saw (or of our own
        # write after it): while both files still match and nothing is dirty, no plan is due.
        self.verified_fp: dict[str, Fingerprint | None] = {}

    @property
    def names(self) -> tuple[str, str]:
        return self.home.session_index.name, self.home.history.name

    def is_verified(self, name: str, fingerprint: Fingerprint | None) -> bool:
        """True when `fingerprint` is the content a plan (or our write after it) vouched for."""
        return name in self.verified_fp and self.verified_fp[name] == fingerprint

    def both_verified(self) -> bool:
        """True when both files still hold what the last plan verified."""
        return all(
            self.is_verified(path.name, file_fingerprint(path))
            for path in (self.home.session_index, self.home.history)
        )

    def forget(self, name: str) -> None:
        """Drop the parse and the verification of one file: it is read afresh next time."""
        if name == self.home.session_index.name:
            self.index_cache = Cached()
        else:
            self.history_cache = Cached()
        self.verified_fp.pop(name, None)

    def forget_all(self) -> None:
        """Drop both parses and every verification (a journal recovery may have rewritten)."""
        self.index_cache, self.history_cache = Cached(), Cached()
        self.verified_fp.clear()

    def index(self, *, planning: bool = False) -> IndexFile:
        """Return the current parse of `session_index.jsonl` (see `_load`)."""
        return self._load(self.home.session_index, self.index_cache, True, planning).index

    def history(self, *, planning: bool = False) -> HistoryFile:
        """Return the current parse of `history.jsonl` (see `_load`)."""
        return self._load(self.home.history, self.history_cache, False, planning).history

    def _load(self, path: Path, cache: Cached, is_index: bool, planning: bool) -> Cached:
        """Bring the cached parse of `path` up to date. Only a load for a plan (`planning`)
        records the content as verified: a load at another moment may see a change that no
        plan has looked at yet, which must stay due."""
        fp = file_fingerprint(path)
        if cache.loaded and fp == cache.fingerprint:
            return cache
        # Content a plan verified (our own write after it, typically) dirties nothing.
        verified = self.is_verified(path.name, fp)
        old = cache.fingerprint
        parsed: IndexFile | HistoryFile = cache.index if is_index else cache.history
        current_size = parsed.size
        try:
            with open_index_file(path) as handle:

                def read_at(offset: int, length: int) -> bytes:
                    handle.seek(offset)
                    return handle.read(length)

                # Only an append keeps what we parsed.
                grew = (
                    fp is not None
                    and old is not None
                    and fp[:2] == old[:2]
                    and fp[2] > parsed.size
                    and still_prefix(parsed, fp[2], read_at)
                )
                handle.seek(current_size if grew else 0)
                if not grew:
                    cache.index, cache.history = IndexFile(), HistoryFile(compact=True)
                    self.due.full |= not verified
                parsed = cache.index if is_index else cache.history
                before = len(parsed.parsed)
                read = extend_from(parsed, handle)
        except (FileNotFoundError, NotRegularFile):  # a refusal is logged by the reader
            cache.index, cache.history = IndexFile(), HistoryFile(compact=True)
            self.due.full |= not verified
            grew, read, before = False, 0, 0
        if is_index and not verified:
            new_lines = cache.index.parsed[before:]
            self.due.dirty.update(line.thread_id for line in new_lines if line)
        consistent = fp is None or read + (current_size if grew else 0) == fp[2]
        cache.fingerprint = fp if consistent else None
        cache.loaded = True
        if consistent and planning:
            self.verified_fp[path.name] = fp
        elif not consistent:  # the file changed while we read it: the next look rereads it
            self.verified_fp.pop(path.name, None)
        return cache

    def verify_own_write(self, name: str, written: WriteResult) -> bool:
        """Our write verifies the file when it found exactly what the plan saw (nobody wrote
        in between): the content is then the plan's view plus the missing lines. Return
        False when foreign bytes came in between (their event is then not an echo)."""
        is_index = name == self.home.session_index.name
        cache = self.index_cache if is_index else self.history_cache
        path = self.home.session_index if is_index else self.home.history
        seen_size = cache.index.size if is_index else cache.history.size
        seen, after = cache.fingerprint, written.fingerprint
        same_file = seen[:2] == after[:2] if seen is not None and after is not None else False
        unchanged = (
            name in self.verified_fp
            and written.before_size == seen_size
            and (same_file or (seen is None and seen_size == 0))  # or we created it
        )
        if unchanged:
            self.verified_fp[name] = written.fingerprint
            # Parse our own lines now: the cache then holds the file as we left it, and any
            # later change (a truncation right after our write) is seen as a change.
            self._load(path, cache, is_index, planning=False)
            return True
        # Foreign bytes came in between (a Codex rename appended between our plan and our
        # write): the next plan must read them (for the index, with the DB re-read: Codex
        # renamed there first).
        self.verified_fp.pop(name, None)
        return False

    def rewritten(self, name: str) -> None:
        """Lines went in before the old end (same inode, bigger file): the cached copy must
        not take the shifted tail for an append. Reread it next time."""
        if name == self.home.session_index.name:
            self.index_cache = Cached()
        else:
            self.history_cache = Cached()
