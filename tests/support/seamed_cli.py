"""Run `codex-indexd` with test seams set, for subprocess tests:

    python tests/support/seamed_cli.py SEAM=VALUE ... -- COMMAND ARGS...

Seams:
  scan-delay-ms=N     each rollout the scan of `repair` reaches takes N ms longer
  inotify-errno=NAME  native watching fails to start with errno NAME (ENOSPC or EMFILE)
  fail-plan-under=DIR every plan of a home whose rollouts lie under DIR raises RuntimeError
"""

from __future__ import annotations

import errno
import os
import sys
import time

# Run as a script, this file's folder comes first on sys.path: the product must not see it.
del sys.path[0]


def set_scan_delay(value: str) -> None:
    from codex_indexd.commands import progress

    delay = int(value) / 1000
    progress.before_each_file = lambda: time.sleep(delay)


def set_inotify_errno(value: str) -> None:
    from watchdog.observers.api import BaseObserver

    from codex_indexd.daemon import watching

    code = getattr(errno, value)
    native = watching.DEFAULT_FACTORY

    def failing(poll: bool, interval: float) -> BaseObserver:
        if not poll:
            raise OSError(code, os.strerror(code))
        return native(poll, interval)

    watching.DEFAULT_FACTORY = failing


def set_fail_plan_under(value: str) -> None:
    from typing import Any

    from codex_indexd.engine import reconcile
    from codex_indexd.index.plan import make_plan as plan

    def failing(threads: Any, rollouts: Any, *args: Any, **kwargs: Any) -> Any:
        if any(facts.path.startswith(value) for facts in rollouts.values()):
            raise RuntimeError("injected plan failure")
        return plan(threads, rollouts, *args, **kwargs)

    vars(reconcile)["make_plan"] = failing  # the name the reconcile path calls


SEAMS = {
    "scan-delay-ms": set_scan_delay,
    "inotify-errno": set_inotify_errno,
    "fail-plan-under": set_fail_plan_under,
}


def main(argv: list[str]) -> int:
    """Set the seams named before `--`, then run `codex-indexd` with the rest; its exit code."""
    split = argv.index("--")
    for item in argv[:split]:
        name, _, value = item.partition("=")
        SEAMS[name](value)
    from codex_indexd.cli import main as cli_main

    return cli_main(argv[split + 1 :])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
