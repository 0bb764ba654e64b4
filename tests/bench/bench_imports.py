"""What `repair` pays for imports: start-up time over the bare interpreter, and which modules cost it.

```
python tests/bench/bench_imports.py [--runs N] [--top K] [--module M] [--python PY] [--json]
```

Three commands, each run `--runs` times (at least 5) in turn, medians printed:

- `python -c pass` — the bare interpreter;
- `python -c "import M"` — the modules `repair` needs (M = `codex_indexd.commands.repair_home`,
  which imports nearly all of them; `commands.repair`, the command's start, imports few);
- `codex-indexd repair --dry-run` on a tiny home (two rollouts, a state DB) — the whole command.

Wall times and peak RSS come from runs without `-X importtime` (it slows imports down); the same
commands are then run with `-X importtime` to attribute the time: per module its self time
(median over the runs), modules the bare interpreter imports left out. The tables show the top
`--top` modules of ours and of the standard library and dependencies, each with the module of
ours that first imported it, for the import alone and for what the full run imports on top.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run as a script: make `tests.*` importable

from tests.bench.bench_measure import run_child  # noqa: E402
from tests.support.homes import build_home, index_line, new_thread  # noqa: E402

OURS = ("codex_indexd", "codex_indexd_service")
GOAL_MS = 15.0
"""The goal for the imports of `repair`, in ms over the bare interpreter."""
MIN_RUNS = 5


@dataclass(frozen=True, slots=True)
class ImportLine:
    """One line of `-X importtime` output: a module, its self and cumulative µs, its depth."""

    module: str
    self_us: int
    cumulative_us: int
    depth: int


@dataclass(slots=True)
class Samples:
    """The measurements of one command over all runs."""

    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    self_us: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    cumulative_us: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    importer: dict[str, str] = field(default_factory=dict)


def parse_importtime(text: str) -> list[ImportLine]:
    """Return the `import time:` lines of `text` in the order Python printed them (a module
    after everything it imported); other lines are ignored."""
    out: list[ImportLine] = []
    for raw in text.splitlines():
        if not raw.startswith("import time:"):
            continue
        parts = raw[len("import time:") :].split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue  # the header line
        name = parts[2].rstrip()
        stripped = name.lstrip(" ")
        depth = (len(name) - len(stripped) - 1) // 2
        out.append(ImportLine(stripped, int(parts[0]), int(parts[1]), depth))
    return out


def is_ours(module: str) -> bool:
    """True for a module of `codex_indexd` or `codex_indexd_service`."""
    return module.split(".", 1)[0] in OURS


def first_importers(lines: Sequence[ImportLine]) -> dict[str, str]:
    """Return, per module, the nearest module of ours above it in the import tree ("" when
    none: imported by the interpreter's start-up or by `-c` code directly)."""
    # Lines come children first: a line's parent is the next line that is one level up.
    parent_of: dict[int, int] = {}
    pending: dict[int, list[int]] = defaultdict(list)  # depth -> indexes waiting for a parent
    for index, line in enumerate(lines):
        for child in pending.pop(line.depth + 1, []):
            parent_of[child] = index
        pending[line.depth].append(index)
    out: dict[str, str] = {}
    for index, line in enumerate(lines):
        up = parent_of.get(index)
        while up is not None and not is_ours(lines[up].module):
            up = parent_of.get(up)
        out[line.module] = lines[up].module if up is not None else ""
    return out


def tiny_home(root: Path) -> Path:
    """Write a Codex home with one legacy and one paginated thread, a state DB, and what a
    home in use has besides (each makes repair import a module it would not need without):
    a `config.toml`, a `session_index.jsonl` line and a `history.jsonl` line per thread."""
    threads = [new_thread(0), new_thread(1, paginated=True)]
    home = build_home(root / "home", threads)
    (home / "config.toml").write_text('model = "gpt-5"\n\n[history]\npersistence = "save-all"\n')
    stamp = "2026-01-01T00:00:00Z"
    index = "".join(index_line(t.thread_id, f"thread {t.thread_id[:8]}", stamp) for t in threads)
    (home / "session_index.jsonl").write_text(index)
    history = "".join(
        json.dumps({"session_id": t.thread_id, "ts": 1767225600, "text": t.turns[0].text}) + "\n"
        for t in threads
    )
    (home / "history.jsonl").write_text(history)
    return home


def isolated_env(workdir: Path, *, bytecode_cache: bool = True) -> dict[str, str]:
    """Our environment without any `CODEX_*` setting, with our own dirs under `workdir`.

    With `bytecode_cache`, compiled modules are cached under `workdir` (`PYTHONPYCACHEPREFIX`,
    so the source tree is not written) and the warm-up run fills the cache: what an installed
    package costs. Without it `PYTHONDONTWRITEBYTECODE=1` is set and no prefix: the `__pycache__`
    files that exist are used (the stdlib's, the installed dependencies'), and modules without
    one (ours, in an editable install that never wrote any) are compiled on every run.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODEX_", "PYTHONIMPORT"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPYCACHEPREFIX", None)
    if bytecode_cache:
        env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        env[name] = str(workdir / name.lower())
    return env


def cli_command(python: str) -> list[str]:
    """The `codex-indexd` entry point next to `python`, else `python -m codex_indexd`."""
    script = Path(python).parent / "codex-indexd"
    return [str(script)] if script.is_file() else [python, "-m", "codex_indexd"]


def commands(python: str, module: str, home: Path) -> dict[str, list[str]]:
    """The three commands measured, by label."""
    return {
        "bare": [python, "-c", "pass"],
        "import": [python, "-c", f"import {module}"],
        "repair": [*cli_command(python), "repair", "--dry-run", "--codex-home", str(home)],
    }


def with_importtime(python: str, cmd: list[str]) -> list[str]:
    """`cmd` run by `python -X importtime` (a script such as the entry point as its argument)."""
    rest = cmd[1:] if cmd[0] == python else cmd
    return [python, "-X", "importtime", *rest]


def measure(
    cmds: dict[str, list[str]], python: str, env: dict[str, str], runs: int, log: Path
) -> dict[str, Samples]:
    """Run every command once to warm up, then `runs` times, interleaved, plain and with
    `-X importtime`. Raises SystemExit when a command fails."""
    for label, cmd in cmds.items():
        for argv in (cmd, with_importtime(python, cmd)):
            if run_child(argv, env, log)[3] != 0:
                raise SystemExit(f"{label}: {log.read_text(errors='replace')[-2000:]}")
    samples = {label: Samples() for label in cmds}
    for _ in range(runs):
        for label, cmd in cmds.items():
            wall, cpu, rss, code = run_child(cmd, env, log)
            if code != 0:
                raise SystemExit(f"{label}: exit {code}: {log.read_text()[-2000:]}")
            samples[label].wall_s.append(wall)
            samples[label].cpu_s.append(cpu)
            samples[label].rss_kib.append(rss)
            _, _, _, code = run_child(with_importtime(python, cmd), env, log)
            if code != 0:
                raise SystemExit(f"{label} (importtime): exit {code}")
            lines = parse_importtime(log.read_text(errors="replace"))
            for line in lines:
                samples[label].self_us[line.module].append(line.self_us)
                samples[label].cumulative_us[line.module].append(line.cumulative_us)
            samples[label].importer.update(first_importers(lines))
    return samples


def count_instructions(
    cmds: dict[str, list[str]], env: dict[str, str], log: Path
) -> dict[str, int] | None:
    """Return the instructions each command executes (valgrind's callgrind counts them, the
    same on a busy machine as on an idle one), or None when valgrind is not installed."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    counts: dict[str, int] = {}
    for label, cmd in cmds.items():
        argv = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd]
        if run_child(argv, env, log)[3] != 0:
            raise SystemExit(f"{label} under valgrind: {log.read_text(errors='replace')[-2000:]}")
        found = re.search(r"Collected : (\d+)", log.read_text(errors="replace"))
        if found is None:
            raise SystemExit(f"{label}: valgrind printed no instruction count")
        counts[label] = int(found.group(1))
    return counts


