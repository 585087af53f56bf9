"""The S3 mirror of a ledger and its lease, against moto's S3 (which honours conditional writes)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from bulkinvoke.events import Subscribers
from bulkinvoke.lease import Lease, LeaseHeld, LeaseLost
from bulkinvoke.ledger import Event, Ledger
from bulkinvoke.mirror import LedgerMirror, MirrorError, MirrorSettings, open_mirror
from bulkinvoke.states import State

BUCKET = "mirrors"
ROWS = 6


@pytest.fixture
def prefix(s3: Any) -> str:
    s3.create_bucket(Bucket=BUCKET)
    return f"run-{uuid.uuid4().hex[:8]}/"


def _ledger(run_dir: Path) -> Ledger:
    plan = pa.table(
        {
            "row": pa.array(range(1, ROWS + 1), pa.int64()),
            "input_location": [f"s3://in/{i}" for i in range(1, ROWS + 1)],
        }
    )
    config = {"version": 1, "manifest": {"source": "m.csv", "fingerprint": "f"}, "options": {}}
    return Ledger.create(run_dir, config, plan)


def _flush(ledger: Ledger, row: int, state: State) -> None:
    ledger.record(Event(row, 1, state, time.time(), inference_id=f"id-{row}"))
    ledger.flush()


def _keys(s3: Any, prefix: str) -> set[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {item["Key"][len(prefix) :] for item in listed}


def _states(run_dir: Path) -> list[str]:
    with Ledger.open(run_dir, writable=False) as ledger:
        return ledger.latest()["state"].to_pylist()


def test_mirror_follows_compactions_and_a_new_machine_continues_from_it(
    s3: Any, prefix: str, tmp_path: Path
) -> None:
    settings = MirrorSettings(f"s3://{BUCKET}/{prefix}", lease_seconds=30)
    original = tmp_path / "a"
    with _ledger(original) as ledger:
        for row in (1, 2, 3):
            _flush(ledger, row, State.SUBMITTED)
        ledger.compact()
        _flush(ledger, 4, State.SUBMITTED)
        mirror = LedgerMirror(s3, settings, original, Subscribers())
        mirror.acquire()
        mirror.sync()
        expected = {"run.json", "plan.parquet", "_lease.json"}
        assert _keys(s3, prefix) == expected | {
            "events/c-000000000003.parquet", "events/b-000000000004.parquet"
        }
        _flush(ledger, 1, State.SUCCEEDED)
        ledger.compact()
        mirror.sync()
        # What the reader rule no longer needs is gone: Athena sees each event once.
        assert _keys(s3, prefix) == expected | {"events/c-000000000005.parquet"}
        mirror.release()

    moved = tmp_path / "b"
    with open_mirror(moved, settings, s3, Subscribers()) as mirror, Ledger.open(moved) as copy:
        assert mirror is not None
        assert _states(moved) == _states(original)
        _flush(copy, 2, State.FAILED)
        assert mirror.final_sync() is None

    # The other machine went on: the first one's copy is behind and must not overwrite it.
    with pytest.raises(MirrorError, match="is ahead of"), open_mirror(
        original, settings, s3, Subscribers()
    ):
        pass


def test_a_lease_is_taken_over_only_after_it_expires(s3: Any, prefix: str, tmp_path: Path) -> None:
    key = prefix + "_lease.json"
    first = Lease(s3, BUCKET, key, seconds=1, run_dir=tmp_path / "a")
    second = Lease(s3, BUCKET, key, seconds=30, run_dir=tmp_path / "b")
    first.acquire()
    with pytest.raises(LeaseHeld, match=r"held by another live bulkinvoke process .*tmp"):
        second.acquire()
    deadline = time.monotonic() + 10
    while True:
        try:
            second.acquire()
            break
        except LeaseHeld:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    with pytest.raises(LeaseLost, match="taken by another process"):
        first.renew()
    first.release()  # a lost lease is not given up: it is no longer this process's
    holder = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert holder["owner"] == second.owner
    second.release()
    Lease(s3, BUCKET, key, seconds=30, run_dir=tmp_path / "c").acquire()  # released: free


def test_a_mirror_whose_lease_changed_hands_stops_and_says_why(
    s3: Any, prefix: str, tmp_path: Path
) -> None:
    run_dir = tmp_path / "a"
    with _ledger(run_dir):
        mirror = LedgerMirror(s3, MirrorSettings(f"s3://{BUCKET}/{prefix}"), run_dir, Subscribers())
        mirror.acquire()
        # What a store without conditional writes allows: another writer overwrites the lease.
        s3.put_object(Bucket=BUCKET, Key=prefix + "_lease.json", Body=b'{"owner": "x"}')
        problem = mirror.final_sync()
        mirror.release()
    assert problem is not None and "taken by another process" in problem
    assert "run.json" not in _keys(s3, prefix)


def test_of_writers_racing_for_a_lease_exactly_one_wins(
    s3: Any, prefix: str, tmp_path: Path
) -> None:
    leases = [
        Lease(s3, BUCKET, prefix + "_lease.json", seconds=30, run_dir=tmp_path / str(i))
        for i in range(6)
    ]
    start = threading.Barrier(len(leases))
    won: list[Lease] = []

    def race(lease: Lease) -> None:
        start.wait()
        try:
            lease.acquire()
            won.append(lease)
        except LeaseHeld:
            pass

    threads = [threading.Thread(target=race, args=(lease,)) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    holder = json.loads(s3.get_object(Bucket=BUCKET, Key=prefix + "_lease.json")["Body"].read())
    assert holder["owner"] == won[0].owner
