"""Fast checks of the table script: rows from both benchmarks' JSON, and a whole `--quick` run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench import bench_table as table


def repair_json(cat: float, ours: float, seed: float | None, rss: float) -> dict[str, object]:
    summary = {"cat_wall": cat, "ours_wall": ours, "seed_wall": seed, "ours_max_rss_mib": rss}
    report = {"shape": "small-lines", "corpus_mib": 503.2, "rollouts": 250, "summary": summary}
    return {"reports": [report]}


def test_repair_rows_give_ratios_and_verdicts() -> None:
    rows = {
        row.measure.split(": ", 1)[1]: row
        for row in table.repair_rows(repair_json(0.1, 0.15, 3.0, 30.0))
    }
    assert rows["ours / cat"].value == "1.50x" and rows["ours / cat"].met == "yes"
    assert rows["old script / ours"].value == "20.0x"
    assert rows["ours peak RSS (largest run)"].met == "yes"
    missed = {
        row.measure.split(": ", 1)[1]: row
        for row in table.repair_rows(repair_json(0.1, 0.25, None, 49.0))
    }
    assert missed["ours / cat"].met == "NO" and missed["ours peak RSS (largest run)"].met == "NO"
    assert "old script" not in missed  # no seed run: no seed rows


def test_daemon_rows_keep_only_start_figures() -> None:
    data = {
        "rows": [
            {
                "measure": "warm start to READY, 10 sessions",
                "value": 0.5,
                "unit": "s",
                "target": "<= 1 s",
                "met": True,
            },
            {
                "measure": "idle CPU, 10 sessions",
                "value": 0.0,
                "unit": "%",
                "target": "-",
                "met": None,
            },
            {
                "measure": "VmHWM after cold READY, 10 sessions",
                "value": None,
                "unit": "MiB",
                "target": "-",
                "met": None,
            },
        ],
        "failures": [],
    }
    rows = table.daemon_rows(data)
    assert [(r.value, r.met) for r in rows] == [("0.50 s", "yes"), ("n/a", "-")]
    assert table.markdown(rows).splitlines()[2] == (
        "| daemon warm start to READY, 10 sessions | 0.50 s | <= 1 s | yes |"
    )


def test_quick_run_prints_one_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """About 15 s: 2 MiB corpora of both shapes, one rep, one daemon start run of 200 sessions."""
    assert (
        table.main(["--quick", "--workdir", str(tmp_path), "--json", str(tmp_path / "t.json")]) == 0
    )
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("|")]
    assert lines[0] == "| measure | value | target | met |"
    for shape in ("huge-lines", "small-lines"):
        assert any(f"{shape} 2 MiB" in line and "ours / cat" in line for line in lines)
    assert any("daemon warm start to READY, 200 sessions" in line for line in lines)
    assert not any("n/a" in line for line in lines if "ours" in line)
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]  # work dir removed
