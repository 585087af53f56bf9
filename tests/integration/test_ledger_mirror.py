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
from botocore.exceptions import ReadTimeoutError

from bulkinvoke.errors import LeaseHeld, LeaseLost, MirrorError
from bulkinvoke.events import Subscribers
from bulkinvoke.ledger.store import Event, Ledger
from bulkinvoke.scale.lease import Lease
from bulkinvoke.scale.mirror import LedgerMirror, open_mirror
from bulkinvoke.scale.mirror_settings import MirrorSettings
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
            "events/c-000000000003.parquet",
            "events/b-000000000004.parquet",
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
    with (
        pytest.raises(MirrorError, match="went on without"),
        open_mirror(original, settings, s3, Subscribers()),
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


def test_a_stalled_holder_writes_nothing_once_its_lease_may_have_run_out(
    s3: Any, prefix: str, tmp_path: Path
) -> None:
    key = prefix + "_lease.json"
    stalled = Lease(s3, BUCKET, key, seconds=1, run_dir=tmp_path / "a")
    stalled.acquire()  # and then this process pauses: no renewing thread runs
    time.sleep(1.5)
    # Nobody took it meanwhile: the holder renews it before writing, and goes on.
    stalled.ensure_held()
    holder = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert holder["owner"] == stalled.owner and holder["seconds"] == 1
    time.sleep(2.5)  # the lease, and the second S3's whole-second clock may hide
    taker = Lease(s3, BUCKET, key, seconds=30, run_dir=tmp_path / "b")
    taker.acquire()
    # Taken meanwhile: the clock alone says "renew first", and renewing fails.
    with pytest.raises(LeaseLost):
        stalled.ensure_held()

    taker.release()


def test_a_directory_that_diverged_from_its_mirror_is_refused(
    s3: Any, prefix: str, tmp_path: Path
) -> None:
    settings = MirrorSettings(f"s3://{BUCKET}/{prefix}", lease_seconds=30)
    first = tmp_path / "a"
    with _ledger(first) as ledger, open_mirror(first, settings, s3, Subscribers()) as mirror:
        assert mirror is not None
        _flush(ledger, 1, State.SUBMITTED)
        assert mirror.final_sync() is None
        # Written here but never mirrored: then this machine goes away.
        _flush(ledger, 2, State.SUBMITTED)
        _flush(ledger, 3, State.SUBMITTED)

    second = tmp_path / "b"
    with open_mirror(second, settings, s3, Subscribers()) as mirror, Ledger.open(second) as copy:
        assert mirror is not None
        _flush(copy, 1, State.SUCCEEDED)  # the same sequence number as the first's unsent one
        assert mirror.final_sync() is None

    with (
        pytest.raises(MirrorError, match="went on without"),
        open_mirror(first, settings, s3, Subscribers()),
    ):
        pass
    assert _states(second)[0] == "succeeded"


def test_a_prefix_holding_another_run_is_refused_before_anything_is_written(
    s3: Any, prefix: str, tmp_path: Path
) -> None:
    settings = MirrorSettings(f"s3://{BUCKET}/{prefix}", lease_seconds=30)
    with (
        _ledger(tmp_path / "a") as ledger,
        open_mirror(tmp_path / "a", settings, s3, Subscribers()) as mirror,
    ):
        assert mirror is not None
        _flush(ledger, 1, State.SUBMITTED)
        assert mirror.final_sync() is None
    before = {k: s3.head_object(Bucket=BUCKET, Key=prefix + k)["ETag"] for k in _keys(s3, prefix)}

    other = tmp_path / "other"
    plan = pa.table({"row": pa.array([1], pa.int64()), "input_location": ["s3://in/x"]})
    config = {"version": 1, "manifest": {"source": "o.csv", "fingerprint": "o"}, "options": {}}
    with Ledger.create(other, config, plan) as ledger:
        for _ in range(4):
            _flush(ledger, 1, State.SUBMITTED)  # further on than the mirrored run
    with (
        pytest.raises(MirrorError, match="holds another run"),
        open_mirror(other, settings, s3, Subscribers()),
    ):
        pass

    refused: list[dict[str, Any]] = []

    def refuse(config: dict[str, Any]) -> None:
        refused.append(config)
        raise MirrorError("not the run being submitted")

    empty = tmp_path / "new"
    with (
        pytest.raises(MirrorError, match="not the run"),
        open_mirror(empty, settings, s3, Subscribers(), check_run=refuse),
    ):
        pass
    assert refused and not (empty / "run.json").exists(), "nothing downloaded"
    after = {k: s3.head_object(Bucket=BUCKET, Key=prefix + k)["ETag"] for k in _keys(s3, prefix)}
    assert {k: v for k, v in after.items() if k != "_lease.json"} == {
        k: v for k, v in before.items() if k != "_lease.json"
    }


def test_losing_the_lease_stops_the_run(s3: Any, prefix: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "a"
    reasons: list[str] = []
    with _ledger(run_dir) as ledger:
        _flush(ledger, 1, State.SUBMITTED)
        mirror = LedgerMirror(s3, MirrorSettings(f"s3://{BUCKET}/{prefix}"), run_dir, Subscribers())
        mirror.acquire()
        s3.put_object(Bucket=BUCKET, Key=prefix + "_lease.json", Body=b'{"owner": "x"}')
        with mirror.running(on_lost=reasons.append):
            deadline = time.monotonic() + 10
            while not reasons and time.monotonic() < deadline:
                time.sleep(0.05)
        mirror.release()
    assert reasons and "another process" in reasons[0]


def _not_md5(etag: str) -> str:
    return '"' + etag.strip('"')[::-1] + '-1"'


class _KmsLikeS3:
    """moto's S3 as a bucket with SSE-KMS shows it to the mirror: ETags that are not the MD5 of
    the content (the lease object is left alone: its ETags must work in If-Match)."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)

    def put_object(self, **args: Any) -> Any:
        response = self._s3.put_object(**args)
        if args["Key"].endswith("_lease.json"):
            return response
        return {**response, "ETag": _not_md5(response["ETag"])}

    def get_paginator(self, name: str) -> Any:
        paginator = self._s3.get_paginator(name)

        class _Pages:
            def paginate(self, **args: Any) -> Any:
                for page in paginator.paginate(**args):
                    listed = page.get("Contents", [])
                    contents = [{**item, "ETag": _not_md5(item["ETag"])} for item in listed]
                    yield {**page, "Contents": contents}

        return _Pages()


def test_etags_that_are_not_md5_neither_block_a_resume_nor_hide_a_divergence(
    s3: Any, prefix: str, tmp_path: Path
) -> None:
    kms = _KmsLikeS3(s3)
    settings = MirrorSettings(f"s3://{BUCKET}/{prefix}", lease_seconds=30)
    first = tmp_path / "a"
    with _ledger(first) as ledger, open_mirror(first, settings, kms, Subscribers()) as mirror:
        assert mirror is not None
        _flush(ledger, 1, State.SUBMITTED)
        ledger.compact()
        _flush(ledger, 2, State.SUBMITTED)
        assert mirror.final_sync() is None
    for _ in range(2):  # with mirror.json, then as a run mirrored before it existed
        with (
            open_mirror(first, settings, kms, Subscribers()) as mirror,
            Ledger.open(first) as ledger,
        ):
            assert mirror is not None
            _flush(ledger, 3, State.SUBMITTED)
            assert mirror.final_sync() is None
        (first / "mirror.json").unlink()

    second = tmp_path / "b"
    with open_mirror(second, settings, kms, Subscribers()) as mirror, Ledger.open(second) as copy:
        assert mirror is not None
        _flush(copy, 1, State.SUCCEEDED)
        assert mirror.final_sync() is None
    with Ledger.open(first) as ledger:
        _flush(ledger, 4, State.SUBMITTED)  # the same sequence number as the second's
    with (
        pytest.raises(MirrorError, match="went on without"),
        open_mirror(first, settings, kms, Subscribers()),
    ):
        pass


class _LosesOneLeaseAnswer:
    """S3 that writes the lease and then loses the answer, once, when armed."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)

    def put_object(self, **args: Any) -> Any:
        response = self._s3.put_object(**args)
        if self.armed:
            self.armed = False
            raise ReadTimeoutError(endpoint_url="http://s3")
        return response


def test_a_renewal_whose_answer_was_lost_keeps_the_lease(
    s3: Any, prefix: str, tmp_path: Path
) -> None:
    flaky = _LosesOneLeaseAnswer(s3)
    lease = Lease(flaky, BUCKET, prefix + "_lease.json", seconds=30, run_dir=tmp_path)
    lease.acquire()
    flaky.armed = True
    with pytest.raises(ReadTimeoutError):
        lease.renew()
    lease.renew()
    lease.ensure_held()
    holder = json.loads(s3.get_object(Bucket=BUCKET, Key=prefix + "_lease.json")["Body"].read())
    assert holder["owner"] == lease.owner and lease.lost is None
    lease.release()
