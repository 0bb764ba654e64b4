"""Peak RSS of `codex-indexd repair` on a home whose one new turn is a very long prompt.

    python tests/bench/bench_long_turn.py [--mb 20] [--kind ascii|escapes|both] [--reps 1]

Builds, per kind, a home with one rollout whose second user turn holds a prompt of `--mb`
MB (`ascii`: plain letters; `escapes`: quotes, backslashes, newlines and non-ASCII letters,
which JSON escapes or encodes in several bytes), with `history.jsonl` already holding the
first turn, so that `repair` appends exactly one line: the long one. Prints the peak RSS of
`repair` (via `os.wait4`, from a small launcher), the same on a home with a short prompt,
and the target `48 MiB + the prompt's size` (the prompt's UTF-8 size). Never prints prompt
text.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "daemon")]

from tests.bench import bench_measure as measure  # noqa: E402
from tests.support.homes import Turn, build_home, new_thread  # noqa: E402

MIB = 1 << 20
BASE_MIB = 48


def prompt(kind: str, size: int) -> str:
    """A prompt of about `size` UTF-8 bytes of the given kind."""
    if kind == "ascii":
        return "long prompt " + "abcdefghij" * (size // 10)
    unit = 'say "hi" \\ then\nnext ünïcödé line\t'  # escapes and 2-byte letters
    return unit * (size // len(unit.encode("utf-8")))


def make_home(base: Path, text: str) -> Path:
    """A home with one thread: a short first turn (already in history), then `text`."""
    thread = new_thread(0, turns=2)
    thread.turns = [Turn("short first turn"), Turn(text)]
    home = build_home(base, [thread])
    first = {"session_id": thread.thread_id, "ts": int(thread.start.timestamp()) + 10}
    line = json.dumps({**first, "text": "short first turn"}, separators=(",", ":"))
    (home / "history.jsonl").write_text(line + "\n")
    return home


def repair_peak(home: Path, scratch: Path) -> int:
    """Run `repair` on `home`; return its peak RSS in KiB. Raises on a non-zero exit."""
    scratch.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "daemon"), str(ROOT / "service")])
    for var in ("STATE", "CACHE", "LOG"):
        env[f"CODEX_INDEXD_{var}_DIR"] = str(scratch / var.lower())
    env["CODEX_INDEXD_CONFIG"] = str(scratch / "config.toml")
    cmd = [sys.executable, "-m", "codex_indexd", "repair", "--codex-home", str(home)]
    cmd += ["--no-backup"]
    _, _, rss_kib, code = measure.run_child(cmd, env, scratch / "repair.log")
    if code != 0:
        raise SystemExit(f"repair exited {code}: see {scratch / 'repair.log'}")
    return rss_kib


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=20.0, help="prompt size in MB (10^6 B)")
    parser.add_argument("--kind", choices=("ascii", "escapes", "both"), default="both")
    parser.add_argument("--reps", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    kinds = ("ascii", "escapes") if args.kind == "both" else (args.kind,)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="bench-long-turn-") as tmp:
        work = Path(tmp)
        short = make_home(work / "short", "a short second turn")
        floor = statistics.median(repair_peak(short, work / "s0") for _ in range(args.reps))
        print(f"short prompt: peak RSS {floor / 1024:.1f} MiB")
        for kind in kinds:
            text = prompt(kind, int(args.mb * 1_000_000))
            size = len(text.encode("utf-8"))
            home = make_home(work / kind, text)
            del text
            peaks = []
            for rep in range(args.reps):
                peaks.append(repair_peak(home, work / f"{kind}{rep}"))
                added = (home / "history.jsonl").stat().st_size
                assert added > size, "the long turn was not appended"
                (home / "history.jsonl").write_bytes(
                    (home / "history.jsonl").read_bytes().split(b"\n", 1)[0] + b"\n"
                )
            peak = statistics.median(peaks) / 1024
            target = BASE_MIB + size / MIB
            print(
                f"{kind}: prompt {size / MIB:.1f} MiB; peak RSS {peak:.1f} MiB "
                f"({peak - floor / 1024:+.1f} over the short prompt); target <= {target:.1f} MiB "
                f"{'ok' if peak <= target else 'OVER'}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
