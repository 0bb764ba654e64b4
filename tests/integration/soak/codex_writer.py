"""One soak writer process: behaves like a Codex client working on its own threads.

    python codex_writer.py --home H --journal J --manifest M --assigned A --writer N --seed S --rate R

Until SIGTERM it picks, at about R operations a second: a new thread (legacy or paginated
rollout), a user turn appended to one of its live threads (sometimes written in two pieces,
as a torn write the daemon must not take for a line), a rename (index line under the Codex
lock, often also a `thread_name_updated` event in the rollout), an archive or unarchive
(os.rename between sessions/YYYY/MM/DD and archived_sessions/), or a history line of a
session without rollout. Codex-style history lines (flock on history.jsonl) are written for
most user turns, before the turn reaches the rollout, as Codex does on submission.

Every operation is journaled twice in J, one JSON line each: {"b": ...} with what it is
about to write (before the first byte), and {"e": ...} with what was written (after the
last). At exit, M gets the expected path, size and sha256 of each of its rollouts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

# Run as a script: the repository root makes `tests.…` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.support.codexsim import (
    Rollout,
    append_history,
    append_index,
    date_dir,
    history_line,
    index_line,
    iso,
    line,
    rollout_file_name,
    write_all,
)

HISTORY_FIRST = 0.6  # share of user turns for which "Codex" writes its own history line
TORN = 0.25  # share of appended turns written in two pieces
SOURCES = ("cli", "vscode", "exec")
WEIGHTS = {"new": 12, "turn": 40, "rename": 14, "archive": 8, "unarchive": 8, "foreign": 8}


class Thread:
    def __init__(self, rollout: Rollout, rel: str, archived: bool, initial: bytes = b"") -> None:
        self.rollout = rollout
        self.rel = rel
        self.archived = archived
        self.sha = hashlib.sha256(initial)
        self.size = len(initial)

    @property
    def name(self) -> str:
        return os.path.basename(self.rel)


class Writer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.home = Path(args.home)
        self.wid = args.writer
        self.rng = random.Random(args.seed)
        self.rate = args.rate
        self.weights = json.loads(args.weights) if args.weights else WEIGHTS
        self.stop = False
        self.ops = 0
        self.texts = 0
        self.journal = os.open(args.journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.threads: dict[str, Thread] = {}
        for item in json.loads(Path(args.assigned).read_text()) if args.assigned else []:
            initial = (self.home / item["path"]).read_bytes()
            rollout = Rollout(item["tid"], paginated=item["paginated"], ordinal=item["ordinal"])
            self.threads[item["tid"]] = Thread(rollout, item["path"], item["archived"], initial)

    # -- journal --------------------------------------------------------------------------
    def log(self, **entry: Any) -> None:
        write_all(
            self.journal,
            (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode(),
        )

    def begin(self, op: str, **fields: Any) -> int:
        self.ops += 1
        self.log(b=self.ops, op=op, t=time.time(), **fields)
        return self.ops

    def end(self, opid: int, **fields: Any) -> None:
        self.log(e=opid, t=time.time(), **fields)

    # -- content ------------------------------------------------------------------------
    def text(self) -> str:
        self.texts += 1
        tag = f"w{self.wid}-{self.texts}"
        kind = self.rng.randrange(16)
        if kind == 0:
            return f"# Context from my IDE setup:\n\n## Active file: src/app_{tag}.py\n\n## My request for Codex:\nfix the failing test {tag}"
        if kind == 1:
            return f'explain {tag}\nthen refactor it\n\n- keep the "API" stable\n- no \\ escapes'
        if kind == 2:
            return f"résumé {tag} — 日本語のテキスト ✓ 🚀"
        if kind == 3:
            return f"long prompt {tag} " + "lorem ipsum " * self.rng.randrange(20, 120)
        return f"prompt {tag}: please look at item {self.rng.randrange(10**6)}"

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _write_file(
        self, thread: Thread, data: bytes, *, create: bool = False, torn: bool = False
    ) -> None:
        """Write like Codex's recorder: one write(2) per line, no fsync. A torn write splits
        one line in two writes with a pause between (a slow or interrupted writer)."""
        path = self.home / thread.rel
        flags = os.O_WRONLY | os.O_APPEND | (os.O_CREAT | os.O_EXCL if create else 0)
        lines = data.splitlines(keepends=True)
        split = self.rng.randrange(len(lines)) if torn else -1
        fd = os.open(path, flags, 0o644)
        try:
            for n, raw in enumerate(lines):
                if n == split and len(raw) > 1:
                    cut = self.rng.randrange(1, len(raw))
                    write_all(fd, raw[:cut])
                    time.sleep(
                        self.rng.uniform(0, 0.05)
                    )  # the daemon may read the half line meanwhile
                    write_all(fd, raw[cut:])
                else:
                    write_all(fd, raw)
        finally:
            os.close(fd)
        thread.sha.update(data)
        thread.size += len(data)

    def _turn(
        self, thread: Thread, text: str, hist: str | None, *, head: bool = False, torn: bool = False
    ) -> tuple[bool, int]:
        """History line first (when Codex keeps history), then the rollout lines. Returns
        whether the history line was written, and the turn's epoch second in the rollout."""
        ok = append_history(self.home, hist) if hist is not None else False
        now = time.time()
        first, rest = thread.rollout.turn(text, now, tool_bytes=self.rng.randrange(50, 2000))
        data = (thread.rollout.head(now) if head else "") + first + rest
        self._write_file(thread, data.encode("utf-8"), create=head, torn=torn)
        return ok, int(now)

    def _plan_turn(self, thread_id: str) -> tuple[str, str | None]:
        text = self.text()
        hist = (
            history_line(thread_id, text, int(time.time()))
            if self.rng.random() < HISTORY_FIRST
            else None
        )
        return text, hist

    # -- operations -----------------------------------------------------------------------
    def op_new(self) -> None:
        tid = self.new_id()
        now = time.time()
        name = rollout_file_name(tid, now)
        rel = f"{date_dir(name)}/{name}"
        paginated = self.rng.random() < 0.5
        thread = Thread(
            Rollout(tid, paginated=paginated, source=self.rng.choice(SOURCES)), rel, False
        )
        turns = [self._plan_turn(tid) for _ in range(self.rng.randint(1, 3))]
        opid = self.begin(
            "new",
            tid=tid,
            path=rel,
            paginated=paginated,
            turns=[text for text, _ in turns],
            hist=[h for _, h in turns if h],
        )
        (self.home / rel).parent.mkdir(parents=True, exist_ok=True)
        self.threads[tid] = thread
        written, stamps = [], []
        for k, (text, hist) in enumerate(turns):
            ok, ts = self._turn(thread, text, hist, head=k == 0, torn=self.rng.random() < TORN)
            stamps.append(ts)
            if ok:
                written.append(hist)
        self.end(opid, hist_ok=written, ts=stamps)

    def live(self) -> list[Thread]:
        return [t for t in self.threads.values() if not t.archived]

    def op_turn(self) -> None:
        live = self.live()
        if not live:
            return self.op_new()
        thread = self.rng.choice(live)
        tid = thread.rollout.thread_id
        text, hist = self._plan_turn(tid)
        opid = self.begin("turn", tid=tid, text=text, hist=[hist] if hist else [])
        ok, stamp = self._turn(thread, text, hist, torn=self.rng.random() < TORN)
        self.end(opid, hist_ok=[hist] if ok else [], ts=[stamp])
        return None

    def op_rename(self) -> None:
        live = self.live()
        if not live:
            return self.op_new()
        thread = self.rng.choice(live)
        tid = thread.rollout.thread_id
        self.texts += 1
        name = f"renamed w{self.wid}-{self.texts} ✎"
        raw = index_line(tid, name, iso(time.time()))
        opid = self.begin("rename", tid=tid, name=name, line=raw)
        ok = append_index(self.home, raw)
        if ok and self.rng.random() < 0.5:  # Codex also records the rename in the rollout
            event = line(
                {
                    "timestamp": iso(time.time()),
                    "type": "event_msg",
                    "payload": {
                        "type": "thread_name_updated",
                        "thread_id": tid,
                        "thread_name": name,
                    },
                }
            )
            if thread.rollout.paginated:
                event = line(
                    {
                        "timestamp": iso(time.time()),
                        "ordinal": thread.rollout.ordinal,
                        "type": "event_msg",
                        "payload": {
                            "type": "thread_name_updated",
                            "thread_id": tid,
                            "thread_name": name,
                        },
                    }
                )
                thread.rollout.ordinal += 1
            self._write_file(thread, event.encode("utf-8"))
        self.end(opid, ok=ok)
        return None

    def op_archive(self) -> None:
        live = self.live()
        if len(live) < 2:
            return self.op_new()
        thread = self.rng.choice(live)
        target = f"archived_sessions/{thread.name}"
        opid = self.begin("archive", tid=thread.rollout.thread_id, path=target)
        (self.home / "archived_sessions").mkdir(exist_ok=True)
        os.rename(self.home / thread.rel, self.home / target)
        thread.rel, thread.archived = target, True
        self.end(opid)
        return None

    def op_unarchive(self) -> None:
        archived = [t for t in self.threads.values() if t.archived]
        if not archived:
            return self.op_turn()
        thread = self.rng.choice(archived)
        target = f"{date_dir(thread.name)}/{thread.name}"
        opid = self.begin("unarchive", tid=thread.rollout.thread_id, path=target)
        (self.home / target).parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.home / thread.rel, self.home / target)
        thread.rel, thread.archived = target, False
        self.end(opid)
        return None

    def op_foreign(self) -> None:
        raw = history_line(self.new_id(), self.text(), int(time.time()))
        opid = self.begin("foreign", line=raw)
        ok = append_history(self.home, raw)
        self.end(opid, ok=ok)

    # -- main loop ------------------------------------------------------------------------
    def run(self) -> None:
        names = list(self.weights)
        weights = [self.weights[n] for n in names]
        while not self.stop:
            getattr(self, f"op_{self.rng.choices(names, weights)[0]}")()
            pause = self.rng.expovariate(self.rate)
            deadline = time.monotonic() + pause
            while not self.stop and time.monotonic() < deadline:  # pacing, not synchronisation
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def write_manifest(self, path: Path) -> None:
        data = {
            tid: {"path": t.rel, "size": t.size, "sha256": t.sha.hexdigest()}
            for tid, t in self.threads.items()
        }
        temp = path.with_name(path.name + ".tmp")
        temp.write_text(json.dumps(data))
        os.replace(temp, path)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", required=True)
    parser.add_argument("--journal", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--assigned", default="")
    parser.add_argument("--writer", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--rate", type=float, default=3.0)
    parser.add_argument("--weights", default="", help='JSON, e.g. {"rename": 1, "archive": 1}')
    args = parser.parse_args()
    writer = Writer(args)

    def on_term(signum: int, frame: Any) -> None:
        writer.stop = True

    signal.signal(signal.SIGTERM, on_term)
    writer.run()
    writer.write_manifest(Path(args.manifest))
    os.close(writer.journal)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
