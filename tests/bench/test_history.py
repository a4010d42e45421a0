"""bench.history compares runs: a regression shows as a changed, marked number."""

from __future__ import annotations

import json
from pathlib import Path

from bench.history import change, numbers, runs, table


def _write(directory: Path, utc: str, **figures: object) -> None:
    (directory / f"load-{utc}.json").write_text(json.dumps({"bench": "load", "utc": utc,
                                                            **figures}))


def test_runs_are_grouped_by_bench_and_ordered_by_time(tmp_path: Path) -> None:
    _write(tmp_path, "20261124T020000Z", p99_ms=80.0)
    _write(tmp_path, "20261123T020000Z", p99_ms=70.0)
    (tmp_path / "notes-20261124T000000Z.json").write_text("not json")
    found = runs(tmp_path)
    assert list(found) == ["load"]
    assert [f["p99_ms"] for f in found["load"]] == [70.0, 80.0]


def test_nested_figures_are_named_by_their_path_and_text_is_left_out() -> None:
    flat = numbers({"bench": "load", "utc": "x", "server_version": "18.6", "met": True,
                    "by_request": {"GET /v1/me": {"p99_ms": 12.5}}})
    assert flat == {"met": 1.0, "by_request.GET /v1/me.p99_ms": 12.5}


def test_a_change_beyond_the_threshold_is_marked(tmp_path: Path) -> None:
    _write(tmp_path, "20261123T020000Z", p99_ms=50.0, requests_per_second=1000.0)
    _write(tmp_path, "20261124T020000Z", p99_ms=80.0, requests_per_second=1040.0)
    lines = table("load", runs(tmp_path)["load"], threshold=10.0)
    p99 = next(line for line in lines if line.startswith("p99_ms"))
    rate = next(line for line in lines if line.startswith("requests_per_second"))
    assert p99.endswith("+60.0% <<")
    assert rate.endswith("+4.0%")
    assert change(0.0, 5.0) is None
