"""Rendering the systemd unit and the launchd plist."""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codex_indexd_service import LABEL, UNIT_NAME
from codex_indexd_service.context import Context, Manager, resolve
from codex_indexd_service.render import (
    PLIST_TEMPLATE,
    UNIT_TEMPLATE,
    render_plist,
    render_unit,
    systemd_env,
    systemd_word,
    template_text,
)

REPO = Path(__file__).resolve().parents[3]
WEIRD = '/tmp/codex home/100%$HOME "q" \\ & <x>'


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file as ordered (key, value) lists; duplicate keys are kept."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        else:
            key, _, value = line.partition("=")
            current.append((key, value))
    return sections


def unquote_words(text: str) -> list[str]:
    """systemd's ExecStart= word splitting: quotes, C escapes, %% and $$ (enough for tests)."""
    words, word, quoted, i, started = [], "", False, 0, False
    while i < len(text):
        char = text[i]
        if char == "\\":
            word, i, started = word + text[i + 1], i + 2, True
            continue
        if char in "%$" and text[i + 1 : i + 2] == char:
            word, i, started = word + char, i + 2, True
            continue
        if char == '"':
            quoted, i, started = not quoted, i + 1, True
            continue
        if char == " " and not quoted:
            if started:
                words.append(word)
            word, started = "", False
        else:
            word, started = word + char, True
        i += 1
    if started:
        words.append(word)
    return words


def ctx_for(home: Path, manager: Manager = "systemd", codex_home: str | None = None) -> Context:
    env = {"HOME": str(home), "PATH": "/usr/bin"}
    return resolve(manager, codex_home=codex_home, env=env, uid=501)


def test_unit_has_the_required_keys(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path)
    unit = parse_unit(render_unit(ctx))
    service = dict(unit["Service"])
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "75 2"
    for key in ("RestartSec", "WatchdogSec", "TimeoutStopSec", "TimeoutStartSec"):
        assert re.fullmatch(r"\d+s?", service[key]), key
    assert service["NoNewPrivileges"] == "yes"
    assert service["StandardError"] == "journal"
    assert "PrivateTmp" not in service and "ProtectSystem" not in service
    assert dict(unit["Install"]) == {"WantedBy": "default.target"}
    envs = [value for key, value in unit["Service"] if key == "Environment"]
    # no home named: nothing baked in, the daemon follows the config file's homes
    assert not any("CODEX_HOME" in e for e in envs) and "--codex-home" not in ctx.argv
    named = ctx_for(tmp_path, codex_home="/srv/codex")
    named_unit = parse_unit(render_unit(named))
    assert '"CODEX_HOME=/srv/codex"' in [v for k, v in named_unit["Service"] if k == "Environment"]
    assert named.argv[-2:] == ["--codex-home", "/srv/codex"]
    assert f'"XDG_STATE_HOME={tmp_path}/.local/state"' in envs
    assert unquote_words(service["ExecStart"]) == ctx.argv
    assert ctx.argv[:4] == [sys.executable, "-P", "-m", "codex_indexd"]
    assert "${" not in render_unit(ctx)


def test_every_unit_key_group_is_commented() -> None:
    lines = template_text(UNIT_TEMPLATE).splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^[A-Za-z]+=", line) and not re.match(r"^[A-Za-z]+=", lines[number - 1]):
            assert lines[number - 1].startswith("#"), f"uncommented key: {line}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/usr/bin/python3", "/usr/bin/python3"),
        ("--codex-home", "--codex-home"),
        ("/a b/c", '"/a b/c"'),
        ("/x/100%", "/x/100%%"),
        ("/x/$HOME", '"/x/$$HOME"'),
        ('/x/"q"\\', '"/x/\\"q\\"\\\\"'),
        ("", '""'),
    ],
)
def test_systemd_word_quoting(value: str, expected: str) -> None:
    assert systemd_word(value) == expected
    assert unquote_words(systemd_word(value)) == [value]


def test_systemd_env_quoting() -> None:
    assert systemd_env("CODEX_HOME", "/a b/50%") == '"CODEX_HOME=/a b/50%%"'


