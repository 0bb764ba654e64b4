"""Where the service files go and which directories get pinned into them."""

from __future__ import annotations

import os
import pwd
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from codex_indexd_service import APP, LABEL, UNIT_NAME

__all__ = ("Context", "Manager", "default_manager", "resolve")

Manager = Literal["systemd", "launchd"]

# XDG base directories pinned into the unit/agent so that the daemon (started by a service
# manager that never reads shell rc files) and the CLI run from a shell resolve the same
# platformdirs paths. Defaults are what platformdirs uses when the variable is unset.
_XDG_DEFAULTS: dict[Manager, dict[str, str]] = {
    "systemd": {
        "XDG_CONFIG_HOME": ".config",
        "XDG_DATA_HOME": ".local/share",
        "XDG_STATE_HOME": ".local/state",
        "XDG_CACHE_HOME": ".cache",
    },
    "launchd": {
        "XDG_CONFIG_HOME": "Library/Application Support",
        "XDG_DATA_HOME": "Library/Application Support",
        "XDG_STATE_HOME": "Library/Application Support",
        "XDG_CACHE_HOME": "Library/Caches",
    },
}


def default_manager(platform: str | None = None) -> Manager | None:
    """Return the service manager of *platform* (default: this one), or None if unsupported."""
    platform = sys.platform if platform is None else platform
    if platform.startswith("linux"):
        return "systemd"
    if platform == "darwin":
        return "launchd"
    return None


@dataclass(frozen=True)
class Context:
    """Everything needed to render and install the service for one user."""

    manager: Manager
    python: Path
    codex_home: Path
    home: Path
    uid: int
    user: str
    xdg: Mapping[str, str] = field(default_factory=dict)
    path_env: str = "/usr/bin:/bin:/usr/sbin:/sbin"
    config_home: Path | None = None
    # True when the user named one home (--codex-home, or CODEX_HOME in the installing
    # shell): the service is pinned to it. Otherwise the daemon follows the config file's
    # `homes` (re-read on SIGHUP) and `codex_home` is only the first of them.
    baked_home: bool = True

    @property
    def argv(self) -> list[str]:
        """The daemon command line. ``-P`` keeps the working directory off ``sys.path``."""
        argv = [str(self.python), "-P", "-m", "codex_indexd", "run"]
        return [*argv, "--codex-home", str(self.codex_home)] if self.baked_home else argv

    @property
    def unit_dir(self) -> Path:
        """``$XDG_CONFIG_HOME/systemd/user`` (admin/user-owned units)."""
        base = self.config_home or self.home / ".config"
        return base / "systemd" / "user"

    @property
    def unit_path(self) -> Path:
        """The installed systemd user unit."""
        return self.unit_dir / UNIT_NAME

    @property
    def wants_link(self) -> Path:
        """The symlink ``systemctl --user enable`` creates."""
        return self.unit_dir / "default.target.wants" / UNIT_NAME

    @property
    def agents_dir(self) -> Path:
        """``~/Library/LaunchAgents``."""
        return self.home / "Library" / "LaunchAgents"

    @property
    def plist_path(self) -> Path:
        """The installed launchd agent, named after its label."""
        return self.agents_dir / f"{LABEL}.plist"

    @property
    def launchd_log_dir(self) -> Path:
        """platformdirs' ``user_log_dir`` on macOS (it has no XDG override there)."""
        return self.home / "Library" / "Logs" / APP

    @property
    def domain(self) -> str:
        """The launchd GUI domain of this user."""
        return f"gui/{self.uid}"

    @property
    def service_target(self) -> str:
        """The launchd service target ``gui/<uid>/<label>``."""
        return f"{self.domain}/{LABEL}"


def _user_name(env: Mapping[str, str], uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return env.get("USER") or env.get("LOGNAME") or str(uid)


def _expand_user(value: str, home: Path) -> str:
    """Expand a leading ``~`` against *home* (not against the process's own HOME)."""
    if value == "~" or value.startswith("~/"):
        return str(home) + value[1:]
    return value


def _absolute(value: str | None) -> Path | None:
    """XDG variables are ignored unless absolute (XDG Base Directory spec)."""
    if value and os.path.isabs(value):
        return Path(value)
    return None


def resolve(
    manager: Manager,
    *,
    codex_home: str | None = None,
    python: str | None = None,
    env: Mapping[str, str] | None = None,
    uid: int | None = None,
    configured_home: Path | None = None,
) -> Context:
    """Resolve a :class:`Context` from options and the environment (default ``os.environ``).

    A home is baked into the service only when *codex_home* is given or ``CODEX_HOME`` is
    set; else *configured_home* (the config file's first home) stands for the daemon's homes.
    """
    env = os.environ if env is None else env
    uid = os.getuid() if uid is None else uid
    home = Path(env.get("HOME") or Path.home())
    baked = bool(codex_home or env.get("CODEX_HOME"))
    raw_home = codex_home or env.get("CODEX_HOME") or str(configured_home or home / ".codex")
    xdg = {
        key: str(_absolute(env.get(key)) or home / default)
        for key, default in _XDG_DEFAULTS[manager].items()
    }
    return Context(
        manager=manager,
        python=Path(os.path.abspath(python or sys.executable)),
        codex_home=Path(os.path.abspath(_expand_user(raw_home, home))),
        home=home,
        uid=uid,
        user=_user_name(env, uid),
        xdg=xdg,
        path_env=env.get("PATH") or Context.path_env,
        config_home=_absolute(env.get("XDG_CONFIG_HOME")),
        baked_home=baked,
    )
