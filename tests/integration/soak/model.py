"""The soak's expected state, rebuilt from the writers' journals, and the checker that compares
it with a (locked) snapshot of session_index.jsonl and history.jsonl.

Time rules. A snapshot is read between wall times T0 and T1, then the journals are read. An
operation whose end entry is stamped before T0 is applied; one that began before T1 but did
not end before T0 is "in flight": what it writes may or may not be in the snapshot, so its
lines count as known but are not required. Requirements that depend on the daemon's reaction
(an index line, a history line for a user turn) apply only to facts older than T0 - settle.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.codexsim import title_of

from .harness import torn_lines

INDEX_KEYS = ("id", "thread_name", "updated_at")
HISTORY_KEYS = ("session_id", "ts", "text")


@dataclass
class ThreadState:
    tid: str
    path: str
    archived: bool
    title: str
    owner: str
    turns: list[tuple[str, int, float]] = field(
        default_factory=list
    )  # text, rollout ts, written at
    renames: list[tuple[str, float]] = field(default_factory=list)  # name (written), at
    changed_at: float = 0.0  # last create / rename / archive / unarchive end
    live_since: float = 0.0  # creation or last unarchive end (meaningless while archived)


@dataclass(frozen=True)
class Discrepancy:
    kind: str
    detail: str


class Journal:
    """Incremental reader of one writer's journal file."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self.offset = 0
        self.pending: list[dict[str, Any]] = []  # read but stamped at or after the last snapshot

    def read_new(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        self.pending.extend(json.loads(raw) for raw in data[:end].splitlines() if raw.strip())


class Model:
    def __init__(self) -> None:
        self.threads: dict[str, ThreadState] = {}
        self.journals: list[Journal] = []
        self.inflight: dict[tuple[str, int], dict[str, Any]] = {}
        # Lines the writers wrote (applied), with their writer, and every line they may have
        # written (applied or in flight).
        self.index_written: dict[str, str] = {}
        self.history_written: dict[str, str] = {}
        self.order: dict[tuple[str, str], list[str]] = defaultdict(
            list
        )  # (writer, file) → lines in write order
        self.index_possible: set[str] = set()
        self.history_possible: set[str] = set()
        self.turn_keys: set[tuple[str, str]] = (
            set()
        )  # (session id, text) of every turn, in flight included
        self.required_history: set[tuple[str, str]] = set()  # once required, always required
        self.ops_applied: Counter[str] = Counter()
        self.lost: Counter[str] = (
            Counter()
        )  # appends Codex itself would have given up on (lock busy)

    # -- building -------------------------------------------------------------------------
    def add_thread(
        self, tid: str, path: str, *, archived: bool, turns: list[tuple[str, int]], owner: str
    ) -> None:
        state = ThreadState(tid, path, archived, title_of(turns[0][0]), owner)
        state.turns = [(text, ts, 0.0) for text, ts in turns]
        self.threads[tid] = state
        self.turn_keys.update((tid, text) for text, _ in turns)

    def add_journal(self, name: str, path: Path) -> None:
        self.journals.append(Journal(name, path))

    def _possible(self, entry: dict[str, Any]) -> None:
        """Everything a begun operation may write."""
        op = entry["op"]
        self.history_possible.update(entry.get("hist", []))
        if op == "new":
            self.turn_keys.update((entry["tid"], text) for text in entry["turns"])
        elif op == "turn":
            self.turn_keys.add((entry["tid"], entry["text"]))
        elif op == "rename":
            self.index_possible.add(entry["line"])
        elif op == "foreign":
            self.history_possible.add(entry["line"])

    def _apply(self, writer: str, begin: dict[str, Any], end: dict[str, Any]) -> None:
        op, at = begin["op"], end["t"]
        self.ops_applied[op] += 1
        for raw in end.get("hist_ok", []):
            self.history_written[raw] = writer
            self.order[(writer, "history")].append(raw)
        self.lost["history"] += len(begin.get("hist", [])) - len(end.get("hist_ok", []))
        if op == "foreign":
            if end["ok"]:
                self.history_written[begin["line"]] = writer
                self.order[(writer, "history")].append(begin["line"])
            else:
                self.lost["history"] += 1
            return
        tid = begin["tid"]
        if op == "new":
            turns = list(zip(begin["turns"], end["ts"], strict=True))
            self.add_thread(tid, begin["path"], archived=False, turns=turns, owner=writer)
            state = self.threads[tid]
            state.turns = [(text, ts, at) for text, ts in turns]
            state.changed_at = state.live_since = at
            return
        state = self.threads[tid]
        if op == "turn":
            state.turns.append((begin["text"], end["ts"][0], at))
        elif op == "rename":
            if end["ok"]:
                state.renames.append((begin["name"], at))
                state.changed_at = at
                self.index_written[begin["line"]] = writer
                self.order[(writer, "index")].append(begin["line"])
            else:
                self.lost["index"] += 1
        elif op in ("archive", "unarchive"):
            state.path = begin["path"]
            state.archived = op == "archive"
            state.changed_at = at
            if op == "unarchive":
                state.live_since = at

    def advance(self, read_from: float, read_until: float) -> None:
        """Read the journals for a snapshot read between `read_from` and `read_until`: apply
        the operations that ended before it began; anything begun before it ended may be in it."""
        for journal in self.journals:
            journal.read_new()
            consumed = 0
            blocked = False
            for entry in journal.pending:
                if "b" in entry:
                    if entry["t"] >= read_until:
                        break  # this writer's later entries are later still
                    self.inflight.setdefault((journal.name, entry["b"]), entry)
                    self._possible(entry)
                elif entry["t"] < read_from and not blocked:
                    begin = self.inflight.pop((journal.name, entry["e"]))
                    self._apply(journal.name, begin, entry)
                else:
                    blocked = True  # ended while (or after) the snapshot was read: still in flight
                if not blocked:
                    consumed += 1
            del journal.pending[:consumed]

    def expected_name(self, state: ThreadState) -> str:
        return state.renames[-1][0] if state.renames else state.title

    # -- checking -------------------------------------------------------------------------
    def check(
        self, snapshot_at: float, index: bytes, history: bytes, settle: float
    ) -> list[Discrepancy]:
        """Compare a snapshot taken at `snapshot_at` (call `advance` first)."""
        out: list[Discrepancy] = []
        horizon = snapshot_at - settle
        busy = {entry["tid"] for entry in self.inflight.values() if "tid" in entry}

        for torn in torn_lines(index, INDEX_KEYS):
            out.append(Discrepancy("index_torn_line", torn[:200].decode("utf-8", "replace")))
        for torn in torn_lines(history, HISTORY_KEYS):
            out.append(Discrepancy("history_torn_line", torn[:200].decode("utf-8", "replace")))

        index_lines = [raw.decode("utf-8", "replace") + "\n" for raw in index.splitlines()]
        history_lines = [raw.decode("utf-8", "replace") + "\n" for raw in history.splitlines()]
        index_count = Counter(index_lines)
        history_count = Counter(history_lines)

        # Every line a writer wrote is there, exactly once.
        for raw in self.index_written:
            if index_count[raw] != 1:
                out.append(
                    Discrepancy(
                        "index_writer_line_count", f"{index_count[raw]}x {raw.strip()[:160]}"
                    )
                )
        for raw in self.history_written:
            if history_count[raw] != 1:
                out.append(
                    Discrepancy(
                        "history_writer_line_count", f"{history_count[raw]}x {raw.strip()[:160]}"
                    )
                )

        # session_index.jsonl: the daemon's lines, and the latest name of each live thread.
        latest: dict[str, str] = {}
        seen: set[str] = set()
        for raw in index_lines:
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            tid = obj.get("id")
            if not isinstance(tid, str):
                continue
            ours = raw in self.index_written or raw in self.index_possible
            if not ours:
                state = self.threads.get(tid)
                if state is None:
                    out.append(Discrepancy("index_unknown_thread", raw.strip()[:160]))
                elif tid in seen:
                    # The daemon appends only what is missing or stale; after a Codex rename
                    # (or its own line) there is nothing it may add for this workload.
                    out.append(Discrepancy("index_extra_daemon_line", raw.strip()[:160]))
                elif obj.get("thread_name") != state.title:
                    out.append(
                        Discrepancy(
                            "index_daemon_line_wrong_name",
                            f"{obj.get('thread_name')!r} != title {state.title!r}"[:200],
                        )
                    )
            seen.add(tid)
            latest[tid] = obj.get("thread_name")
        for tid, state in self.threads.items():
            if state.archived or tid in busy or state.changed_at > horizon:
                continue
            want = self.expected_name(state)
            if tid not in latest:
                out.append(Discrepancy("index_missing", f"{tid} (want {want!r})"[:200]))
            elif latest[tid] != want:
                out.append(
                    Discrepancy("index_stale_name", f"{tid}: {latest[tid]!r} != {want!r}"[:200])
                )

        # history.jsonl: one line per user turn (required once settled while live), no
        # duplicates, no lines that are nobody's.
        by_key: dict[tuple[str, str], list[int]] = defaultdict(list)
        for raw in history_lines:
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            key = (obj.get("session_id"), obj.get("text"))
            ours = raw in self.history_written or raw in self.history_possible
            if not ours and key not in self.turn_keys:
                out.append(Discrepancy("history_unknown_line", raw.strip()[:160]))
            by_key[key].append(obj.get("ts"))
        for tid, state in self.threads.items():
            live_settled = not state.archived and tid not in busy and state.live_since <= horizon
            for text, ts, at in state.turns:
                key = (tid, text)
                if live_settled and at <= horizon:
                    self.required_history.add(key)
                found = by_key.get(key, [])
                if len(found) > 1:
                    out.append(
                        Discrepancy("history_duplicate", f"{len(found)}x {tid} {text[:60]!r}")
                    )
                elif not found and key in self.required_history:
                    out.append(Discrepancy("history_missing", f"{tid} {text[:60]!r}"))
                elif found and abs(found[0] - ts) > 5:
                    out.append(
                        Discrepancy("history_bad_ts", f"{tid} {text[:40]!r}: {found[0]} vs {ts}")
                    )
        return out

    def order_violations(self, index: bytes, history: bytes) -> list[Discrepancy]:
        """Each writer's lines must still be in the order it wrote them (the daemon inserts
        history lines in time order, but never moves one)."""
        out = []
        for (writer, which), lines in self.order.items():
            data = index if which == "index" else history
            position = {
                raw.decode("utf-8", "replace") + "\n": n for n, raw in enumerate(data.splitlines())
            }
            places = [position.get(raw, -1) for raw in lines]
            if places != sorted(places):
                out.append(
                    Discrepancy(f"{which}_order", f"writer {writer}: its lines were reordered")
                )
        return out
