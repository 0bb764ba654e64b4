"""The app-server client and the heal orchestration, against a fake `codex` (no real Codex).

The real Codex CLI is exercised in tests/e2e/test_heal_e2e.py; here a small Python script
plays the app-server so timeouts, refusals, exits and the attempts record are quick to test.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from codex_indexd.codex.home import CodexHome
from codex_indexd.engine import gather
from codex_indexd.heal import MAX_TRIES, NAME_LOST, ROW_MISSING, check_codex, heal_home
from codex_indexd.heal.appserver import AppServer
from codex_indexd.heal.capability import clear_cache
from codex_indexd.heal.child import AppServerError, RpcError, run_version
from tests.support.homes import build_home, index_line, new_thread, write_rollout

FAKE = Path(__file__).with_name("fake_codex.py")


@pytest.fixture
def fake_codex(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An executable `codex` that runs fake_codex.py; its log is tmp_path/fake.log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "codex"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    script.chmod(0o755)
    monkeypatch.setenv("FAKE_CODEX_LOG", str(tmp_path / "fake.log"))
    for key in ("FAKE_CODEX_MODE", "FAKE_CODEX_VERSION", "FAKE_CODEX_TRAP", "FAKE_CODEX_SCHEMA"):
        monkeypatch.delenv(key, raising=False)
    clear_cache()
    return script


def fake_log(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "fake.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def group_members(pgid: int) -> list[int]:
    """Live pids whose process group is `pgid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                found.append(int(entry.name))
    return found


@pytest.fixture
def lost_name_home(tmp_path: Path) -> Iterator[Path]:
    """A home whose paginated thread has no DB name while the index holds the user's name."""
    home = tmp_path / "home"
    thread = new_thread(1, paginated=True)
    build_home(home, [thread])
    (home / "session_index.jsonl").write_text(
        index_line(thread.thread_id, "My apple project", "2026-11-20T11:00:00Z")
    )
    yield home


# -- the client --------------------------------------------------------------------------


def test_initialize_request_and_clean_close(fake_codex: Path, tmp_path: Path) -> None:
    server = AppServer(str(fake_codex), tmp_path).start(timeout_s=10)
    pid = server.pid
    assert pid is not None
    assert server.initialize_result["codexHome"] == str(tmp_path)
    assert server.request("thread/list", {"limit": 1}, timeout_s=5)["nextCursor"] == "page-2"
    assert server.close() == 0
    assert not alive(pid)
    sent = [m for m in fake_log(tmp_path) if "method" in m]
    assert [m["method"] for m in sent] == ["initialize", "initialized", "thread/list"]
    assert sent[0]["params"]["clientInfo"]["name"] == "codex-indexd"


def test_rpc_errors_keep_the_child_usable(
    fake_codex: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CODEX_MODE", "reject")
    with AppServer(str(fake_codex), tmp_path) as server:
        with pytest.raises(RpcError) as info:
            server.request("thread/name/set", {"threadId": "a", "name": "b"}, timeout_s=5)
        assert info.value.code == -32600
        assert "no rollout found" in str(info.value)
        assert server.request("thread/list", {}, timeout_s=5)["data"] == [{"id": "x"}]


def test_server_requests_are_refused_and_notifications_dropped(
    fake_codex: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CODEX_MODE", "ask")
    with AppServer(str(fake_codex), tmp_path) as server:
        server.request("thread/list", {}, timeout_s=5)
        assert server.notifications == 1
    replies = [m for m in fake_log(tmp_path) if m.get("id") == 900]
    assert replies and replies[0]["error"]["code"] == -32601


def test_a_hanging_child_times_out_and_its_whole_group_is_killed(
    fake_codex: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CODEX_MODE", "hang")
    monkeypatch.setenv("FAKE_CODEX_TRAP", "1")  # ignores SIGTERM: only SIGKILL ends it
    started = time.monotonic()
    server = AppServer(str(fake_codex), tmp_path, grace_s=0.3)
    with pytest.raises(AppServerError) as info:
        server.start(timeout_s=0.5)
    assert info.value.kind == "timeout"
    assert "initialize" in str(info.value)
    assert time.monotonic() - started < 10
    pgid = fake_log(tmp_path)[0]["pgid"]
    assert group_members(pgid) == []


def test_a_child_that_exits_mid_call_is_reported(
    fake_codex: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CODEX_MODE", "exit_on_list")
    with AppServer(str(fake_codex), tmp_path) as server:
        with pytest.raises(AppServerError) as info:
            server.request("thread/list", {}, timeout_s=10)
        assert info.value.kind == "exited"
    assert server.returncode == 3


def test_a_missing_binary_is_a_spawn_error(tmp_path: Path) -> None:
    with pytest.raises(AppServerError) as info:
        AppServer(str(tmp_path / "nope"), tmp_path).start(timeout_s=1)
    assert info.value.kind == "spawn"


def test_run_version(fake_codex: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_version(str(fake_codex)) == (0, 169, 0)
    monkeypatch.setenv("FAKE_CODEX_VERSION", "hang")
    started = time.monotonic()
    with pytest.raises(AppServerError) as info:
        run_version(str(fake_codex), timeout_s=0.5)
    assert info.value.kind == "timeout"
    assert time.monotonic() - started < 5


# -- which codex -------------------------------------------------------------------------


def test_check_codex_off_missing_and_untested(
    fake_codex: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    off = check_codex("off")
    assert not off.usable and "off" in (off.reason or "") and "[codex_api]" in off.hint
    missing = check_codex("auto", str(tmp_path / "nope" / "codex"))
    assert not missing.usable and "does not exist" in (missing.reason or "")
    assert "CODEX_INDEXD_CODEX_BIN" in missing.hint
    no_path = check_codex("auto", env={"PATH": str(tmp_path / "empty")})
    assert not no_path.usable and "no 'codex' binary on PATH" in (no_path.reason or "")
    on_path = check_codex("auto", env={**os.environ, "PATH": str(fake_codex.parent)})
    assert on_path.usable and on_path.version == "0.169.0" and on_path.binary == str(fake_codex)
    assert on_path.info is None  # 0.169.0 is a tested version
    with pytest.raises(ValueError):
        check_codex("sometimes")


def _new_binary(fake_codex: Path) -> None:
    """Give the fake a new mtime, as an upgrade would: the cached answer no longer applies."""
    st = fake_codex.stat()
    os.utime(fake_codex, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_a_newer_codex_with_the_capabilities_heals_and_says_it_is_newer(
    fake_codex: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CODEX_VERSION", "codex-cli 0.172.0")
    newer = check_codex("auto", str(fake_codex))
    assert newer.usable and newer.version == "0.172.0"
    assert newer.info == "Codex 0.172.0 is newer than the versions tested: 0.169.0, 0.171.0"
    between = "codex-cli 0.170.2"  # untested but older than the newest tested: no note
    monkeypatch.setenv("FAKE_CODEX_VERSION", between)
    _new_binary(fake_codex)
    assert check_codex("auto", str(fake_codex)).usable
    assert check_codex("auto", str(fake_codex)).info is None


@pytest.mark.parametrize(
    ("variant", "missing"),
    [
        ("no_name_set", "has no thread/name/set in its app-server protocol"),
        ("no_state_db_only", "has no thread/list(useStateDbOnly) in its app-server protocol"),
        ("fail", "generate-json-schema' failed (exit 2): error: unknown subcommand"),
        ("garbage", "wrote no readable ClientRequest.json"),
    ],
)
def test_a_missing_capability_turns_healing_off_with_the_reason(
    fake_codex: Path, monkeypatch: pytest.MonkeyPatch, variant: str, missing: str
) -> None:
    monkeypatch.setenv("FAKE_CODEX_SCHEMA", variant)
    check = check_codex("auto", str(fake_codex))
    assert not check.usable
    assert missing in (check.reason or "")
    assert "point binary under [codex_api]" in check.hint and "0.169.0, 0.171.0" in check.hint


def test_the_capability_answer_is_cached_per_binary(
    fake_codex: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def schema_runs() -> list[dict[str, Any]]:
        return [e for e in fake_log(tmp_path) if "schema" in e]

    first = check_codex("auto", str(fake_codex))
    assert first.usable and first.metadata_update
    check_codex("auto", str(fake_codex))
    assert len(schema_runs()) == 1
    home = schema_runs()[0]["codex_home"]
    assert home and "codex-indexd-schema-" in home and not Path(home).exists()  # scratch, removed
    monkeypatch.setenv("FAKE_CODEX_SCHEMA", "no_metadata_update")
    _new_binary(fake_codex)  # an upgrade in place: asked again
    again = check_codex("auto", str(fake_codex))
    assert again.usable and not again.metadata_update
    assert len(schema_runs()) == 2


def test_the_scan_asks_for_every_source_kind_the_schema_names(
    fake_codex: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CODEX_SCHEMA", "new_kind")
    check = check_codex("auto", str(fake_codex))
    assert "laterKind" in check.source_kinds and "cli" in check.source_kinds
    monkeypatch.setenv("FAKE_CODEX_SCHEMA", "full")


# -- heal_home ---------------------------------------------------------------------------


def test_heal_sets_lost_names_and_verifies_them(
    fake_codex: Path, tmp_path: Path, lost_name_home: Path
) -> None:
    facts = gather(CodexHome.at(lost_name_home))
    attempts: dict[str, int] = {}
    with capture_logs() as logs:
        report = heal_home(facts, binary=str(fake_codex), attempts=attempts, timeout_s=10)
    assert report.ran and report.error is None
    assert report.detected[NAME_LOST] == 1
    assert report.healed[NAME_LOST] == 1 and report.total_not_healed == 0
    assert attempts == {}
    calls = [m for m in fake_log(tmp_path) if m.get("method") == "thread/name/set"]
    assert [c["params"]["name"] for c in calls] == ["My apple project"]
    assert not [m for m in fake_log(tmp_path) if m.get("method") == "thread/list"]  # no row issue
    done = [e for e in logs if e["event"] == "heal.done"]
    assert len(done) == 1
    assert "My apple project" not in repr(logs)


def test_a_name_that_does_not_stick_is_tried_twice_then_reported(
    fake_codex: Path, tmp_path: Path, lost_name_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CODEX_MODE", "nostick")
    facts = gather(CodexHome.at(lost_name_home))
    attempts: dict[str, int] = {}
    for expected in range(1, MAX_TRIES + 1):
        report = heal_home(facts, binary=str(fake_codex), attempts=attempts, timeout_s=10)
        assert report.ran and report.not_healed[NAME_LOST] == 1
        assert list(attempts.values()) == [expected]
    assert report.given_up[NAME_LOST] == 1
    assert any("no longer retried" in note for note in report.notes)
    starts = len([m for m in fake_log(tmp_path) if "pid" in m])
    third = heal_home(facts, binary=str(fake_codex), attempts=attempts, timeout_s=10)
    assert not third.ran and third.given_up[NAME_LOST] == 1 and third.not_healed[NAME_LOST] == 1
    assert len([m for m in fake_log(tmp_path) if "pid" in m]) == starts  # no new child
    assert list(attempts.values()) == [MAX_TRIES]


def test_a_new_name_gets_fresh_tries(
    fake_codex: Path, lost_name_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CODEX_MODE", "nostick")
    facts = gather(CodexHome.at(lost_name_home))
    attempts: dict[str, int] = {}
    for _ in range(MAX_TRIES):
        heal_home(facts, binary=str(fake_codex), attempts=attempts, timeout_s=10)
    tid = next(iter(facts.index.latest))
    with (lost_name_home / "session_index.jsonl").open("a") as fh:
        fh.write(index_line(tid, "Renamed later", "2026-11-21T11:00:00Z"))
    report = heal_home(
        gather(CodexHome.at(lost_name_home)),
        binary=str(fake_codex),
        attempts=attempts,
        timeout_s=10,
    )
    assert report.ran
    assert sorted(attempts.values()) == [1]  # the old name's key was pruned


def test_missing_rows_trigger_one_full_scan(
    fake_codex: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CODEX_MODE", "nostick")
    monkeypatch.setenv("FAKE_CODEX_SCHEMA", "no_metadata_update")  # as a Codex without it
    home = tmp_path / "home"
    build_home(home, [new_thread(1, paginated=True)])
    write_rollout(home, new_thread(2, paginated=True))  # no row
    facts = gather(CodexHome.at(home))
    report = heal_home(facts, binary=str(fake_codex), attempts={}, timeout_s=10)
    assert report.detected[ROW_MISSING] == 1 and report.not_healed[ROW_MISSING] == 1
    lists = [m["params"] for m in fake_log(tmp_path) if m.get("method") == "thread/list"]
    assert [(p["archived"], p.get("cursor")) for p in lists] == [
        (False, None),
        (False, "page-2"),
        (True, None),
        (True, "page-2"),
    ]
    for params in lists:
        assert params["useStateDbOnly"] is False
        assert params["modelProviders"] == []
        # the kinds the binary's schema names (fake_codex.KINDS), not a list of ours
        assert params["sourceKinds"] == [
            "cli",
            "vscode",
            "exec",
            "appServer",
            "subAgent",
            "unknown",
        ]


def test_off_and_no_binary_only_detect(
    fake_codex: Path, tmp_path: Path, lost_name_home: Path
) -> None:
    facts = gather(CodexHome.at(lost_name_home))
    with capture_logs() as logs:
        off = heal_home(facts, mode="off", binary=str(fake_codex))
        missing = heal_home(facts, binary=str(tmp_path / "nope"))
    for report in (off, missing):
        assert not report.ran and report.detected[NAME_LOST] == 1
        assert report.not_healed[NAME_LOST] == 1 and report.skipped_reason
        assert "repair --heal-db" in report.how_to_enable
        assert "not healed" in report.summary()
    assert fake_log(tmp_path) == []
    assert [e["event"] for e in logs] == ["heal.off", "heal.off"]


def test_nothing_detected_spawns_nothing(fake_codex: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    thread = new_thread(1, paginated=True)
    build_home(home, [thread], names={thread.thread_id: "Named"})
    with capture_logs() as logs:
        report = heal_home(gather(CodexHome.at(home)), binary=str(fake_codex))
    assert report.total_detected == 0 and not report.ran and report.skipped_reason is None
    assert fake_log(tmp_path) == [] and logs == []


def test_no_db_skips(fake_codex: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    build_home(home, [new_thread(1, paginated=True)], db=False)
    report = heal_home(gather(CodexHome.at(home)), binary=str(fake_codex))
    assert not report.ran and "state DB is missing" in (report.skipped_reason or "")


@pytest.mark.parametrize("mode", ["nostick", "reject_update"])
def test_a_few_missing_rows_are_inserted_one_by_one_and_refusals_scanned(
    fake_codex: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("FAKE_CODEX_MODE", mode)
    home = tmp_path / "home"
    build_home(home, [new_thread(1, paginated=True)])
    missing = [new_thread(2, paginated=True), new_thread(3)]
    for thread in missing:
        write_rollout(home, thread)
    facts = gather(CodexHome.at(home))
    heal_home(facts, binary=str(fake_codex), attempts={}, timeout_s=10)
    messages = fake_log(tmp_path)
    updates = [m["params"] for m in messages if m.get("method") == "thread/metadata/update"]
    assert sorted(u["threadId"] for u in updates) == sorted(t.thread_id for t in missing)
    assert all(u["gitInfo"] == {"sha": None} for u in updates)  # the rollouts record no git
    scans = [m for m in messages if m.get("method") == "thread/list"]
    assert bool(scans) == (mode == "reject_update")  # a refusal falls back to the scan


def test_many_missing_rows_take_one_scan(
    fake_codex: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codex_indexd.heal.heal import MAX_ROW_INSERTS

    monkeypatch.setenv("FAKE_CODEX_MODE", "nostick")
    home = tmp_path / "home"
    build_home(home, [new_thread(0)])
    for i in range(1, MAX_ROW_INSERTS + 2):
        write_rollout(home, new_thread(i, turns=1))
    heal_home(gather(CodexHome.at(home)), binary=str(fake_codex), attempts={}, timeout_s=10)
    messages = fake_log(tmp_path)
    assert not [m for m in messages if m.get("method") == "thread/metadata/update"]
    assert [m for m in messages if m.get("method") == "thread/list"]


def test_rows_a_scan_left_out_are_inserted_one_by_one(
    fake_codex: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stale row forces the scan; the missing row it did not insert is asked for by id."""
    import sqlite3

    monkeypatch.setenv("FAKE_CODEX_MODE", "nostick")
    home = tmp_path / "home"
    stale, missing = new_thread(1, paginated=True), new_thread(2, paginated=True)
    build_home(home, [stale])
    write_rollout(home, missing)
    conn = sqlite3.connect(home / "state_5.sqlite")
    conn.execute(
        "UPDATE threads SET rollout_path = ? WHERE id = ?", ("/gone.jsonl", stale.thread_id)
    )
    conn.commit()
    conn.close()
    heal_home(gather(CodexHome.at(home)), binary=str(fake_codex), attempts={}, timeout_s=10)
    order = [m["method"] for m in fake_log(tmp_path) if m.get("method", "").startswith("thread/")]
    assert "thread/list" in order
    updates = [m for m in fake_log(tmp_path) if m.get("method") == "thread/metadata/update"]
    assert [u["params"]["threadId"] for u in updates] == [missing.thread_id]
    assert order.index("thread/metadata/update") > order.index("thread/list")
