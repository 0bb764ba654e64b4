"""Configuration: precedence CLI > env > file > defaults; bad keys and values name key and line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from codex_indexd import settings

ROOT = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_and_sources(tmp_path: Path) -> None:
    resolved = settings.load(path=tmp_path / "absent.toml", environ={})
    assert resolved["watch.debounce_ms"] == 300
    assert resolved.sources["watch.debounce_ms"] == "default"
    assert resolved.homes == [Path.home() / ".codex"]


def test_precedence_cli_env_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'homes = ["/from/file"]\n[watch]\ndebounce_ms = 100\npoll = true\n')
    env = {"CODEX_INDEXD_DEBOUNCE_MS": "200", "CODEX_HOME": "/from/env"}
    resolved = settings.load({"watch.debounce_ms": 50}, path=path, environ=env)
    assert (resolved["watch.debounce_ms"], resolved.sources["watch.debounce_ms"]) == (50, "cli")
    resolved = settings.load(path=path, environ=env)
    assert (resolved["watch.debounce_ms"], resolved.sources["watch.debounce_ms"]) == (
        200,
        "env:CODEX_INDEXD_DEBOUNCE_MS",
    )
    assert resolved.homes == [Path("/from/env")]
    resolved = settings.load(path=path, environ={})
    assert resolved.sources["watch.debounce_ms"] == "file:3"
    assert resolved["watch.poll"] is True and resolved.homes == [Path("/from/file")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[watch]\ndebounce = 5\n", "config.toml:2: unknown key 'watch.debounce'"),
        (
            "log_level = 'info'\n[policy]\nmax_threads = -1\n",
            "config.toml:3: bad value for 'policy.max_threads'",
        ),
        ("[watch]\npoll = 'sometimes'\n", "config.toml:2: bad value for 'watch.poll'"),
        ("[backups\nkeep_count = 1\n", "config.toml"),
    ],
)
def test_bad_key_or_value_names_key_and_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(settings.ConfigError, match=message.replace(".", r"\.").replace("'", "'")):
        settings.load(path=write(tmp_path, text), environ={})


def test_bad_config_exits_2_from_the_cli(tmp_path: Path) -> None:
    path = write(tmp_path, "[watch]\nnope = 1\n")
    done = subprocess.run(
        [sys.executable, "-m", "codex_indexd", "config", "show"],
        capture_output=True,
        text=True,
        env={"CODEX_INDEXD_CONFIG": str(path), "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2
    assert "config.toml:2: unknown key 'watch.nope'" in done.stderr


def test_config_show_prints_sources(tmp_path: Path) -> None:
    path = write(tmp_path, "[watch]\ndebounce_ms = 120\n")
    done = subprocess.run(
        [sys.executable, "-m", "codex_indexd", "config", "show"],
        capture_output=True,
        text=True,
        env={
            "CODEX_INDEXD_CONFIG": str(path),
            "PYTHONPATH": str(ROOT),
            "PATH": "/usr/bin:/bin",
            "CODEX_INDEXD_POLL": "1",
        },
    )
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if not line.startswith("#")}
    assert "120" in lines["watch.debounce_ms"] and "(file:2)" in lines["watch.debounce_ms"]
    assert "True" in lines["watch.poll"] and "(env:CODEX_INDEXD_POLL)" in lines["watch.poll"]
    assert "(default)" in lines["log_level"]
