"""Is a Codex home usable? One sentence saying what is wrong with it and what to do."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from codex_indexd.records import record

MISSING = "missing"
NOT_A_DIRECTORY = "not_a_directory"
BROKEN_LINK = "broken_link"
UNREADABLE = "unreadable"


@record(frozen=True, slots=True)
class HomeProblem:
    """Why a home cannot be used: a stable `code` (for JSON) and a `sentence` for people."""

    path: Path
    code: str
    sentence: str

    def as_json(self) -> dict[str, str]:
        return {"path": str(self.path), "code": self.code, "message": self.sentence}


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a directory"


def check_home(path: Path, origin: str = "") -> HomeProblem | None:
    """Return what makes `path` unusable as a Codex home, or None when it is a readable
    directory. `origin` says where the path came from (e.g. "--codex-home"), for the sentence."""
    where = f" (from {origin})" if origin else ""
    fix_path = (
        "Check the path given with --codex-home, $CODEX_HOME or `homes` in the config file "
        "(`codex-indexd config show` says which one is used)."
    )
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            target = os.readlink(path)
            return HomeProblem(
                path,
                BROKEN_LINK,
                f"Codex home {path}{where} is a symbolic link to {target}, which does not "
                f"exist. Fix or remove the link, or start Codex once so it creates {target}.",
            )
        return HomeProblem(
            path,
            MISSING,
            f"Codex home {path}{where} does not exist. Start Codex once to create it, or: "
            + fix_path[0].lower()
            + fix_path[1:],
        )
    except NotADirectoryError:
        return HomeProblem(
            path,
            NOT_A_DIRECTORY,
            f"Codex home {path}{where} cannot exist: a part of that path is a file, not a "
            "directory. " + fix_path,
        )
    except PermissionError:
        return HomeProblem(
            path,
            UNREADABLE,
            f"Codex home {path}{where} cannot be reached: permission denied on a directory "
            "above it. Run as the user who owns it, or fix the permissions of its parents.",
        )
    except OSError as exc:
        return HomeProblem(
            path,
            UNREADABLE,
            f"Codex home {path}{where} cannot be read: {exc.strerror or exc}. " + fix_path,
        )
    if not stat.S_ISDIR(st.st_mode):
        return HomeProblem(
            path,
            NOT_A_DIRECTORY,
            f"Codex home {path}{where} is {_kind(st.st_mode)}, not a directory. " + fix_path,
        )
    try:
        with os.scandir(path) as entries:
            next(entries, None)
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    except PermissionError:
        return HomeProblem(
            path,
            UNREADABLE,
            f"Codex home {path}{where} cannot be read or written (permission denied). "
            f"Run as the user who owns it, or give yourself access: chmod u+rwx {path}",
        )
    except OSError as exc:
        return HomeProblem(
            path,
            UNREADABLE,
            f"Codex home {path}{where} cannot be read: {exc.strerror or exc}.",
        )
    return None


def origin_of(source: str, config_file: Path | None) -> str:
    """Return where a `homes` value came from, in words: a Settings source (`cli`,
    `env:NAME`, `file:LINE`, `default`) as people say it."""
    if source == "cli":
        return "--codex-home"
    if source.startswith("env:"):
        return f"${source.removeprefix('env:')}"
    if source.startswith("file:"):
        return f"`homes` at {config_file}:{source.removeprefix('file:')}"
    return "the default, ~/.codex"
