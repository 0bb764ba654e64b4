"""A Codex simulator: writes a `CODEX_HOME` the way Codex 0.169/0.171 does, and journals it.

What it does, each as the real CLI does it:

* rollouts: `sessions/YYYY/MM/DD/rollout-<ts>-<id>.jsonl`, one `write(2)` per line on an
  `O_APPEND` fd, no fsync; legacy (`user_message`) or paginated (`item_completed` with a
  `UserMessage`, contiguous `ordinal`s) user turns;
* `history.jsonl` (TUI turns only): `open(O_RDWR|O_CREAT|O_APPEND, 0600)`, mode forced to
  0600, `flock(LOCK_EX|LOCK_NB)` tried 10 times 100 ms apart, then the prompt is dropped;
  one write at the end; then, still under the lock, the `[history] max_bytes` trim: when the
  file is over the cap, whole lines are dropped from the start until the size is at most
  max(floor(0.8 × max_bytes), length of the newest line), the file is truncated to 0 and the
  tail written back (same inode);
* a TUI turn goes to the rollout, and its history line (`ts` taken 0–1 s before the
  rollout's line) follows after 0–500 ms, or arrives first; `codex exec` turns go only to
  the rollout;
* renames: `threads.name` in the DB, then one line appended to `session_index.jsonl` under
  `flock` on `session_index.jsonl.lock`, polled every 50 ms for about 30 s; a TUI (0.171)
  names a new thread after its first prompt the same way;
* archive and unarchive: one `rename(2)` between `sessions/Y/M/D/` and `archived_sessions/`
  plus the DB row; unarchive sets the file's mtime to now;
* `state_5.sqlite` (WAL) with the 0.169 `threads` columns: a row per new thread, updated on
  each turn, rename, archive and unarchive.

Every write, every dropped prompt and every line the trim removed is appended to
`CodexSim.journal`, so a test can tell exactly which lines Codex wrote and which it removed
itself. Standard library only: stand-alone writer processes import it too.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import random
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

IDE_MARKER = "## My request for Codex:"
HISTORY_LOCK_TRIES = 10
HISTORY_LOCK_SLEEP_S = 0.1
INDEX_LOCK_POLL_S = 0.05
INDEX_LOCK_TRIES = 600  # ≈30 s, then Codex gives up on the index line (the DB keeps the name)
SOFT_CAP_RATIO = 0.8
TUI_NAME_CHARS = 58
SCHEMA = Path(__file__).resolve().parents[1] / "e2e" / "threads_schema_0169.sql"


# -- line formats ----------------------------------------------------------------------------


def iso(ts: float) -> str:
    """RFC 3339 UTC with milliseconds, as in rollout lines."""
    return (
        datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def iso_nanos(ts: float) -> str:
    """RFC 3339 UTC with nanoseconds, as in `session_index.jsonl`'s `updated_at`."""
    whole = int(ts)
    nanos = round((ts - whole) * 1e9) % 1_000_000_000
    stamp = datetime.fromtimestamp(whole, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos:09d}Z"