def test_control_characters_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="control characters"):
        render_unit(ctx_for(tmp_path, codex_home="/tmp/a\nExecStartPre=/bin/evil"))
    with pytest.raises(ValueError, match="control characters"):
        render_plist(ctx_for(tmp_path, "launchd", codex_home="/tmp/a\x00b"))


def test_unit_round_trips_a_weird_codex_home(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path, codex_home=WEIRD)
    service = parse_unit(render_unit(ctx))["Service"]
    exec_start = dict(service)["ExecStart"]
    assert unquote_words(exec_start)[-1] == WEIRD


def test_plist_parses_back_with_every_key(tmp_path: Path) -> None:
    ctx = ctx_for(tmp_path, "launchd", codex_home=WEIRD)
    plist = plistlib.loads(render_plist(ctx).encode())
    log_dir = tmp_path / "Library" / "Logs" / "codex-indexd"
    assert plist["Label"] == LABEL
    assert plist["ProgramArguments"] == ctx.argv
    assert plist["ProgramArguments"][-1] == WEIRD
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["ThrottleInterval"] >= 10
    assert plist["ProcessType"] == "Background"
    assert plist["LowPriorityIO"] is True
    assert plist["Umask"] == 0o077
    assert plist["StandardOutPath"] == str(log_dir / "launchd.out.log")
    assert plist["StandardErrorPath"] == str(log_dir / "launchd.err.log")
    env = plist["EnvironmentVariables"]
    assert env["CODEX_HOME"] == WEIRD
    assert env["XDG_CONFIG_HOME"] == str(tmp_path / "Library" / "Application Support")
    assert env["XDG_CACHE_HOME"] == str(tmp_path / "Library" / "Caches")
    assert env["PATH"] == "/usr/bin"


def test_plist_pins_the_xdg_directories_the_installer_saw(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_STATE_HOME": "/elsewhere/state", "XDG_CACHE_HOME": "rel"}
    ctx = resolve("launchd", env=env, uid=501)
    pinned = plistlib.loads(render_plist(ctx).encode())["EnvironmentVariables"]
    assert pinned["XDG_STATE_HOME"] == "/elsewhere/state"
    assert pinned["XDG_CACHE_HOME"] == str(tmp_path / "Library" / "Caches")  # relative: ignored


def test_every_plist_key_group_is_commented() -> None:
    body = template_text(PLIST_TEMPLATE).split("<dict>\n", 1)[1]
    blocks = body.split("\n\n")
    keyed = [block for block in blocks if "\t<key>" in block]
    assert len(keyed) >= 12
    for block in keyed:
        assert block.lstrip().startswith("<!--"), f"uncommented block: {block[:60]}"


@pytest.mark.parametrize(
    ("template", "sample"),
    [
        (UNIT_TEMPLATE, REPO / "systemd" / UNIT_NAME),
        (PLIST_TEMPLATE, REPO / "launchd" / f"{LABEL}.plist"),
    ],
)
def test_repository_samples_match_the_packaged_templates(template: str, sample: Path) -> None:
    assert sample.read_text("utf-8") == template_text(template)


def _verify(unit_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {
        **os.environ,
        "XDG_RUNTIME_DIR": str(runtime),
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    return subprocess.run(
        ["systemd-analyze", "--user", "verify", str(unit_dir / UNIT_NAME)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is absent")
@pytest.mark.parametrize("odd_paths", [False, True], ids=["plain", "spaces-and-percent"])
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path, odd_paths: bool) -> None:
    python, codex_home = sys.executable, str(tmp_path / "codex")
    if odd_paths:
        odd = tmp_path / "odd dir %i"
        odd.mkdir()
        (odd / "py thon").symlink_to(sys.executable)
        python, codex_home = str(odd / "py thon"), WEIRD
    ctx = resolve("systemd", codex_home=codex_home, python=python, env={"HOME": str(tmp_path)})
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    (unit_dir / UNIT_NAME).write_text(render_unit(ctx))
    done = _verify(unit_dir, tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
