"""The one seam to the operating system's commands; unit tests swap in a fake."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ("Result", "Runner", "SubprocessRunner")


@dataclass(frozen=True)
class Result:
    """Outcome of one command: exit code and captured text output."""

    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.returncode == 0


class Runner(Protocol):
    """Runs argument lists (never shell strings) and finds executables."""

    def run(self, argv: Sequence[str]) -> Result:
        """Run *argv* to completion, capturing its output."""
        ...

    def which(self, name: str) -> str | None:
        """Return the path of executable *name*, or None."""
        ...


class SubprocessRunner:
    """The real runner: :func:`subprocess.run` with captured text output."""

    def run(self, argv: Sequence[str]) -> Result:
        """Run *argv*; a missing executable gives exit code 127 like a shell."""
        try:
            done = subprocess.run(
                list(argv), capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
            )
        except OSError as exc:
            return Result(127, "", f"{argv[0]}: {exc.strerror or exc}")
        return Result(done.returncode, done.stdout, done.stderr)

    def which(self, name: str) -> str | None:
        """:func:`shutil.which`."""
        return shutil.which(name)