def line(obj: dict[str, Any]) -> str:
    """Compact JSON with the UTF-8 text unescaped (serde_json's output), plus a newline."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


def history_line(session_id: str, text: str, ts: int) -> str:
    return line({"session_id": session_id, "ts": ts, "text": text})


def index_line(thread_id: str, name: str, updated_at: str) -> str:
    return line({"id": thread_id, "thread_name": name, "updated_at": updated_at})


def rollout_file_name(thread_id: str, start: float) -> str:
    stamp = datetime.fromtimestamp(start, tz=UTC).strftime("%Y-%m-%dT%H-%M-%S")
    return f"rollout-{stamp}-{thread_id}.jsonl"


def date_dir(file_name: str) -> str:
    """sessions/YYYY/MM/DD of a rollout, from the time in its name (where Codex puts it back
    on unarchive)."""
    stamp = file_name.removeprefix("rollout-")[:10]
    year, month, day = stamp.split("-")
    return f"sessions/{year}/{month}/{day}"


def title_of(text: str) -> str:
    """The thread title Codex derives from a first user message (IDE context stripped)."""
    marker = text.find(IDE_MARKER)
    if marker != -1:
        text = text[marker + len(IDE_MARKER) :]
    return text.strip()


def tui_thread_name(text: str) -> str:
    """The name a 0.171 TUI gives a new thread: its first prompt on one line, cut to 58
    characters plus an ellipsis."""
    flat = " ".join(title_of(text).split())
    return flat if len(flat) <= TUI_NAME_CHARS else flat[:TUI_NAME_CHARS] + "…"


class Rollout:
    """Lines of one thread, in its format; keeps the paginated ordinal."""

    def __init__(
        self,
        thread_id: str,
        *,
        paginated: bool,
        source: str = "cli",
        ordinal: int = 0,
        originator: str = "codex_cli_rs",
    ) -> None:
        self.thread_id = thread_id
        self.paginated = paginated
        self.source = source
        self.ordinal = ordinal
        self.originator = originator

    def _emit(self, ts: float, kind: str, payload: dict[str, Any]) -> str:
        obj: dict[str, Any] = {"timestamp": iso(ts)}
        if self.paginated:
            obj["ordinal"] = self.ordinal
            self.ordinal += 1
        obj["type"] = kind
        obj["payload"] = payload
        return line(obj)

    def head(self, ts: float) -> str:
        meta: dict[str, Any] = {
            "id": self.thread_id,
            "timestamp": iso(ts),
            "cwd": "/work/soak",
            "originator": self.originator,
            "cli_version": "0.169.0",
            "source": self.source,
            "model_provider": "mock",
        }
        if self.paginated:
            meta["history_mode"] = "paginated"
        return self._emit(ts, "session_meta", meta) + self._emit(
            ts,
            "response_item",
            {
                "type": "message",
                "role": "user",
                "content": [
                    {
                        "type": "input_text",
                        "text": "<environment_context>\n  <cwd>/work/soak</cwd>\n</environment_context>",
                    }
                ],
            },
        )

    def turn(self, text: str, ts: float, *, tool_bytes: int = 300) -> tuple[str, str]:
        """Return (lines up to and including the user turn, the lines after it)."""
        n = self.ordinal
        first = self._emit(ts, "turn_context", {"cwd": "/work/soak", "model": "mock"})
        first += self._emit(
            ts,
            "response_item",
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]},
        )
        if self.paginated:
            first += self._emit(
                ts,
                "event_msg",
                {
                    "type": "item_completed",
                    "thread_id": self.thread_id,
                    "turn_id": f"t{n}",
                    "item": {
                        "type": "UserMessage",
                        "id": f"u{n}",
                        "content": [{"type": "text", "text": text, "text_elements": []}],
                    },
                },
            )
        else:
            first += self._emit(
                ts,
                "event_msg",
                {
                    "type": "user_message",
                    "message": text,
                    "images": [],
                    "local_images": [],
                    "kind": "plain",
                },
            )
        rest = self._emit(
            ts,
            "response_item",
            {"type": "function_call_output", "call_id": f"c{n}", "output": "x" * tool_bytes},
        )
        rest += self._emit(ts, "event_msg", {"type": "agent_message", "message": "done"})
        return first, rest


# -- Codex's lock protocols ------------------------------------------------------------------


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@dataclass
class LockAttempt:
    """How one `flock(LOCK_EX|LOCK_NB)` retry loop went."""

    acquired: bool
    tries: int
    refused_s: float  # from the first refusal to the acquisition (or the giving up)


def try_lock(fd: int, tries: int, sleep_s: float) -> LockAttempt:
    """Codex's retry loop: try, sleep after every refusal, give up after `tries` tries."""
    first_refusal: float | None = None
    for n in range(1, tries + 1):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                raise
            if first_refusal is None:
                first_refusal = time.monotonic()
            time.sleep(sleep_s)
            continue
        refused = 0.0 if first_refusal is None else time.monotonic() - first_refusal
        return LockAttempt(True, n, refused)
    assert first_refusal is not None
    return LockAttempt(False, tries, time.monotonic() - first_refusal)


