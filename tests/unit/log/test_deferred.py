"""The daemon imports structlog without asyncio and hashes without OpenSSL; whatever asks for
asyncio later still gets all of it. Each check runs in a fresh interpreter (pytest's own may
have imported asyncio already)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.homes import build_home, new_thread

REPO = Path(__file__).resolve().parents[3]
NEVER_FOR_THE_DAEMON = ("asyncio", "ssl", "_ssl", "_hashlib", "concurrent")
"""Modules a daemon that runs to its first READY never needs: asyncio (with ssl and
concurrent.futures) only for structlog's async methods, `_hashlib` (OpenSSL) only for digests
the interpreter computes itself."""


def run_python(code: str, tmp_path: Path) -> str:
    """Run `code` in a fresh interpreter with our dirs under `tmp_path`; return its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEX_")}
    base = tmp_path / "ours"
    env |= {
        "CODEX_INDEXD_STATE_DIR": str(base / "state"),
        "CODEX_INDEXD_CACHE_DIR": str(base / "cache"),
        "CODEX_INDEXD_LOG_DIR": str(base / "log"),
        "CODEX_INDEXD_CONFIG": str(base / "config.toml"),
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.strip().splitlines()[-1]


def test_a_daemon_run_loads_neither_asyncio_nor_openssl(tmp_path: Path) -> None:
    home = build_home(tmp_path / "home", [new_thread(0), new_thread(1, paginated=True)])
    code = (
        "from codex_indexd.cli import main\n"
        f"assert main(['run', '--once', '--codex-home', {str(home)!r}]) == 0\n"
        "import json, sys\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    modules = set(json.loads(run_python(code, tmp_path)))
    assert {"structlog", "structlog.stdlib", "codex_indexd.daemon.loop"} <= modules
    assert not [m for m in modules if m.split(".")[0] in NEVER_FOR_THE_DAEMON]
    assert (tmp_path / "ours" / "log").is_dir()  # it logged through structlog's handlers


def test_structlog_async_methods_get_the_real_asyncio(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from codex_indexd.log import setup\n"
        "assert 'asyncio' not in sys.modules\n"
        "import structlog\n"
        "setup.configure(log_file=False, stderr=False)\n"
        "import asyncio\n"
        "assert type(asyncio).__name__ == 'module'\n"  # the real one, not the stand-in
        "asyncio.run(structlog.stdlib.get_logger('t').ainfo('event'))\n"
        "assert structlog.stdlib.asyncio.get_running_loop is asyncio.get_running_loop\n"
        "print('ok')"
    )
    assert run_python(code, tmp_path) == "ok"


def test_the_stand_in_loads_the_module_on_first_use(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from codex_indexd.log.deferred import asyncio_deferred\n"
        "with asyncio_deferred():\n"
        "    import asyncio as early\n"
        "assert 'asyncio' not in sys.modules\n"  # the stand-in left with the block
        "sleep = early.sleep\n"  # imports the real module
        "import asyncio\n"
        "assert sleep is asyncio.sleep and early is not asyncio\n"
        "with asyncio_deferred():\n"
        "    import asyncio as later\n"
        "assert later is asyncio\n"  # nothing deferred once asyncio is imported
        "print('ok')"
    )
    assert run_python(code, tmp_path) == "ok"