def instructions_summary(counts: dict[str, int], bare_cpu_ms: float) -> dict[str, object]:
    """Millions of instructions per command and over bare, and the time they are worth at
    the bare interpreter's measured rate (instructions per CPU ms)."""
    per_ms = counts["bare"] / bare_cpu_ms if bare_cpu_ms > 0 else 0.0
    over = {label: n - counts["bare"] for label, n in counts.items() if label != "bare"}
    return {
        "millions": {label: round(n / 1e6, 1) for label, n in counts.items()},
        "over_bare_millions": {label: round(n / 1e6, 1) for label, n in over.items()},
        "over_bare_ms_at_bare_rate": {
            label: round(n / per_ms, 1) if per_ms else None for label, n in over.items()
        },
    }


def median_self_ms(samples: Samples, exclude: Iterable[str] = ()) -> dict[str, float]:
    """Median self time per module in ms, leaving out `exclude`."""
    skip = set(exclude)
    return {
        module: statistics.median(values) / 1000
        for module, values in samples.self_us.items()
        if module not in skip
    }


def top(costs: dict[str, float], ours: bool, k: int) -> list[tuple[str, float]]:
    """The `k` costliest modules of ours (or of everything else), most expensive first."""
    chosen = [(m, ms) for m, ms in costs.items() if is_ours(m) == ours]
    return sorted(chosen, key=lambda pair: (-pair[1], pair[0]))[:k]


