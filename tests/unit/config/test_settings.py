"""Configuration: precedence CLI > env > file > defaults; bad keys and values name key and line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from codex_indexd.config import settings

ROOT = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_and_sources(tmp_path: Path) -> None:
    resolved = settings.load(path=tmp_path / "absent.toml", environ={})
    assert resolved.watch.debounce_ms == 300
    assert resolved.sources["watch.debounce_ms"] == "default"
    assert resolved.homes == [Path.home() / ".codex"]


def test_precedence_cli_env_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'homes = ["/from/file"]\n[watch]\ndebounce_ms = 100\npoll = true\n')
    env = {"CODEX_INDEXD_DEBOUNCE_MS": "200", "CODEX_HOME": "/from/env"}
    resolved = settings.load({"watch.debounce_ms": 50}, path=path, environ=env)
    assert (resolved.watch.debounce_ms, resolved.sources["watch.debounce_ms"]) == (50, "cli")
    resolved = settings.load(path=path, environ=env)
    assert (resolved.watch.debounce_ms, resolved.sources["watch.debounce_ms"]) == (
        200,
        "env:CODEX_INDEXD_DEBOUNCE_MS",
    )
    assert resolved.homes == [Path("/from/env")]
    resolved = settings.load(path=path, environ={})
    assert resolved.sources["watch.debounce_ms"] == "file:3"
    assert resolved.watch.poll is True and resolved.homes == [Path("/from/file")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[watch]\ndebounce = 5\n", "config.toml:2: unknown key 'watch.debounce'"),
        (
            "log_level = 'info'\n[policy]\nmax_threads = -1\n",
            "config.toml:3: policy.max_threads must be between 0 and",
        ),
        ("[watch]\npoll = 'sometimes'\n", "config.toml:2: watch.poll must be true or false"),
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
            "CODEX_INDEXD_POLL": "true",
        },
    )
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if not line.startswith("#")}
    assert "120" in lines["watch.debounce_ms"] and "(file:2)" in lines["watch.debounce_ms"]
    assert " true " in lines["watch.poll"] and "(env:CODEX_INDEXD_POLL)" in lines["watch.poll"]
    assert "(default)" in lines["log_level"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[watch]\ndebounce_ms = 'fast'\n",
            "config.toml:2: watch.debounce_ms must be a whole number of milliseconds, got 'fast'",
        ),
        ("[watch]\ndebounce_ms = 300.7\n", "config.toml:2: watch.debounce_ms must be a whole"),
        ("[watch]\npoll = 'yes'\n", "config.toml:2: watch.poll must be true or false"),
        ("[watch]\npoll = 1\n", "config.toml:2: watch.poll must be true or false"),
        (
            "[watch]\npoll_interval_s = 1e300\n",
            "config.toml:2: watch.poll_interval_s must be between 0.1 and 3600 seconds",
        ),
        ("\n[watch]\nreconcile_interval_s = nan\n", "config.toml:3: watch.reconcile_interval_s"),
        ("[watch]\nreconcile_interval_s = inf\n", "config.toml:2: watch.reconcile_interval_s"),
        ("[watch]\npoll_interval_s = -1.0\n", "config.toml:2: watch.poll_interval_s must be"),
        ("[watch]\nmax_delay_ms = true\n", "config.toml:2: watch.max_delay_ms must be a whole"),
        ("[backups]\nkeep_count = 10000000000\n", "config.toml:2: backups.keep_count must be"),
        (
            "[watch]\ndebounce_msec = 5\n",
            "unknown key 'watch.debounce_msec' (did you mean 'watch.debounce_ms'?)",
        ),
        ("log_level = 'verbose'\n", "log_level must be one of debug, info, warning, error"),
        ("[codex_api]\nbinary = 5\n", "config.toml:2: codex_api.binary must be a string"),
    ],
)
def test_values_are_typed_strictly_and_range_checked(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(settings.ConfigError) as caught:
        settings.load(path=write(tmp_path, text), environ={})
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("CODEX_INDEXD_POLL", "yes", "env:CODEX_INDEXD_POLL: watch.poll must be true or false"),
        ("CODEX_INDEXD_DEBOUNCE_MS", "fast", "watch.debounce_ms must be a whole number"),
        ("CODEX_INDEXD_RECONCILE_INTERVAL_S", "nan", "watch.reconcile_interval_s must be"),
    ],
)
def test_environment_values_are_checked_alike(env: str, value: str, message: str) -> None:
    with pytest.raises(settings.ConfigError, match=message):
        settings.load(path=Path("/nonexistent.toml"), environ={env: value})


def test_good_values_keep_their_types(tmp_path: Path) -> None:
    path = write(tmp_path, "[watch]\npoll = true\npoll_interval_s = 5\ndebounce_ms = 10\n")
    resolved = settings.load(path=path, environ={"CODEX_INDEXD_MAX_THREADS": "7"})
    assert resolved.watch.poll is True
    assert resolved.watch.poll_interval_s == 5.0
    assert resolved.policy.max_threads == 7


def test_config_show_json_is_typed_and_lists_variables(tmp_path: Path) -> None:
    path = write(tmp_path, "[watch]\ndebounce_ms = 120\n")
    done = subprocess.run(
        [sys.executable, "-m", "codex_indexd", "config", "show", "--json"],
        capture_output=True,
        text=True,
        env={"CODEX_INDEXD_CONFIG": str(path), "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["watch.debounce_ms"] == {
        "value": 120,
        "source": "file:2",
        "env": "CODEX_INDEXD_DEBOUNCE_MS",
        "help": "quiet period before a flush",
    }
    assert data["watch.poll"]["value"] is False
    assert data["policy.history_sources"]["value"] == "all"
    assert "CODEX_INDEXD_LOG_DIR" in data["_files"]["env"]


def test_config_without_an_action_shows_the_configuration_and_suggests(tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "codex_indexd", "config"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "watch.debounce_ms" in done.stdout and "$CODEX_INDEXD_DEBOUNCE_MS" in done.stdout
    done = subprocess.run(
        [sys.executable, "-m", "codex_indexd", "config", "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert json.loads(done.stdout)["watch.poll"]["value"] is False
    done = subprocess.run(
        [sys.executable, "-m", "codex_indexd", "config", "shwo"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 2 and "did you mean 'show'?" in done.stderr


def test_settings_are_typed_and_frozen(tmp_path: Path) -> None:

    resolved = settings.load({"homes": [str(tmp_path)]}, path=tmp_path / "none.toml", environ={})
    assert resolved.watch.debounce_ms == 300 and isinstance(resolved.watch.poll, bool)
    assert resolved.policy.history_sources is None and resolved.codex_api.mode == "auto"
    with pytest.raises(AttributeError):
        resolved.log_level = "debug"  # type: ignore[misc]
    moved = resolved.with_homes([tmp_path / "other"])
    assert moved.homes == [tmp_path / "other"] and resolved.homes == [tmp_path]
    assert moved.sources == resolved.sources
    assert resolved.value("backups.keep_mb") == 256
    with pytest.raises(KeyError):
        resolved.value("watch.nothing")


def test_every_variable_the_code_reads_is_documented_and_shown(tmp_path: Path) -> None:
    """Each CODEX_INDEXD_* name in the product code is in the README and in `config show`."""
    import re

    names: set[str] = set()
    for folder in ("daemon", "service"):
        for path in (ROOT / folder).rglob("*.py"):
            names |= set(re.findall(r"CODEX_INDEXD_[A-Z_]*[A-Z]", path.read_text("utf-8")))
    assert "CODEX_INDEXD_DEBOUNCE_MS" in names and "CODEX_INDEXD_CRASH_AT" in names
    readme = (ROOT / "README.md").read_text("utf-8")
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    shown = subprocess.run(
        [sys.executable, "-m", "codex_indexd", "config", "show"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert sorted(n for n in names if n not in readme) == []
    assert sorted(n for n in names if n not in shown) == []


def test_file_values_the_environment_replaces_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'log_level = "debug"\nhomes = ["{tmp_path}"]\n')
    resolved = settings.load(path=config, environ={"CODEX_HOME": str(tmp_path / "other")})
    assert dict(resolved.shadowed) == {"homes": "file:2"}
    assert resolved.sources["homes"] == "env:CODEX_HOME"
    assert dict(settings.load(path=config, environ={}).shadowed) == {}
    from codex_indexd.commands import config_cmd

    monkeypatch.setenv("CODEX_INDEXD_CONFIG", str(config))
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "other"))
    assert config_cmd.main(["show"]) == 0
    assert f"# note: homes at {config}:2 is not used: env:CODEX_HOME sets it" in (
        capsys.readouterr().out
    )
