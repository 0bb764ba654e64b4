"""The checkpoint: what `save` writes, `load` reads back exactly; anything else is discarded
and leaves the tracker empty."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codex_indexd.codex.home import CodexHome
from codex_indexd.daemon.checkpoint import Verified, load, save
from codex_indexd.engine.file_state import FileState, pack_numbers, pack_stat
from codex_indexd.engine.live import RolloutTracker
from codex_indexd.index.model import Rename, RolloutFacts, Turns, UserTurn

HOME = Path("/codex-home")
TID = "01a2133b-c369-7d21-8c95-fcf203b4a96c"

texts = st.text(max_size=12)  # surrogates included: rollout bytes need not be valid UTF-8
maybe_text = st.none() | texts
ints = st.integers(0, 2**62)
turns = st.builds(UserTurn, ints, maybe_text, ints, st.integers(-1, 2**40))
renames = st.builds(Rename, texts, texts, st.none() | ints)


@st.composite
def facts_st(draw: st.DrawFn, path: str) -> RolloutFacts:
    first = draw(maybe_text)
    return RolloutFacts(
        thread_id=draw(st.sampled_from([TID, "", "not-a-uuid"])),
        path=path,
        archived=draw(st.booleans()),
        created_at=draw(maybe_text),
        last_timestamp=draw(maybe_text),
        source=draw(st.none() | st.sampled_from(["cli", "vscode", "exec"])),
        history_mode=draw(st.sampled_from(["legacy", "paginated"])),
        first_user_message=first,
        # a title equal to the first message is stored once: both shapes must round-trip
        title=draw(st.sampled_from([first, None]) | maybe_text),
        user_turns=Turns(
            draw(st.lists(turns | st.builds(UserTurn, ints, st.just(first), ints), max_size=4))
        ),
        renames=draw(st.lists(renames, max_size=3)),
        has_meta=draw(st.booleans()),
    )


@st.composite
def file_state_st(draw: st.DrawFn, key: str) -> FileState:
    facts = draw(facts_st(key))
    flags = draw(st.integers(0, 3))  # bare, session_meta locked
    nums = pack_numbers(*(draw(ints) for _ in range(8)), flags)
    return FileState(facts, nums, draw(st.none() | st.just(TID)))


@st.composite
def tracker_st(draw: st.DrawFn) -> RolloutTracker:
    tracker = RolloutTracker(CodexHome(HOME))
    names = draw(
        st.lists(
            st.sampled_from(["a.jsonl", "b.jsonl.zst", "c.jsonl", "\udcff.jsonl"]),
            unique=True,
            max_size=4,
        )
    )
    for name in names:
        key = str(HOME / "sessions" / name)
        tracker.files[key] = draw(file_state_st(key))
    return tracker


fingerprints = st.none() | st.tuples(ints, ints, ints, ints)
verified_st = st.none() | st.builds(
    Verified,
    texts,
    fingerprints,
    fingerprints,
    st.none() | texts,
    st.dictionaries(st.sampled_from([TID, "other"]), ints),
    st.lists(st.sampled_from([TID, "other"])),
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(tracker=tracker_st(), verified=verified_st)
def test_save_then_load_round_trips(
    tmp_path: Path, tracker: RolloutTracker, verified: Verified | None
) -> None:
    path = tmp_path / "checkpoint.jsonl"  # overwritten by each example
    save(tracker, path, verified)
    again = RolloutTracker(CodexHome(HOME))
    usable, read_verified = load(again, path)
    assert usable
    assert again.files == tracker.files
    assert read_verified == verified


def tracker_with_one_file() -> RolloutTracker:
    tracker = RolloutTracker(CodexHome(HOME))
    key = str(HOME / "sessions" / "a.jsonl")
    facts = RolloutFacts(TID, key, first_user_message="hi", title="hi", has_meta=True)
    facts.user_turns.append(UserTurn(1_700_000_000, "hi"))
    tracker.files[key] = FileState(facts, pack_numbers(1, 2, 300, 4, 300, 2, 0, 0, 0), TID)
    return tracker


def test_the_checkpoint_is_private(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.jsonl"
    save(tracker_with_one_file(), path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # it holds prompt texts


def test_a_missing_checkpoint_is_not_usable(tmp_path: Path) -> None:
    tracker = RolloutTracker(CodexHome(HOME))
    assert load(tracker, tmp_path / "absent") == (False, None)
    assert tracker.files == {}


def test_another_home_or_format_is_discarded(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.jsonl"
    save(tracker_with_one_file(), path)
    elsewhere = RolloutTracker(CodexHome(Path("/another-home")))
    assert load(elsewhere, path) == (False, None)
    assert elsewhere.files == {}

    lines = path.read_bytes().splitlines(keepends=True)
    header = json.loads(lines[0])
    header["v"] += 1
    path.write_bytes(json.dumps(header).encode() + b"\n" + b"".join(lines[1:]))
    tracker = RolloutTracker(CodexHome(HOME))
    assert load(tracker, path) == (False, None)
    assert tracker.files == {}


def test_a_truncated_or_corrupt_checkpoint_leaves_the_tracker_empty(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.jsonl"
    good = tracker_with_one_file()
    good.files[str(HOME / "sessions" / "b.jsonl")] = good.files[str(HOME / "sessions" / "a.jsonl")]
    save(good, path)
    data = path.read_bytes()
    header, chunk, _ = data.split(b"\n", 2)
    more = json.loads(header)
    more["files"] += 1
    columns = json.loads(chunk)
    for broken in (
        json.dumps(more).encode() + b"\n" + chunk + b"\n",  # fewer rows than announced
        header + b"\n" + chunk[:-5] + b"\n",  # a torn chunk
        header + b"\n" + b'["too", "few"]\n',  # a chunk of the wrong shape
        header + b"\n" + json.dumps({**columns, "nums": columns["nums"][1:]}).encode(),
        header + b"\n" + json.dumps({**columns, "title": [2, 2]}).encode(),
        header + b"\n" + json.dumps({**columns, "tids": [None, None]}).encode(),
        # numbers no stat result or count can hold: a negative inode, a size of 2**63
        header + b"\n" + json.dumps({**columns, "nums": [1, -2, *columns["nums"][2:]]}).encode(),
        header
        + b"\n"
        + json.dumps({**columns, "nums": [1, 2, 2**63, *columns["nums"][3:]]}).encode(),
        b"[]\n",  # a header that is not an object
        b"\xff\xfe\n",
    ):
        path.write_bytes(broken)
        tracker = RolloutTracker(CodexHome(HOME))
        assert load(tracker, path) == (False, None), broken
        assert tracker.files == {}, broken


@given(state=file_state_st(str(HOME / "sessions" / "a.jsonl")))
def test_a_resumed_reader_is_stored_back_as_the_same_state(state: FileState) -> None:
    scan = state.resume()
    assert (scan.offset, scan.lines, scan.bare) == (state.offset, state.lines, state.bare)
    assert scan.facts is state.facts and not scan.keep_text
    assert scan.usable == state.usable
    st = SimpleNamespace(
        st_dev=state.dev, st_ino=state.ino, st_size=state.size, st_mtime_ns=state.mtime_ns
    )
    again = FileState.of(scan, cast(os.stat_result, st))
    expected = state.expected_id
    assert again.nums == state.nums and again.facts is state.facts
    # an expected id equal to the thread id is stored as that very string
    assert again.expected_id == expected
    assert again.same_file(pack_stat(cast(os.stat_result, st)))


def test_a_verified_record_of_the_wrong_type_is_discarded(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.jsonl"
    save(tracker_with_one_file(), path, Verified("p", (1, 2, 3, 4), None, None, {TID: 1}, [TID]))
    header, rest = path.read_bytes().split(b"\n", 1)
    record = json.loads(header)
    record["verified"]["index_fp"] = [1, 2, 3]  # a fingerprint has four integers
    path.write_bytes(json.dumps(record).encode() + b"\n" + rest)
    tracker = RolloutTracker(CodexHome(HOME))
    assert load(tracker, path) == (False, None)
    assert tracker.files == {}


def test_a_rename_appended_after_a_load_goes_to_that_thread_alone(tmp_path: Path) -> None:
    from codex_indexd.index.model import NO_RENAMES
    from tests.support.homes import build_home, new_thread, rollout_path, thread_renamed

    threads = [new_thread(i) for i in range(2)]
    home = build_home(tmp_path / "h", threads, db=False)
    tracker = RolloutTracker(CodexHome(home))
    tracker.full_scan()
    save(tracker, tmp_path / "cp")
    loaded = RolloutTracker(CodexHome(home))
    assert load(loaded, tmp_path / "cp")[0]
    facts = loaded.facts()
    assert all(facts[t.thread_id].renames is NO_RENAMES for t in threads)  # one shared list
    path = rollout_path(home, threads[0])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(
            thread_renamed(threads[0].thread_id, "new name", "2026-01-02T03:04:05Z") + "\n"
        )
    assert loaded.refresh(path)
    facts = loaded.facts()
    assert [r.name for r in facts[threads[0].thread_id].renames] == ["new name"]
    assert facts[threads[1].thread_id].renames == []
    assert len(NO_RENAMES) == 0
    with pytest.raises(TypeError):
        NO_RENAMES.append(Rename("x", "2026-01-02T03:04:05Z", None))
    assert len(NO_RENAMES) == 0


def test_a_record_digests_the_same_with_its_rows_digested_on_the_fly() -> None:
    from codex_indexd.daemon.checkpoint import RowDigests, record_digest, row_digest
    from codex_indexd.index.model import ThreadRow

    rows = {
        f"t{i}": ThreadRow(f"t{i}", None, "a", "a", None, i, i + 1, bool(i % 2))
        for i in range(2500)  # more than one piece
    }
    lazy = Verified("p", (1, 2, 3, 4), None, "db", RowDigests(rows), ["t1"])
    eager = Verified(
        "p", (1, 2, 3, 4), None, "db", {t: row_digest(r) for t, r in rows.items()}, ["t1"]
    )
    assert record_digest(lazy) == record_digest(eager)
    changed = dict(rows, t7=rows["t7"]._replace(archived=not rows["t7"].archived))
    assert record_digest(Verified("p", (1, 2, 3, 4), None, "db", RowDigests(changed), ["t1"])) != (
        record_digest(eager)
    )
    assert lazy.to_json()["rows"] == eager.to_json()["rows"]


def test_packed_turns_cut_by_counts_must_cover_them() -> None:
    from array import array

    data = array("q", range(9))
    assert [len(t) for t in Turns.split(data, [1, 0, 2], None)] == [1, 0, 2]
    assert list(Turns.split(data, [3], ["a", None, "b"])[0].texts or []) == ["a", None, "b"]
    with pytest.raises(ValueError):
        Turns.split(data, [1, 1], None)


def test_the_collector_runs_again_after_a_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    from codex_indexd.daemon.home_worker import HomeWorker
    from codex_indexd.index.model import Policy
    from codex_indexd.write.backup import BackupPolicy
    from tests.support.homes import build_home, new_thread

    monkeypatch.setenv("CODEX_INDEXD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CODEX_INDEXD_STATE_DIR", str(tmp_path / "state"))
    home = build_home(tmp_path / "h", [new_thread(0)], db=False)
    worker = HomeWorker(CodexHome.at(home), Policy(max_threads=0), BackupPolicy())
    assert gc.isenabled()
    worker.start()
    assert worker.started and gc.isenabled()
    assert len(worker.tracker.files) == 1


@given(
    rows=st.dictionaries(st.text(min_size=1, max_size=3), ints, max_size=2600),
    restored=st.lists(st.text(max_size=3), max_size=2600),
)
@settings(deadline=None, max_examples=20)
def test_the_header_written_in_pieces_is_the_whole_header(
    rows: dict[str, int], restored: list[str]
) -> None:
    """Row digests and restored ids beyond one piece (1,024) give the very line that one
    encoding of the whole header gives."""
    from codex_indexd.daemon.checkpoint import FORMAT_VERSION, _header

    tracker = tracker_with_one_file()
    verified = Verified("p", (1, 2, 3, 4), None, None, rows, restored)
    whole = {"v": FORMAT_VERSION, "home": str(HOME), "files": 1, "verified": verified.to_json()}
    expected = json.dumps(whole, ensure_ascii=True, separators=(",", ":")).encode() + b"\n"
    assert b"".join(_header(tracker, verified)) == expected
    assert b"".join(_header(tracker, None)).endswith(b',"verified":null}\n')


def test_a_save_holds_no_whole_verified_record(tmp_path: Path) -> None:
    """Saving a record of 50,000 threads allocates at most the writer's buffer at once (its
    1 MiB of pieces and their join), not the 5 MB header line nor the record decoded."""
    import tracemalloc

    tids = [f"{i:08d}-0000-7000-8000-000000000000" for i in range(50_000)]
    verified = Verified("p", None, None, None, dict.fromkeys(tids, 2**63 - 1), tids)
    path = tmp_path / "checkpoint.jsonl"
    tracker = tracker_with_one_file()
    tracemalloc.start()
    try:
        save(tracker, path, verified)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    header = path.read_bytes().split(b"\n", 1)[0]
    assert len(header) > 4_000_000
    assert peak < 3 << 20
    assert load(RolloutTracker(CodexHome(HOME)), path)[1] == verified
