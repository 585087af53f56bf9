"""Merging the ledgers of shards: one report and one table, and what cannot be merged."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from bulkinvoke.errors import MergeError
from bulkinvoke.export.frame import read_ledger
from bulkinvoke.ledger.store import Event, Ledger
from bulkinvoke.reports.model import build_report
from bulkinvoke.states import State


def make_shard(
    run_dir: Path,
    rows: list[int],
    shard: dict[str, int] | None,
    *,
    fingerprint: str = "sha256:m",
    endpoint: str = "ep",
) -> Path:
    plan = pa.table(
        {"row": pa.array(rows, pa.int64()), "input_location": [f"s3://in/{r}" for r in rows]}
    )
    config: dict[str, Any] = {
        "version": 1,
        "created_at": 1_700_000_000.0 + len(rows),
        "manifest": {"source": "m.csv", "fingerprint": fingerprint},
        "options": {"endpoint": endpoint, "request": {}, "id_namespace": ""},
        "shard": shard,
    }
    with Ledger.create(run_dir, config, plan) as ledger:
        now = time.time()
        for row in rows:
            state = State.FAILED if row % 3 == 0 else State.SUCCEEDED
            ledger.record(Event(row, 1, state, now, error="boom" if row % 3 == 0 else None))
    return run_dir


def test_shards_merge_into_one_report_and_one_table(tmp_path: Path) -> None:
    a = make_shard(tmp_path / "a", [1, 4, 5], {"index": 0, "count": 3})
    b = make_shard(tmp_path / "b", [2, 3, 6], {"index": 2, "count": 3})
    report = build_report([b, a])
    assert report["items"] == 6
    assert report["counts"]["failed"] == 2 and report["counts"]["succeeded"] == 4
    assert report["failures"]["groups"][0]["examples"] == ["s3://in/3", "s3://in/6"]
    assert report["run"]["shards"] == {"count": 3, "included": [0, 2], "missing": [1]}
    assert report["run"]["created_at"] == "2023-11-14T22:13:23.000+00:00"
    assert build_report(a)["run"]["shards"] == {"count": 3, "included": [0], "missing": [1, 2]}
    assert read_ledger([a, b])["row"].tolist() == [1, 2, 3, 4, 5, 6]


SECOND = {"index": 1, "count": 2}


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ({"rows": [2], "shard": {"index": 0, "count": 2}}, "both shard 0/2"),
        ({"rows": [2], "shard": {"index": 1, "count": 3}}, "same split"),
        ({"rows": [2], "shard": None}, "same split"),
        ({"rows": [2], "shard": SECOND, "fingerprint": "x"}, "different manifests"),
        ({"rows": [2], "shard": SECOND, "endpoint": "other"}, "differ in endpoint"),
        ({"rows": [1, 2], "shard": SECOND}, "row 1 is in more than one"),
    ],
)
def test_runs_that_are_not_parts_of_one_run_are_refused(
    tmp_path: Path, second: dict[str, Any], message: str
) -> None:
    first = make_shard(tmp_path / "a", [1], {"index": 0, "count": 2})
    other = make_shard(tmp_path / "b", **second)
    with pytest.raises(MergeError, match=message):
        build_report([first, other])