def _trim_target(max_bytes: int, newest: int) -> int:
    soft = int(max_bytes * SOFT_CAP_RATIO)
    return max(min(max(soft, 1), max_bytes), newest)


def enforce_history_limit(fd: int, max_bytes: int | None) -> list[bytes]:
    """Codex's in-place trim on a locked fd; return the lines it removed (oldest first)."""
    if not max_bytes or max_bytes <= 0:
        return []
    size = os.fstat(fd).st_size
    if size <= max_bytes:
        return []
    data = os.pread(fd, size, 0)
    try:
        data.decode("utf-8")  # Codex reads lines into Strings: invalid UTF-8 stops the trim
    except UnicodeDecodeError:
        return []
    lines = data.splitlines(keepends=True)
    if not lines:
        return []
    target = _trim_target(max_bytes, len(lines[-1]))
    current, idx, drop = size, 0, 0
    while current > target and idx < len(lines) - 1:
        current -= len(lines[idx])
        drop += len(lines[idx])
        idx += 1
    if drop == 0:
        return []
    tail = data[drop:]
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    write_all(fd, tail)
    return lines[:idx]


@dataclass
class HistoryAppend:
    """The outcome of one Codex history append."""

    ok: bool
    lock: LockAttempt
    trimmed: list[bytes] = field(default_factory=list)


def append_history_locked(home: Path, raw: bytes, max_bytes: int | None) -> HistoryAppend:
    """Codex's history append (message-history `append_entry`), trim included."""
    path = home / "history.jsonl"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o777 != 0o600:
            os.fchmod(fd, 0o600)
        attempt = try_lock(fd, HISTORY_LOCK_TRIES, HISTORY_LOCK_SLEEP_S)
        if not attempt.acquired:
            return HistoryAppend(False, attempt)
        os.lseek(fd, 0, os.SEEK_END)
        write_all(fd, raw)
        return HistoryAppend(True, attempt, enforce_history_limit(fd, max_bytes))
    finally:
        os.close(fd)


def append_history(home: Path, raw: str, max_bytes: int | None = None) -> bool:
    """Codex's history append; False when Codex gave up on the lock (the prompt is lost)."""
    return append_history_locked(home, raw.encode("utf-8"), max_bytes).ok


def append_index_locked(home: Path, raw: bytes) -> LockAttempt:
    """Codex's rename: the sidecar `session_index.jsonl.lock` (polled every 50 ms, ≈30 s),
    then one O_APPEND write of the line."""
    lock = os.open(home / "session_index.jsonl.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        attempt = try_lock(lock, INDEX_LOCK_TRIES, INDEX_LOCK_POLL_S)
        if attempt.acquired:
            fd = os.open(
                home / "session_index.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666
            )
            try:
                write_all(fd, raw)
            finally:
                os.close(fd)
        return attempt
    finally:
        os.close(lock)


def append_index(home: Path, raw: str) -> bool:
    """Codex's rename append; False when Codex gave up waiting for the lock."""
    return append_index_locked(home, raw.encode("utf-8")).acquired


# -- the state DB ----------------------------------------------------------------------------


def create_state_db(home: Path) -> Path:
    """`state_5.sqlite` in WAL mode with the `threads` table of Codex 0.169."""
    path = home / "state_5.sqlite"
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA.read_text(encoding="utf-8"))
        conn.commit()
    finally:
        conn.close()
    return path


