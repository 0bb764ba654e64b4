"""What scripts rely on: exit codes, JSON shapes, and a sentence (never a traceback) for a
home that cannot be used, in every command."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codex_indexd.cli import main
from tests.support.daemons import ROOT, DaemonProcess
from tests.support.homes import build_home, new_thread, write_rollout
from tests.support.waiting import wait_for

COMMANDS = {
    "status": ["status"],
    "status --json": ["status", "--json"],
    "explain": ["explain", "0193"],
    "explain --json": ["explain", "--json", "0193"],
    "repair": ["repair"],
    "repair --dry-run": ["repair", "--dry-run"],
    "repair --json": ["repair", "--json"],
    "run --once": ["run", "--once"],
}
# (exit code, whether the sentence is on stdout) per command for a home that cannot be used
EXPECTED_EXIT = {
    "status": 1,
    "status --json": 1,
    "explain": 2,
    "explain --json": 2,
    "repair": 1,
    "repair --dry-run": 1,
    "repair --json": 1,
    "run --once": 1,
}


def cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codex_indexd", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def bad_home(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"home-{kind}"
    if kind == "file":
        path.write_text("not a home\n")
    elif kind == "broken-link":
        path.symlink_to(tmp_path / "nowhere")
    elif kind == "under-a-file":
        (tmp_path / "plain").write_text("x")
        path = tmp_path / "plain" / ".codex"
    return path


@pytest.mark.parametrize("kind", ["missing", "file", "broken-link", "under-a-file"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_bad_home_gets_a_sentence_naming_it(tmp_path: Path, kind: str, command: str) -> None:
    home = bad_home(tmp_path, kind)
    argv = COMMANDS[command]
    proc = cli(argv[0], "--codex-home", str(home), *argv[1:])
    both = proc.stdout + proc.stderr
    assert "Traceback" not in both, both
    code = EXPECTED_EXIT[command]
    if command == "run --once" and kind != "missing":
        code = 2  # no usable home at all
    assert proc.returncode == code, both
    assert str(home) in both and ("--codex-home" in both or "link" in both), both
    if "--json" in argv:
        data = json.loads(proc.stdout)
        assert str(home) in json.dumps(data)
        assert data.get("error") or not data["ok"]
    assert not home.is_dir()  # nothing created it


def without_privileges() -> list[str]:
    """A command prefix under which permission bits apply (root keeps no capabilities)."""
    if os.getuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("needs setpriv to run without root's capabilities")
    return [setpriv, "--inh-caps=-all", "--bounding-set=-all"]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_unreadable_home_gets_a_sentence(tmp_path: Path, command: str) -> None:
    home = build_home(tmp_path / "home", [new_thread(0)])
    home.chmod(0o000)
    argv = COMMANDS[command]
    try:
        proc = subprocess.run(
            [
                *without_privileges(),
                sys.executable,
                "-m",
                "codex_indexd",
                argv[0],
                "--codex-home",
                str(home),
                *argv[1:],
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    finally:
        home.chmod(0o700)
    both = proc.stdout + proc.stderr
    assert "Traceback" not in both, both
    expected = 2 if command == "run --once" else EXPECTED_EXIT[command]
    assert proc.returncode == expected, both
    assert str(home) in both and "permission denied" in both, both


def test_status_exit_codes_follow_systemctl(tmp_path: Path, private_dirs: Path) -> None:
    home = build_home(tmp_path / "h", [new_thread(i) for i in range(3)])
    # drift: no index lines, no history yet
    proc = cli("status", "--json", "--codex-home", str(home))
    data = json.loads(proc.stdout)
    assert proc.returncode == 1 and data["ok"] is False and data["healthy"] is False
    assert data["homes"][0]["drift"] and data["homes"][0]["ok"] is False
    # healthy after one reconcile, but no daemon: 3, as `systemctl status` on a stopped unit
    assert main(["run", "--once", "--codex-home", str(home)]) == 0
    proc = cli("status", "--json", "--codex-home", str(home))
    data = json.loads(proc.stdout)
    assert proc.returncode == 3, proc.stdout
    assert (data["ok"], data["healthy"], data["exit_code"]) == (False, True, 3)
    assert data["homes"][0]["daemon_running"] is False and data["homes"][0]["ok"] is True
    text = cli("status", "--codex-home", str(home))
    assert text.returncode == 3 and "NOT running" in text.stdout
    # healthy and watched: 0
    daemon = DaemonProcess(home)
    try:
        wait_for(
            lambda: cli("status", "--codex-home", str(home)).returncode == 0,
            timeout=30,
            what="status 0 with the daemon running",
        )
        data = json.loads(cli("status", "--json", "--codex-home", str(home)).stdout)
        assert data["ok"] is True and data["homes"][0]["daemon_pid"] == daemon.pid
    finally:
        daemon.terminate(timeout=10)
        daemon.close()


def test_status_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["status", "--help"])
    out = capsys.readouterr().out
    assert "3  healthy, but no daemon is running" in out and "examples:" in out


def test_repair_json_is_json_on_failure_too(tmp_path: Path, private_dirs: Path) -> None:
    (private_dirs / "config.toml").parent.mkdir(parents=True, exist_ok=True)
    (private_dirs / "config.toml").write_text("[watch]\ndebounce = 5\n")
    home = build_home(tmp_path / "h", [new_thread(0)])
    proc = cli("repair", "--json", "--codex-home", str(home))
    data = json.loads(proc.stdout)
    assert proc.returncode == 2 and data["status"] == "failed"
    assert "config.toml:2" in data["error"] and "watch.debounce" in data["error"]
    # status treats the same bad file the same way
    proc = cli("status", "--json", "--codex-home", str(home))
    assert proc.returncode == 2 and "config.toml:2" in json.loads(proc.stdout)["error"]


def test_repair_says_restart_codex_only_when_something_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = build_home(tmp_path / "h", [new_thread(i) for i in range(2)])
    assert main(["repair", "--codex-home", str(home), "--no-backup"]) == 0
    assert "next step: restart Codex" in capsys.readouterr().out
    assert main(["repair", "--codex-home", str(home), "--no-backup"]) == 0
    out = capsys.readouterr().out
    assert "status: success" in out and "restart Codex" not in out
    assert main(["repair", "--codex-home", str(home), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["changed"] is False and data["status"] == "success" and data["error"] is None


def test_status_counts_and_words_add_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 rollouts, one archived, one without a DB row: status says how many threads the
    daemon restores and why the rest are not, and names Codex's DB drift in words."""
    monkeypatch.setenv("CODEX_INDEXD_CODEX_BIN", str(tmp_path / "no-codex"))
    threads = [new_thread(i, turns=1) for i in range(40)]
    threads[5].archived = True
    home = build_home(tmp_path / "h", threads[:39])
    write_rollout(home, threads[39])  # no DB row
    assert main(["status", "--codex-home", str(home)]) == 1
    out = capsys.readouterr().out
    assert "sessions: 40 rollout files; 39 rows in Codex's DB" in out, out
    assert "threads (the daemon's policy): 39 threads restored; not restored: 1 archived" in out
    assert "Codex DB drift: 1 rollout without a row in Codex's DB" in out, out
    assert "Codex's DB has drift (1 rollout without a row in Codex's DB)" in out, out
    assert "row_missing" not in out and "index_missing" not in out
    assert main(["status", "--json", "--codex-home", str(home)]) == 1
    (report,) = json.loads(capsys.readouterr().out)["homes"]
    assert report["counts"]["restored"] == 39
    assert report["counts"]["not_restored"]["archived"] == 1
    assert report["db_drift"] == {"row_missing": 1}  # codes stay in JSON


