"""launchd agent: install/uninstall plans and status (launchctl 2 verbs, macOS ≥ 10.10)."""

from __future__ import annotations

import re
from typing import TextIO

from codex_indexd_service.command_runner import Runner
from codex_indexd_service.context import Context
from codex_indexd_service.steps import MakeDir, RemoveFile, Run, Step, WriteFile

__all__ = ("install_steps", "parse_print", "status", "uninstall_steps")

_PRINT_FIELD = re.compile(r"^\s*(state|pid|last exit code|runs)\s*=\s*(.+?)\s*$", re.MULTILINE)


def _bootout(ctx: Context) -> tuple[str, ...]:
    return ("launchctl", "bootout", ctx.service_target)


def install_steps(ctx: Context, plist_text: str, *, has_plutil: bool) -> list[Step]:
    """Unload any old agent, write and lint the plist, load it and (re)start the daemon.

    ``bootstrap`` fails with EIO (5) while an old instance is still being booted out; it
    is retried after another ``bootout``.
    """
    steps: list[Step] = [
        MakeDir(ctx.launchd_log_dir, 0o700),
        MakeDir(ctx.agents_dir),
        Run(_bootout(ctx), ignore_errors=True),
        WriteFile(ctx.plist_path, plist_text, 0o644),
    ]
    if has_plutil:
        steps.append(Run(("plutil", "-lint", str(ctx.plist_path))))
    steps += [
        Run(
            ("launchctl", "bootstrap", ctx.domain, str(ctx.plist_path)),
            retries=2,
            retry_first=_bootout(ctx),
        ),
        Run(("launchctl", "kickstart", "-k", ctx.service_target)),
    ]
    return steps


def uninstall_steps(ctx: Context) -> list[Step]:
    """Unload the agent (if loaded) and remove its plist."""
    return [Run(_bootout(ctx), ignore_errors=True), RemoveFile(ctx.plist_path)]


def parse_print(text: str) -> dict[str, str]:
    """The few stable-looking fields of ``launchctl print`` (its format is not an API)."""
    fields: dict[str, str] = {}
    for key, value in _PRINT_FIELD.findall(text):
        fields.setdefault(key, value)
    return fields


def status(ctx: Context, runner: Runner, out: TextIO) -> int:
    """Print the agent's state; 0 when it is running, 3 otherwise."""
    installed = ctx.plist_path.exists()
    print(
        f"agent file: {ctx.plist_path} ({'installed' if installed else 'not installed'})", file=out
    )
    result = runner.run(("launchctl", "print", ctx.service_target))
    if not result.ok:
        print(f"state:      not loaded in {ctx.domain}", file=out)
        return 3
    fields = parse_print(result.stdout)
    print(f"state:      {fields.get('state', '?')}", file=out)
    for key in ("pid", "runs", "last exit code"):
        if key in fields:
            print(f"{key + ':':<11} {fields[key]}", file=out)
    print(f"crash logs: {ctx.launchd_log_dir}/launchd.err.log", file=out)
    return 0 if fields.get("state") == "running" else 3
