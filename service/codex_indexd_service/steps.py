"""Install/uninstall as a list of steps, applied for real or printed by ``--dry-run``."""

from __future__ import annotations

import os
import shlex
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from codex_indexd_service.command_runner import Runner

__all__ = ("MakeDir", "RemoveFile", "Run", "Step", "WriteFile", "apply", "describe")


@dataclass(frozen=True)
class MakeDir:
    """Create a directory (and its parents) with *mode* if it is missing."""

    path: Path
    mode: int = 0o755


@dataclass(frozen=True)
class WriteFile:
    """Atomically replace *path* with *text* (temp file in the same directory + rename)."""

    path: Path
    text: str
    mode: int = 0o644


@dataclass(frozen=True)
class RemoveFile:
    """Remove *path* (a file or symlink) if it exists."""

    path: Path


@dataclass(frozen=True)
class Run:
    """Run a command; failures stop the plan unless *ignore_errors*.

    *retries* re-runs a failing command after *retry_first* (e.g. a ``launchctl bootout``
    that has not finished yet) and a one-second pause.
    """

    argv: tuple[str, ...]
    ignore_errors: bool = False
    retries: int = 0
    retry_first: tuple[str, ...] = ()


Step = MakeDir | WriteFile | RemoveFile | Run


def describe(step: Step) -> str:
    """One line saying what *step* does."""
    match step:
        case MakeDir(path, mode):
            return f"mkdir -p -m {mode:04o} {shlex.quote(str(path))}"
        case WriteFile(path, _, mode):
            return f"write {path} (mode {mode:04o})"
        case RemoveFile(path):
            return f"rm -f {shlex.quote(str(path))}"
        case Run(argv, ignore_errors, _, _):
            return shlex.join(argv) + ("  # errors ignored" if ignore_errors else "")


def _write_atomic(path: Path, text: str, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _run(step: Run, runner: Runner, err: TextIO, sleep: Callable[[float], None]) -> bool:
    for attempt in range(step.retries + 1):
        if attempt:
            if step.retry_first:
                runner.run(step.retry_first)
            sleep(1.0)
        result = runner.run(step.argv)
        if result.ok:
            return True
    if step.ignore_errors:
        return True
    detail = (result.stderr or result.stdout).strip()
    print(
        f"error: `{shlex.join(step.argv)}` exited {result.returncode}"
        + (f": {detail}" if detail else ""),
        file=err,
    )
    return False


def apply(
    steps: Iterable[Step],
    runner: Runner,
    out: TextIO,
    err: TextIO,
    *,
    dry_run: bool = False,
    sleep: Callable[[float], None] | None = None,
) -> int:
    """Apply *steps* in order, narrating on *out* and reporting errors on *err*.

    With *dry_run* nothing is touched or run: every step (and every file's full text) is
    printed instead.

    Returns 0, or 1 at the first failing step.
    """
    for step in steps:
        if dry_run:
            print(f"would run: {describe(step)}", file=out)
            if isinstance(step, WriteFile):
                print(f"--- {step.path}", file=out)
                out.write(step.text if step.text.endswith("\n") else step.text + "\n")
                print(f"--- end of {step.path}", file=out)
            continue
        print(f"+ {describe(step)}", file=out)
        try:
            match step:
                case MakeDir(path, mode):
                    path.mkdir(mode=mode, parents=True, exist_ok=True)
                case WriteFile(path, text, mode):
                    _write_atomic(path, text, mode)
                case RemoveFile(path):
                    path.unlink(missing_ok=True)
                case Run():
                    if not _run(step, runner, err, sleep or time.sleep):
                        return 1
        except OSError as exc:
            print(f"error: {exc}", file=err)
            return 1
    return 0
