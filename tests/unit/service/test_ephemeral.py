"""Throwaway environments (uvx, `pipx run`, a temporary venv) are recognised, and `service
install` from one is refused with a sentence that says what to do instead."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from codex_indexd_service import service_command
from codex_indexd_service.ephemeral import ephemeral_reason

TEMP = tempfile.gettempdir()


@pytest.mark.parametrize(
    ("python", "prefix", "refused"),
    [
        ("/home/u/.cache/uv/archive-v0/abc/bin/python", "/home/u/.cache/uv/archive-v0/abc", True),
        ("/srv/uvcache/uv/archive-v0/abc/bin/python", None, True),  # another UV_CACHE_DIR
        ("/home/u/.local/pipx/.cache/1f2e/bin/python", "/home/u/.local/pipx/.cache/1f2e", True),
        ("/home/u/.cache/pipx/1f2e/bin/python", "/home/u/.cache/pipx/1f2e", True),  # pipx 1.3+
        ("/Users/u/Library/Caches/pipx/1f2e/bin/python", None, True),  # pipx 1.3+ on macOS
        (f"{TEMP}/venv-x/bin/python", None, True),
        ("/home/u/.local/pipx/venvs/codex-indexd/bin/python", "/home/u/.local/pipx/venvs/x", False),
        ("/home/u/.local/share/uv/tools/codex-indexd/bin/python", "/home/u/.local/share/uv", False),
        ("/usr/bin/python3", None, False),
    ],
)
def test_throwaway_environments_are_recognised(
    python: str, prefix: str | None, refused: bool
) -> None:
    assert (ephemeral_reason(Path(python), prefix) is not None) is refused


def test_an_install_from_a_uvx_cache_is_refused_with_what_to_do(
    home: Path, runner: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cached = "/home/u/.cache/uv/archive-v0/abc"
    monkeypatch.setattr(sys, "prefix", cached)
    assert service_command.main(["install", "--manager", "systemd"], runner=runner) == 2
    err = capsys.readouterr().err
    assert "refusing to install the service from a throwaway environment" in err
    assert "pipx install codex-indexd" in err and "uv tool install codex-indexd" in err
    assert "--allow-ephemeral" in err
    assert runner.calls == [] and not (home / ".config").exists()
    # a dry run says the same as a warning and prints the plan
    assert (
        service_command.main(["install", "--manager", "systemd", "--dry-run"], runner=runner) == 0
    )
    captured = capsys.readouterr()
    assert "warning: a real install would be refused" in captured.err
    assert "would run:" in captured.out and runner.calls == []
    # the brave may, and an interpreter named with --python is judged by itself
    assert (
        service_command.main(
            ["install", "--manager", "systemd", "--allow-ephemeral"], runner=runner
        )
        == 0
    )
    assert (home / ".config" / "systemd" / "user" / "codex-indexd.service").exists()
    assert (
        service_command.main(
            ["install", "--manager", "systemd", "--python", "/usr/bin/python3"], runner=runner
        )
        == 0
    )