def summary(samples: dict[str, Samples], k: int) -> dict[str, object]:
    """Everything the report prints, as plain data."""
    bare_modules = set(samples["bare"].self_us)
    walls = {label: statistics.median(s.wall_s) * 1000 for label, s in samples.items()}
    cpus = {label: statistics.median(s.cpu_s) * 1000 for label, s in samples.items()}
    rss = {label: statistics.median(s.rss_kib) / 1024 for label, s in samples.items()}
    imported = median_self_ms(samples["import"], bare_modules)
    full = median_self_ms(samples["repair"], bare_modules)
    at_run_time = {m: ms for m, ms in full.items() if m not in imported}
    importer = {**samples["repair"].importer, **samples["import"].importer}
    cumulative = {**samples["repair"].cumulative_us, **samples["import"].cumulative_us}

    def rows(costs: dict[str, float], ours: bool) -> list[dict[str, object]]:
        return [
            {
                "module": m,
                "self_ms": round(ms, 2),
                "cumulative_ms": round(statistics.median(cumulative[m]) / 1000, 2),
                "first_imported_by": importer.get(m, ""),
            }
            for m, ms in top(costs, ours, k)
        ]

    return {
        "runs": len(samples["bare"].wall_s),
        "wall_ms": {label: round(ms, 1) for label, ms in walls.items()},
        "over_bare_ms": {
            label: round(ms - walls["bare"], 1) for label, ms in walls.items() if label != "bare"
        },
        "cpu_ms": {label: round(ms, 1) for label, ms in cpus.items()},
        "cpu_over_bare_ms": {
            label: round(ms - cpus["bare"], 1) for label, ms in cpus.items() if label != "bare"
        },
        "peak_rss_mib": {label: round(mib, 1) for label, mib in rss.items()},
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "importtime_ms": {
            "import": round(sum(imported.values()), 1),
            "import_ours": round(sum(ms for m, ms in imported.items() if is_ours(m)), 1),
            "repair": round(sum(full.values()), 1),
            "repair_at_run_time": round(sum(at_run_time.values()), 1),
        },
        "modules": {
            "import": len(imported),
            "import_ours": sum(1 for m in imported if is_ours(m)),
            "repair": len(full),
        },
        "goal_ms": GOAL_MS,
        "top_import_ours": rows(imported, True),
        "top_import_others": rows(imported, False),
        "top_run_time_ours": rows(at_run_time, True),
        "top_run_time_others": rows(at_run_time, False),
    }


def print_table(title: str, rows: object) -> None:
    assert isinstance(rows, list)
    print(f"\n{title}")
    if not rows:
        print("  (none)")
        return
    width = max(len(str(r["module"])) for r in rows)
    print(f"  {'module':<{width}}  {'self':>8}  {'with its imports':>16}  first imported by")
    for r in rows:
        by = r["first_imported_by"] or "a function at run time (or the -c line)"
        print(
            f"  {r['module']:<{width}}  {r['self_ms']:5.2f} ms  {r['cumulative_ms']:13.2f} ms  {by}"
        )