def test_a_bad_max_threads_is_a_plain_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["repair", "--max-threads", "fast"])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "--max-threads: must be a whole number of threads (0 = no limit), got 'fast'" in err
    assert "_nonnegative" not in err


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser (and each subcommand's), by the command line that shows it."""
    from codex_indexd.cli import build_parser
    from codex_indexd.commands import config_cmd, report, status
    from codex_indexd.commands.logs import _build_parser as logs_parser
    from codex_indexd_service.service_command import build_parser as service_parser

    found: dict[str, argparse.ArgumentParser] = {}

    def add(name: str, parser: argparse.ArgumentParser) -> None:
        found[name] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, child in action.choices.items():
                    if name != "codex-indexd" or sub in {"repair", "run", "explain"}:
                        add(f"{name} {sub}", child)

    add("codex-indexd", build_parser())
    add("status", status.build_parser())
    add("logs", logs_parser(Path("codex-indexd.log")))
    add("config", config_cmd.build_parser())
    add("report", report.build_parser())
    add("service", service_parser())
    return found


def test_every_option_has_help_and_every_command_examples() -> None:
    parsers = _parsers()
    assert {"codex-indexd repair", "service install", "config show", "config path"} <= set(parsers)
    for name, parser in parsers.items():
        assert "examples:" in (parser.epilog or ""), name
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings[0]}"


def test_an_archived_thread_is_explained_with_a_note_and_exit_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    threads = [new_thread(i) for i in range(2)]
    threads[1].archived = True
    home = build_home(tmp_path / "h", threads)
    argv = ["explain", "--codex-home", str(home), threads[1].thread_id]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "archived, so 'codex resume' lists it only with archived threads" in out, out
    assert "HIDDEN" not in out and "note: archived on purpose" in out
    assert main([*argv, "--json"]) == 0
    (report,) = json.loads(capsys.readouterr().out)["threads"]
    assert (report["visible"], report["archived"], report["ok"]) == (False, True, True)
    assert report["rollout_path"].endswith(".jsonl") and report["turns"] == 2
    assert all({"code", "message"} <= set(f) for f in report["findings"])


def test_explain_and_repair_use_the_config_files_home_as_status_does(
    tmp_path: Path, private_dirs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    threads = [new_thread(i) for i in range(2)]
    home = build_home(tmp_path / "configured", threads)
    config = private_dirs / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"homes = [{json.dumps(str(home))}, {json.dumps(str(tmp_path))}]\n")
    assert main(["explain", "--json", threads[0].thread_id]) == 0
    assert json.loads(capsys.readouterr().out)["codex_home"] == str(home)
    assert main(["repair", "--dry-run", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["codex_home"] == str(home)
    assert f"repairing {home}, the first of 2 configured homes" in captured.err
    # a bad config file stops explain too (exit 2, JSON with the error)
    config.write_text("homes = [\n")
    assert main(["explain", "--json", threads[0].thread_id]) == 2
    data = json.loads(capsys.readouterr().out)
    assert "config error" in data["error"] and data["threads"] == []
    assert main(["explain", "--codex-home", str(home), threads[0].thread_id]) == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["repair", "--json", "--max-threads", "fast"],
        ["repair", "--json", "--no-such-option"],
        ["explain", "--json"],  # the thread is required
        ["status", "--json", "--no-such-option"],
        ["config", "show", "--json", "--no-such-option"],
    ],
)
def test_a_usage_error_with_json_is_json_on_stdout_too(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["ok"] is False and report["exit_code"] == 2
    assert report["error"] and report["error"] in err  # the usage and error stay on stderr
    assert "usage:" in err
