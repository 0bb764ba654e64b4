"""Render the systemd unit and the launchd plist from the packaged templates.

The canonical templates live in ``service/codex_indexd_service/templates/`` and ship as
package data, so an installed wheel renders without the source tree.
``systemd/codex-indexd.service`` and ``launchd/com.github.codex-indexd.plist`` at the top of
the repository are byte-identical copies for people who install by hand; a unit test keeps
them in step.
"""

from __future__ import annotations

import re
from importlib import resources
from string import Template
from xml.sax.saxutils import escape

from codex_indexd_service import LABEL, UNIT_NAME
from codex_indexd_service.context import Context

__all__ = (
    "PLIST_TEMPLATE",
    "UNIT_TEMPLATE",
    "render",
    "render_plist",
    "render_unit",
    "systemd_env",
    "systemd_word",
    "template_text",
)

UNIT_TEMPLATE = UNIT_NAME
PLIST_TEMPLATE = f"{LABEL}.plist"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


def template_text(name: str) -> str:
    """Return the packaged template *name* (from ``codex_indexd_service/templates``)."""
    return (resources.files("codex_indexd_service") / "templates" / name).read_text("utf-8")


def _reject_control(value: str) -> None:
    if _CONTROL.search(value):
        raise ValueError(f"control characters cannot be written to a service file: {value!r}")


def _escape_quoted(value: str) -> str:
    """Escape for a double-quoted systemd string; ``%`` is a specifier everywhere."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")


def systemd_word(value: str) -> str:
    """Quote one ``ExecStart=`` word: escape specifiers and ``$``, quote when needed."""
    _reject_control(value)
    escaped = value.replace("%", "%%").replace("$", "$$")
    if value and _PLAIN.fullmatch(value):
        return escaped
    return '"' + _escape_quoted(value).replace("$", "$$") + '"'


def systemd_env(key: str, value: str) -> str:
    """Quote one ``Environment=`` assignment (no ``$`` expansion happens there)."""
    _reject_control(value)
    return '"' + _escape_quoted(f"{key}={value}") + '"'


def render_unit(ctx: Context) -> str:
    """Render the systemd user unit for *ctx*."""
    mapping = {
        "exec_start": " ".join(systemd_word(arg) for arg in ctx.argv),
        "codex_home_line": "Environment=" + systemd_env("CODEX_HOME", str(ctx.codex_home))
        if ctx.baked_home
        else "# (no home baked in: the daemon watches the config file's homes)",
    }
    for key, value in ctx.xdg.items():
        mapping[f"env_{key.lower()}"] = systemd_env(key, value)
    return Template(template_text(UNIT_TEMPLATE)).substitute(mapping)


def _xml(value: str) -> str:
    _reject_control(value)
    return escape(value)


def render_plist(ctx: Context) -> str:
    """Render the launchd agent plist for *ctx*."""
    log_dir = ctx.launchd_log_dir
    mapping = {
        "label": LABEL,
        "python": str(ctx.python),
        "codex_home": str(ctx.codex_home),
        "stdout_path": str(log_dir / "launchd.out.log"),
        "stderr_path": str(log_dir / "launchd.err.log"),
        "path": ctx.path_env,
    }
    mapping.update({key.lower(): value for key, value in ctx.xdg.items()})
    values = {key: _xml(value) for key, value in mapping.items()}
    home = values["codex_home"]
    values["codex_home_args"] = (
        f"\n\t\t<string>--codex-home</string>\n\t\t<string>{home}</string>"
        if ctx.baked_home
        else ""
    )
    values["codex_home_env"] = (
        f"\n\t\t<key>CODEX_HOME</key>\n\t\t<string>{home}</string>" if ctx.baked_home else ""
    )
    return Template(template_text(PLIST_TEMPLATE)).substitute(values)


def render(ctx: Context) -> str:
    """Render the file for *ctx*'s service manager."""
    return render_unit(ctx) if ctx.manager == "systemd" else render_plist(ctx)