def print_report(data: dict[str, object], module: str) -> None:
    walls, over, rss = data["wall_ms"], data["over_bare_ms"], data["peak_rss_mib"]
    cpus, cpu_over = data["cpu_ms"], data["cpu_over_bare_ms"]
    times, counts = data["importtime_ms"], data["modules"]
    assert isinstance(walls, dict) and isinstance(over, dict) and isinstance(rss, dict)
    assert isinstance(cpus, dict) and isinstance(cpu_over, dict)
    assert isinstance(times, dict) and isinstance(counts, dict)
    cache = "cached bytecode" if data["bytecode_cache"] else "no bytecode cache"
    print(f"import-time benchmark, medians of {data['runs']} runs, {cache}")
    print(f"load average at the end: {data['load_average']} (CPU time suffers less from load)")
    print(
        f"{'command':<34} {'wall':>9} {'over bare':>10} {'CPU':>9} {'over bare':>10} {'peak RSS':>10}"
    )
    labels = {
        "bare": "python -c pass",
        "import": f"import {module}",
        "repair": "codex-indexd repair --dry-run",
    }
    for label, text in labels.items():
        wall_extra = f"{over[label]:7.1f} ms" if label in over else f"{'-':>10}"
        cpu_extra = f"{cpu_over[label]:7.1f} ms" if label in cpu_over else f"{'-':>10}"
        print(
            f"{text:<34} {walls[label]:6.1f} ms {wall_extra} {cpus[label]:6.1f} ms {cpu_extra}"
            f" {rss[label]:6.1f} MiB"
        )
    instructions = data.get("instructions")
    if isinstance(instructions, dict):
        millions, extra = instructions["millions"], instructions["over_bare_millions"]
        worth = instructions["over_bare_ms_at_bare_rate"]
        print("instructions (callgrind, independent of load):")
        for label, text in labels.items():
            more = (
                f"  {extra[label]:7.1f} M over bare, worth {worth[label]} ms"
                if label in extra
                else ""
            )
            print(f"  {text:<32} {millions[label]:8.1f} M{more}")
    verdict = "✓" if min(over["import"], cpu_over["import"]) <= GOAL_MS else "✗"
    print(f"goal: imports of repair ≤ {GOAL_MS:g} ms over the bare interpreter: {verdict}")
    print(
        f"-X importtime (self times, modules the bare interpreter imports left out): import "
        f"{times['import']} ms in {counts['import']} modules ({times['import_ours']} ms in "
        f"{counts['import_ours']} of ours); the full repair {times['repair']} ms in "
        f"{counts['repair']} modules, {times['repair_at_run_time']} ms of them imported at run time"
    )
    print_table(f"top modules of ours, import {module}", data["top_import_ours"])
    print_table("top stdlib/dependency modules, same import", data["top_import_others"])
    print_table("top modules of ours imported only while repair runs", data["top_run_time_ours"])
    print_table(
        "top stdlib/dependency modules imported only while repair runs", data["top_run_time_others"]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help=f"runs per command (≥ {MIN_RUNS})")
    parser.add_argument("--top", type=int, default=15, help="modules per table")
    parser.add_argument("--module", default="codex_indexd.commands.repair_home")
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter that can import codex_indexd"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count each command's instructions under valgrind (load-independent)",
    )
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="PYTHONDONTWRITEBYTECODE=1: modules without a __pycache__ entry compile every run",
    )
    args = parser.parse_args(argv)
    if args.runs < MIN_RUNS:
        parser.error(f"--runs must be at least {MIN_RUNS}")
    workdir = Path(tempfile.mkdtemp(prefix="bench-imports-"))
    try:
        home = tiny_home(workdir)
        env = isolated_env(workdir, bytecode_cache=not args.no_bytecode_cache)
        cmds = commands(args.python, args.module, home)
        samples = measure(cmds, args.python, env, args.runs, workdir / "log")
        data = summary(samples, args.top)
        data["bytecode_cache"] = not args.no_bytecode_cache
        if args.instructions:
            counts = count_instructions(cmds, env, workdir / "log")
            cpu = data["cpu_ms"]
            assert isinstance(cpu, dict)
            data["instructions"] = counts and instructions_summary(counts, float(cpu["bare"]))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(data, indent=1))
    else:
        print_report(data, args.module)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