def _db(home: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(home / "state_5.sqlite", timeout=10)
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


# -- the simulator ---------------------------------------------------------------------------


@dataclass
class SimThread:
    """One thread as Codex knows it."""

    tid: str
    rollout: Rollout
    rel: str  # rollout path relative to the home
    start: float
    tui: bool
    archived: bool = False
    turns: list[tuple[str, float]] = field(default_factory=list)  # text, rollout time
    names: list[str] = field(default_factory=list)  # every name Codex gave it, in order
    size: int = 0  # bytes Codex wrote to the rollout

    @property
    def file_name(self) -> str:
        return os.path.basename(self.rel)


class CodexSim:
    """One Codex installation on `home`: TUI and exec threads, renames, archive moves.

    `journal` lists, in order, every write as a dict with an `op` key:
    `rollout` (path, bytes), `history` (line, ok, tries, refused_s, trimmed), `index` (line,
    ok, refused_s), `db` (what changed), `move` (from, to)."""

    def __init__(
        self,
        home: Path,
        rng: random.Random,
        *,
        max_bytes: int | None = None,
        create_db: bool = True,
    ) -> None:
        self.home = home
        self.rng = rng
        self.max_bytes = max_bytes
        self.threads: dict[str, SimThread] = {}
        self.journal: list[dict[str, Any]] = []
        self.texts = 0
        home.mkdir(parents=True, exist_ok=True)
        config = "[history]\n" + (f"max_bytes = {max_bytes}\n" if max_bytes else "")
        (home / "config.toml").write_text(config, encoding="utf-8")
        if create_db and not (home / "state_5.sqlite").exists():
            create_state_db(home)

    # -- ids, texts, clock -------------------------------------------------------------------
    def new_id(self) -> str:
        """A UUIDv7-shaped thread id (current Codex), random bits from the seeded rng."""
        ms = int(time.time() * 1000)
        value = (ms << 80) | self.rng.getrandbits(80)
        value = (value & ~(0xF << 76)) | (0x7 << 76)
        value = (value & ~(0x3 << 62)) | (0x2 << 62)
        return str(uuid.UUID(int=value))

    def text(self, tag: str = "") -> str:
        """A unique prompt; some have newlines, quotes, IDE context or non-ASCII text."""
        self.texts += 1
        label = f"{tag}p{self.texts}"
        kind = self.rng.randrange(10)
        if kind == 0:
            return f"# Context from my IDE setup:\n\n## Active file: a.py\n\n## My request for Codex:\nfix {label}"
        if kind == 1:
            return f'explain {label}\nthen refactor\n- keep the "API" stable \\ no escapes'
        if kind == 2:
            return f"résumé {label} — 日本語 ✓ 🚀"
        if kind == 3:
            return f"long {label} " + "lorem ipsum " * self.rng.randrange(10, 60)
        return f"prompt {label}: look at item {self.rng.randrange(10**6)}"

    # -- low-level writes --------------------------------------------------------------------
    def _write_rollout(self, thread: SimThread, data: str, *, create: bool = False) -> None:
        path = self.home / thread.rel
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | (os.O_CREAT | os.O_EXCL if create else 0)
        raw = data.encode("utf-8")
        fd = os.open(path, flags, 0o644)
        try:
            for piece in raw.splitlines(keepends=True):  # one write(2) per line
                write_all(fd, piece)
        finally:
            os.close(fd)
        thread.size += len(raw)
        self.journal.append(
            {"op": "rollout", "tid": thread.tid, "path": thread.rel, "bytes": len(raw)}
        )

    def history_append(self, session_id: str, text: str, ts: int) -> HistoryAppend:
        """A TUI history append of `text` (lock protocol and trim as Codex does them)."""
        raw = history_line(session_id, text, ts).encode("utf-8")
        result = append_history_locked(self.home, raw, self.max_bytes)
        self.journal.append(
            {
                "op": "history",
                "line": raw,
                "sid": session_id,
                "text": text,
                "ts": ts,
                "ok": result.ok,
                "tries": result.lock.tries,
                "refused_s": result.lock.refused_s,
                "trimmed": result.trimmed,
                "at": time.time(),
            }
        )
        return result

    def index_append(self, tid: str, name: str) -> LockAttempt:
        """A rename's index line; `updated_at` is taken before the lock, as Codex does."""
        raw = index_line(tid, name, iso_nanos(time.time())).encode("utf-8")
        attempt = append_index_locked(self.home, raw)
        self.journal.append(
            {
                "op": "index",
                "line": raw,
                "tid": tid,
                "name": name,
                "ok": attempt.acquired,
                "refused_s": attempt.refused_s,
            }
        )
        return attempt

    def _db_exec(self, what: str, sql: str, args: tuple[Any, ...]) -> None:
        conn = _db(self.home)
        try:
            conn.execute(sql, args)
            conn.commit()
        finally:
            conn.close()
        self.journal.append({"op": "db", "what": what})

    # -- threads -----------------------------------------------------------------------------
    def new_thread(
        self,
        *,
        tui: bool,
        paginated: bool = True,
        start: float | None = None,
        first_text: str | None = None,
        history_delay_s: float | None = None,
    ) -> SimThread:
        """Create a thread with one user turn (a TUI or a `codex exec` run). `start` in the
        past makes an old thread (restored or copied in), whose turn is written at once."""
        now = time.time()
        begin = now if start is None else start
        tid = self.new_id()
        name = rollout_file_name(tid, begin)
        rel = f"{date_dir(name)}/{name}"
        source, originator = ("vscode", "codex-tui") if tui else ("exec", "codex_exec")
        thread = SimThread(
            tid,
            Rollout(tid, paginated=paginated, source=source, originator=originator),
            rel,
            begin,
            tui,
        )
        self.threads[tid] = thread
        self._write_rollout(thread, thread.rollout.head(begin), create=True)
        text = first_text if first_text is not None else self.text("n")
        self._db_exec(
            "insert",
            "INSERT INTO threads (id, rollout_path, created_at, updated_at, source, model_provider,"
            " cwd, title, sandbox_policy, approval_mode, cli_version, first_user_message, preview,"
            " created_at_ms, updated_at_ms, recency_at, recency_at_ms, history_mode, originator)"
            " VALUES (?, ?, ?, ?, ?, 'mock', '/work/soak', ?, '', '', '0.169.0', ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                tid,
                str(self.home / rel),
                int(begin),
                int(begin),
                source,
                title_of(text),
                title_of(text),
                title_of(text),
                int(begin * 1000),
                int(begin * 1000),
                int(begin),
                int(begin * 1000),
                "paginated" if paginated else "legacy",
                originator,
            ),
        )
        if tui:
            self.tui_turn(thread, text, delay_s=history_delay_s, at=start)
            self.rename(thread, tui_thread_name(text))
        else:
            self.exec_turn(thread, text, at=start)
        return thread

    def _rollout_turn(self, thread: SimThread, text: str, at: float | None) -> float:
        ts = time.time() if at is None else at
        first, rest = thread.rollout.turn(text, ts, tool_bytes=self.rng.randrange(50, 800))
        self._write_rollout(thread, first)
        thread.turns.append((text, ts))
        self._write_rollout(thread, rest)
        self._db_exec(
            "turn",
            "UPDATE threads SET updated_at = ?, updated_at_ms = ? WHERE id = ?",
            (int(ts), int(ts * 1000), thread.tid),
        )
        return ts

    def exec_turn(
        self, thread: SimThread, text: str | None = None, *, at: float | None = None
    ) -> str:
        """A `codex exec` turn: the rollout only."""
        text = text if text is not None else self.text("x")
        self._rollout_turn(thread, text, at)
        return text

    def tui_turn(
        self,
        thread: SimThread,
        text: str | None = None,
        *,
        delay_s: float | None = None,
        at: float | None = None,
    ) -> tuple[str, HistoryAppend]:
        """A TUI turn: the rollout, and the history line (ts 0–1 s earlier) after `delay_s`
        (random 0–500 ms when None); a negative delay writes the history line first."""
        text = text if text is not None else self.text("t")
        delay = self.rng.uniform(0.0, 0.5) if delay_s is None else delay_s
        if self.rng.random() < 0.2 and delay_s is None:
            delay = -1.0
        base = time.time() if at is None else at
        hist_ts = int(base - self.rng.uniform(0.0, 1.0))
        if delay < 0:
            result = self.history_append(thread.tid, text, hist_ts)
            self._rollout_turn(thread, text, at)
        else:
            self._rollout_turn(thread, text, at)
            time.sleep(delay)  # Codex's own timing between the two writes, not synchronisation
            result = self.history_append(thread.tid, text, hist_ts)
        return text, result

    def rename(self, thread: SimThread, name: str | None = None) -> str:
        """`thread/name/set`: the DB's `name`, then the index line under the lock."""
        name = name if name is not None else f"renamed {self.text('r')[:40]}"
        column = "name" if thread.rollout.paginated else "title"
        self._db_exec("rename", f"UPDATE threads SET {column} = ? WHERE id = ?", (name, thread.tid))
        thread.names.append(name)
        self.index_append(thread.tid, name)
        return name

    def archive(self, thread: SimThread) -> None:
        """`codex archive`: one rename into `archived_sessions/`, then the DB row."""
        target = f"archived_sessions/{thread.file_name}"
        (self.home / "archived_sessions").mkdir(exist_ok=True)
        os.rename(self.home / thread.rel, self.home / target)
        self.journal.append({"op": "move", "from": thread.rel, "to": target})
        thread.rel, thread.archived = target, True
        now = time.time()
        self._db_exec(
            "archive",
            "UPDATE threads SET archived = 1, archived_at = ?, rollout_path = ? WHERE id = ?",
            (int(now), str(self.home / target), thread.tid),
        )

    def unarchive(self, thread: SimThread) -> None:
        """`codex unarchive`: back under the date of its file name, mtime and DB set to now."""
        target = f"{date_dir(thread.file_name)}/{thread.file_name}"
        (self.home / target).parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.home / thread.rel, self.home / target)
        os.utime(self.home / target)
        self.journal.append({"op": "move", "from": thread.rel, "to": target})
        thread.rel, thread.archived = target, False
        now = time.time()
        self._db_exec(
            "unarchive",
            "UPDATE threads SET archived = 0, archived_at = NULL, rollout_path = ?,"
            " updated_at = ?, updated_at_ms = ? WHERE id = ?",
            (str(self.home / target), int(now), int(now * 1000), thread.tid),
        )

    def db_touch(self, thread: SimThread) -> None:
        """A DB-only row update Codex makes (tokens used, recency), no file changes."""
        now = time.time()
        self._db_exec(
            "touch",
            "UPDATE threads SET tokens_used = tokens_used + 1, recency_at = ?, recency_at_ms = ?"
            " WHERE id = ?",
            (int(now), int(now * 1000), thread.tid),
        )

    # -- what the journal says ---------------------------------------------------------------
    def history_entries(self) -> list[dict[str, Any]]:
        return [e for e in self.journal if e["op"] == "history"]

    def dropped(self) -> list[dict[str, Any]]:
        """History appends Codex gave up on (the lock stayed busy for 10 tries)."""
        return [e for e in self.history_entries() if not e["ok"]]

    def longest_refusal_s(self) -> float:
        """The longest time a Codex append's LOCK_NB tries were refused."""
        return max((e["refused_s"] for e in self.history_entries()), default=0.0)

    def trimmed_lines(self) -> list[bytes]:
        """Every line Codex's own trim removed, in order."""
        return [raw for e in self.history_entries() for raw in e["trimmed"]]
