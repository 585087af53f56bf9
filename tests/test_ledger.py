"""The ledger: round trips, the fold, durability under kill -9, compaction, the lock, damage."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bulkinvoke
from bulkinvoke.errors import LedgerCorrupt, LedgerError, LedgerLocked, LedgerWriteError, RunExists
from bulkinvoke.export.frame import read_ledger
from bulkinvoke.ledger.schema import EVENT_COLUMNS, TIMESTAMPS
from bulkinvoke.ledger.store import Event, Ledger
from bulkinvoke.states import State

REPO = Path(__file__).resolve().parents[1]
T0 = 1_767_225_600.0


def make_plan(rows: int, **extra: list[Any]) -> pa.Table:
    return pa.table(
        {
            "row": pa.array(range(1, rows + 1), pa.int64()),
            "line": pa.array(range(2, rows + 2), pa.int64()),
            "input_location": [f"s3://bucket/data/{i:09d}.json" for i in range(rows)],
            **extra,
        }
    )


def records(table: pa.Table) -> list[dict[str, Any]]:
    """Rows of a table with times as epoch milliseconds, for exact comparison."""
    for name in TIMESTAMPS:
        if name in table.column_names:
            index = table.column_names.index(name)
            table = table.set_column(index, name, table[name].cast(pa.int64()))
    return table.to_pylist()


def reference_fold(events: list[Event]) -> list[dict[str, Any]]:
    """The fold as ARCHITECTURE.md states it, one event at a time."""
    folded: dict[tuple[int, int], dict[str, Any]] = {}
    for event in events:
        record = folded.setdefault((event.row, event.attempt), dict.fromkeys(EVENT_COLUMNS))
        for name in EVENT_COLUMNS:
            value = getattr(event, name)
            if name == "state":
                value = value.value
            elif name in TIMESTAMPS and value is not None:
                value = round(value * 1000)
            if value is not None or name in ("state", "at"):
                record[name] = value
    return [folded[key] for key in sorted(folded)]


def event_files(run_dir: Path) -> list[str]:
    return sorted(os.listdir(run_dir / "events"))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


@pytest.fixture
def ledger(run_dir: Path) -> Iterator[Ledger]:
    with Ledger.create(run_dir, {"name": "test"}, make_plan(10)) as opened:
        yield opened


# ---------------------------------------------------------------- round trip and fold


def test_events_round_trip(ledger: Ledger) -> None:
    events = [
        Event(1, 1, State.SUBMITTING, T0 + 0.001),
        Event(
            1,
            1,
            State.SUBMITTED,
            T0 + 0.25,
            inference_id="bi-abc",
            submitted_at=T0 + 0.2,
            output_location="s3://bucket/out/bi-abc.out",
            failure_location="s3://bucket/fail/bi-abc-error.out",
            retries=2,
            throttles=1,
        ),
        Event(2, 1, State.REJECTED, T0 + 1, error="ValidationError: too long"),
        Event(1, 1, State.SUCCEEDED, T0 + 9, completed_at=T0 + 8.5, output_bytes=2**40),
    ]
    ledger.record_many(events[:2])
    ledger.record(events[2])
    ledger.flush()
    ledger.record(events[3])
    ledger.flush()
    assert records(ledger.attempts()) == reference_fold(events)
    assert records(Ledger.open(ledger.run_dir, writable=False).attempts()) == reference_fold(events)


def test_fold_takes_state_from_last_event_and_other_columns_from_last_non_null(
    ledger: Ledger,
) -> None:
    ledger.record_many(
        [
            Event(3, 1, State.SUBMITTING, T0, retries=0),
            Event(3, 1, State.SUBMITTED, T0 + 1, inference_id="bi-1", retries=3, error="slow"),
            Event(3, 2, State.SUBMITTING, T0 + 2),
        ]
    )
    ledger.flush()
    ledger.record_many(
        [
            Event(3, 1, State.EXPIRED, T0 + 5, error=None),
            Event(3, 1, State.SUCCEEDED, T0 + 6, output_bytes=7),
        ]
    )
    ledger.flush()
    first, second = ledger.attempts().to_pylist()
    assert (first["state"], first["inference_id"], first["retries"]) == ("succeeded", "bi-1", 3)
    assert (first["error"], first["output_bytes"]) == ("slow", 7)
    assert first["at"].timestamp() == T0 + 6
    assert (second["attempt"], second["state"], second["inference_id"]) == (2, "submitting", None)


def test_attempts_see_durable_events_only(ledger: Ledger) -> None:
    ledger.record(Event(1, 1, State.SUBMITTING, T0))
    assert ledger.pending_events == 1
    assert ledger.attempts().num_rows == 0
    ledger.flush()
    assert ledger.pending_events == 0
    assert ledger.attempts().num_rows == 1


def test_attempts_reads_only_the_columns_asked_for(ledger: Ledger) -> None:
    ledger.record(Event(1, 1, State.SUBMITTED, T0, inference_id="bi-x"))
    ledger.flush()
    table = ledger.attempts(["inference_id"])
    assert table.column_names == ["row", "attempt", "inference_id"]
    with pytest.raises(ValueError, match="not event columns"):
        ledger.attempts(["custom_attributes"])


def test_empty_flush_writes_no_file(ledger: Ledger) -> None:
    ledger.flush()
    assert event_files(ledger.run_dir) == []


def test_events_are_checked_when_made(ledger: Ledger) -> None:
    with pytest.raises(TypeError, match="state"):
        Event(1, 1, "submitted", T0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="retries"):
        Event(1, 1, State.SUBMITTED, T0, retries="3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="from 1"):
        Event(0, 1, State.SUBMITTED, T0)
    with pytest.raises(ValueError, match="finite"):
        Event(1, 1, State.SUBMITTED, T0, completed_at=float("nan"))
    with pytest.raises(TypeError, match="records Events"):
        ledger.record({"row": 1})  # type: ignore[arg-type]


def test_read_only_and_closed_ledgers_refuse_writes(ledger: Ledger) -> None:
    reader = Ledger.open(ledger.run_dir, writable=False)
    with pytest.raises(LedgerError, match="read-only"):
        reader.record(Event(1, 1, State.SUBMITTING, T0))
    with pytest.raises(LedgerError, match="read-only"):
        reader.compact()
    ledger.close()
    ledger.close()
    with pytest.raises(LedgerError, match="closed"):
        ledger.flush()


# ---------------------------------------------------------------- latest, counts, read_ledger


def test_latest_and_counts_follow_each_rows_latest_attempt(run_dir: Path) -> None:
    plan = make_plan(5, inference_id=[None, "own-2", None, None, None])
    with Ledger.create(run_dir, {}, plan) as ledger:
        ledger.record_many(
            [
                Event(1, 1, State.SUBMITTING, T0),
                Event(1, 1, State.FAILED, T0 + 1, error="boom"),
                Event(1, 2, State.SUBMITTED, T0 + 2, inference_id="bi-retry"),
                Event(2, 1, State.SUBMITTING, T0, inference_id="own-2"),
                Event(2, 1, State.SUCCEEDED, T0 + 3),
                Event(4, 1, State.REJECTED, T0, error="invalid"),
            ]
        )
        ledger.flush()
        ledger.compact()
        ledger.record(Event(1, 2, State.SUCCEEDED, T0 + 4))
        ledger.flush()
        latest = ledger.latest()
        counts = ledger.counts()
    assert latest["row"].to_pylist() == [1, 2, 3, 4, 5]
    assert latest["attempt"].to_pylist() == [2, 1, 0, 1, 0]
    assert latest["state"].to_pylist() == [
        "succeeded",
        "succeeded",
        "pending",
        "rejected",
        "pending",
    ]
    assert latest["inference_id"].to_pylist() == ["bi-retry", "own-2", None, None, None]
    assert latest["plan_inference_id"].to_pylist() == [None, "own-2", None, None, None]
    assert latest["error"].to_pylist() == [None, None, None, "invalid", None]
    assert counts == {
        State.PENDING: 2,
        State.SUBMITTING: 0,
        State.SUBMITTED: 0,
        State.SUCCEEDED: 2,
        State.FAILED: 0,
        State.EXPIRED: 0,
        State.REJECTED: 1,
    }


def test_events_of_rows_outside_the_plan_are_refused(ledger: Ledger) -> None:
    ledger.record(Event(11, 1, State.SUBMITTING, T0))
    ledger.flush()
    with pytest.raises(LedgerCorrupt, match="row 11"):
        ledger.counts()
    with pytest.raises(LedgerCorrupt, match="row 11"):
        ledger.latest()


def test_read_ledger_is_the_export_table(run_dir: Path) -> None:
    plan = make_plan(3, custom_attributes=["secret", None, None])
    with Ledger.create(run_dir, {}, plan) as ledger:
        ledger.record_many(
            [
                Event(1, 1, State.SUBMITTED, T0 + 1, inference_id="bi-a", submitted_at=T0),
                Event(1, 1, State.SUCCEEDED, T0 + 3, completed_at=T0 + 2.5, output_bytes=10),
                Event(2, 1, State.SUBMITTED, T0 + 1, submitted_at=T0, retries=1),
            ]
        )
    frame = read_ledger(run_dir)
    assert list(frame.columns) == [
        "row",
        "input_location",
        "inference_id",
        "state",
        "attempts",
        "output_location",
        "failure_location",
        "error",
        "submitted_at",
        "completed_at",
        "latency_s",
        "retries",
        "throttles",
        "output_bytes",
        "duplicate_of",
    ]
    assert "secret" not in frame.to_string()
    assert frame["duplicate_of"].isna().all()
    assert list(frame["state"]) == ["succeeded", "submitted", "pending"]
    assert list(frame["attempts"]) == [1, 1, 0]
    assert frame["latency_s"][0] == 2.5
    assert frame["latency_s"][1:].isna().all()
    assert str(frame["submitted_at"].dtype.tz) == "UTC"
    assert frame["completed_at"][0].timestamp() == T0 + 2.5
    assert frame["output_bytes"][0] == 10
    assert frame["retries"][1] == 1
    assert bulkinvoke.read_ledger is read_ledger


def test_a_duplicate_row_is_exported_with_the_result_of_the_row_it_repeats(
    run_dir: Path,
) -> None:
    plan = make_plan(3)
    # Manifest rows 1, 2, 4 were planned; 3 and 5 repeat rows 1 and 4.
    plan = plan.set_column(0, "row", pa.array([1, 2, 4], pa.int64()))
    duplicates = pa.table({"row": [3, 5], "first_row": [1, 4]})
    with Ledger.create(run_dir, {}, plan, duplicates) as ledger:
        ledger.record(Event(1, 1, State.SUCCEEDED, T0 + 3, completed_at=T0 + 2.5))
        ledger.record(Event(4, 1, State.FAILED, T0 + 3, error="boom"))
    frame = read_ledger(run_dir)
    assert frame["row"].tolist() == [1, 2, 3, 4, 5]
    assert frame["state"].tolist() == ["succeeded", "pending", "succeeded", "failed", "failed"]
    assert frame["duplicate_of"].tolist()[2:] == [1, pd.NA, 4] and frame["duplicate_of"][0] is pd.NA
    assert frame["input_location"][2] == frame["input_location"][0]
    assert frame["error"][4] == "boom"
    with Ledger.open(run_dir, writable=False) as ledger:
        assert ledger.counts()[State.FAILED] == 1, "counts are of items: a duplicate is one"


def test_importing_the_ledger_imports_neither_pyarrow_nor_pandas() -> None:
    code = (
        "import sys, bulkinvoke, bulkinvoke.ledger.store;"
        "loaded = {'pyarrow', 'pandas', 'numpy', 'typer', 'rich'} & set(sys.modules);"
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# ---------------------------------------------------------------- the run directory


def test_run_dir_is_private_and_run_json_pretty(run_dir: Path) -> None:
    with Ledger.create(run_dir, {"endpoint": "ep", "n": 1}, make_plan(2)) as ledger:
        ledger.save_config({**ledger.config, "n": 2})
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((run_dir / "events").stat().st_mode) == 0o700
    text = (run_dir / "run.json").read_text()
    assert text == json.dumps({"endpoint": "ep", "n": 2}, indent=2) + "\n"
    assert Ledger.open(run_dir, writable=False).config == {"endpoint": "ep", "n": 2}
    assert sorted(os.listdir(run_dir)) == ["events", "lock", "plan.parquet", "run.json"]


def test_create_refuses_an_existing_run_and_a_foreign_directory(tmp_path: Path) -> None:
    Ledger.create(tmp_path / "run", {}, make_plan(1)).close()
    assert Ledger.exists(tmp_path / "run")
    with pytest.raises(RunExists):
        Ledger.create(tmp_path / "run", {}, make_plan(1))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("mine")
    with pytest.raises(LedgerError, match="not empty"):
        Ledger.create(tmp_path / "home", {}, make_plan(1))


def test_create_after_an_interrupted_create_starts_over(run_dir: Path) -> None:
    run_dir.mkdir()
    (run_dir / "plan.parquet").write_bytes(b"half a plan")
    (run_dir / ".run.json.123.tmp").write_bytes(b"{")
    assert not Ledger.exists(run_dir)
    with Ledger.create(run_dir, {"ok": True}, make_plan(3)) as ledger:
        assert ledger.plan().num_rows == 3


def test_plan_is_stored_sorted_and_checked(run_dir: Path) -> None:
    shuffled = make_plan(4).take([2, 0, 3, 1])
    with Ledger.create(run_dir, {}, shuffled) as ledger:
        assert ledger.plan(["row"])["row"].to_pylist() == [1, 2, 3, 4]
        with pytest.raises(ValueError, match="no column 'nope'"):
            ledger.plan(["nope"])
    with pytest.raises(ValueError, match="unique"):
        Ledger.create(run_dir.parent / "dup", {}, make_plan(2).take([0, 0]))
    with pytest.raises(ValueError, match="input_location"):
        Ledger.create(run_dir.parent / "bad", {}, pa.table({"row": [1]}))


def test_missing_or_damaged_run_files_are_clear_errors(run_dir: Path) -> None:
    with pytest.raises(LedgerError, match="not a bulkinvoke run directory"):
        Ledger.open(run_dir)
    Ledger.create(run_dir, {}, make_plan(2)).close()
    (run_dir / "run.json").write_text("{not json")
    with pytest.raises(LedgerCorrupt, match=r"run\.json"):
        Ledger.open(run_dir)
    (run_dir / "run.json").write_text("{}")
    plan = (run_dir / "plan.parquet").read_bytes()
    (run_dir / "plan.parquet").write_bytes(plan[: len(plan) // 2])
    with pytest.raises(LedgerCorrupt, match=r"plan\.parquet"):
        Ledger.open(run_dir, writable=False)
    (run_dir / "plan.parquet").unlink()
    with pytest.raises(LedgerError, match=r"plan\.parquet is missing"):
        Ledger.open(run_dir, writable=False)
    # A failed open must not keep the lock.
    (run_dir / "plan.parquet").write_bytes(plan)
    Ledger.open(run_dir).close()


# ---------------------------------------------------------------- damage and disk errors


def test_a_corrupt_batch_is_named_and_moving_it_aside_recovers(ledger: Ledger) -> None:
    for seq in range(3):
        ledger.record(Event(seq + 1, 1, State.SUBMITTED, T0 + seq))
        ledger.flush()
    ledger.close()
    damaged = ledger.run_dir / "events" / "b-000000000002.parquet"
    damaged.write_bytes(damaged.read_bytes()[:-20])
    reader = Ledger.open(ledger.run_dir, writable=False)
    for read in (reader.attempts, reader.counts, reader.latest):
        with pytest.raises(LedgerCorrupt) as caught:
            read()
        assert str(damaged) in str(caught.value)
        assert "move it out" in str(caught.value)
        assert "bulkinvoke resume" in str(caught.value)
    damaged.rename(ledger.run_dir / "b-000000000002.parquet.bad")
    with Ledger.open(ledger.run_dir) as again:
        assert again.attempts()["row"].to_pylist() == [1, 3]
        again.record(Event(2, 1, State.SUBMITTED, T0))
        again.flush()
        assert again.counts()[State.SUBMITTED] == 3
        again.compact()
    assert event_files(ledger.run_dir) == ["c-000000000004.parquet"]


def test_a_batch_with_foreign_columns_is_corrupt(ledger: Ledger) -> None:
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"row": [1]}), ledger.run_dir / "events" / "b-000000000001.parquet")
    with pytest.raises(LedgerCorrupt, match="b-000000000001"):
        ledger.attempts()


def test_a_corrupt_compaction_stops_a_writer_before_it_removes_anything(ledger: Ledger) -> None:
    ledger.record(Event(1, 1, State.SUBMITTED, T0))
    ledger.flush()
    ledger.compact()
    ledger.close()
    events = ledger.run_dir / "events"
    leftover = events / "b-000000000001.parquet"
    (events / "c-000000000001.parquet").write_bytes(b"PAR1 garbage")
    leftover.write_bytes(b"a leftover")
    with pytest.raises(LedgerCorrupt, match=r"c-000000000001\.parquet.*compacted history"):
        Ledger.open(ledger.run_dir)
    assert leftover.exists()


@pytest.mark.parametrize("failing_call", [1, 2])
def test_disk_full_during_flush_keeps_the_ledger_readable(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, failing_call: int
) -> None:
    """Call 1 is the fsync of the temp file, call 2 that of the directory after the rename."""
    first = Event(1, 1, State.SUBMITTED, T0, inference_id="bi-1")
    ledger.record(first)
    ledger.flush()
    later = [Event(2, 1, State.SUBMITTING, T0 + 1), Event(1, 1, State.SUCCEEDED, T0 + 2)]
    ledger.record_many(later)
    real_fsync = os.fsync
    calls = []

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == failing_call:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(LedgerWriteError, match="No space left on device"):
        ledger.flush()
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert ledger.pending_events == 2
    assert not [name for name in event_files(ledger.run_dir) if name.endswith(".tmp")]
    durable = Ledger.open(ledger.run_dir, writable=False).attempts()
    expected_then = [first] if failing_call == 1 else [first, *later]
    assert records(durable) == reference_fold(expected_then)
    ledger.flush()
    assert ledger.pending_events == 0
    assert records(ledger.attempts()) == reference_fold([first, *later])
    ledger.compact()
    assert records(ledger.attempts()) == reference_fold([first, *later])


def test_disk_full_during_compaction_changes_nothing(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [Event(row, 1, State.SUBMITTED, T0 + row) for row in range(1, 5)]
    for event in events:
        ledger.record(event)
        ledger.flush()
    before = event_files(ledger.run_dir)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(LedgerWriteError, match="c-000000000004"):
        ledger.compact()
    monkeypatch.undo()
    assert event_files(ledger.run_dir) == before
    assert records(ledger.attempts()) == reference_fold(events)


# ---------------------------------------------------------------- compaction


def test_compaction_keeps_the_fold_and_removes_what_it_folded(ledger: Ledger) -> None:
    events: list[Event] = []
    for step in range(6):
        batch = [
            Event(1 + step % 3, 1, State.SUBMITTED, T0 + step, retries=step),
            Event(5, 1 + step % 2, State.SUBMITTING, T0 + step, error=f"e{step}"),
        ]
        events += batch
        ledger.record_many(batch)
        ledger.flush()
        if step == 2:
            ledger.compact()
            assert event_files(ledger.run_dir) == ["c-000000000003.parquet"]
    assert records(ledger.attempts()) == reference_fold(events)
    ledger.compact()
    assert event_files(ledger.run_dir) == ["c-000000000006.parquet"]
    assert records(ledger.attempts()) == reference_fold(events)
    ledger.compact()
    assert event_files(ledger.run_dir) == ["c-000000000006.parquet"]


def test_leftovers_of_an_interrupted_compaction_are_ignored_then_removed(ledger: Ledger) -> None:
    # One attempt throughout, so that reading any leftover batch again would change its fold.
    events = [Event(1, 1, State.SUBMITTED, T0 + step, retries=step) for step in range(6)]
    for event in events[:3]:
        ledger.record(event)
        ledger.flush()
    ledger.compact()
    for event in events[3:]:
        ledger.record(event)
        ledger.flush()
    events_dir = ledger.run_dir / "events"
    saved = {name: (events_dir / name).read_bytes() for name in event_files(ledger.run_dir)}
    assert sorted(saved) == [
        "b-000000000004.parquet",
        "b-000000000005.parquet",
        "b-000000000006.parquet",
        "c-000000000003.parquet",
    ]
    ledger.compact()
    ledger.close()
    # As if the compaction was killed after its rename, before it removed what it folded.
    for name in ("b-000000000004.parquet", "c-000000000003.parquet"):
        (events_dir / name).write_bytes(saved[name])
    (events_dir / ".c-000000000009.parquet.99.tmp").write_bytes(b"half written")
    (events_dir / ".b-000000000007.parquet.99.tmp").write_bytes(b"")
    reader = Ledger.open(ledger.run_dir, writable=False)
    assert records(reader.attempts()) == reference_fold(events)
    assert reader.attempts(["retries"])["retries"].to_pylist() == [5]
    assert reader.counts()[State.SUBMITTED] == 1
    with Ledger.open(ledger.run_dir) as writer:
        assert event_files(ledger.run_dir) == ["c-000000000006.parquet"]
        writer.record(Event(2, 1, State.SUBMITTING, T0))
        writer.flush()
        assert "b-000000000007.parquet" in event_files(ledger.run_dir)


def test_maybe_compact_waits_for_enough_batches(ledger: Ledger) -> None:
    ledger.compact_after = 3
    ledger.compact_ratio = 1_000_000
    results = []
    for step in range(4):
        ledger.record(Event(1, 1, State.SUBMITTED, T0 + step))
        ledger.flush()
        results.append(ledger.maybe_compact())
    assert results == [False, False, False, True]
    # Now batches are small next to the compacted file: it waits, up to compact_always_after.
    ledger.compact_ratio = 0
    ledger.compact_always_after = 6
    results = []
    for step in range(6):
        ledger.record(Event(1, 1, State.SUBMITTED, T0 + step))
        ledger.flush()
        results.append(ledger.maybe_compact())
    assert results == [False, False, False, False, False, True]


def test_compaction_in_another_thread_does_not_lose_flushes(ledger: Ledger) -> None:
    events: list[Event] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def compact_forever() -> None:
        try:
            while not stop.is_set():
                ledger.compact()
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=compact_forever)
    worker.start()
    try:
        for step in range(200):
            event = Event(1 + step % 10, 1 + step % 3, State.SUBMITTED, T0 + step, retries=step)
            events.append(event)
            ledger.record(event)
            ledger.flush()
    finally:
        stop.set()
        worker.join()
    assert not errors
    assert records(ledger.attempts()) == reference_fold(events)


# ---------------------------------------------------------------- property: any interleaving

_times = st.integers(0, 4_000_000_000_000).map(lambda ms: ms / 1000)
_optional_text = st.none() | st.sampled_from(["a", "b", "s3://bucket/out/x.out", ""])
_optional_int = st.none() | st.integers(0, 2**31 - 1)
_events = st.builds(
    Event,
    row=st.integers(1, 4),
    attempt=st.integers(1, 3),
    state=st.sampled_from(State),
    at=_times,
    inference_id=_optional_text,
    submitted_at=st.none() | _times,
    completed_at=st.none() | _times,
    output_location=_optional_text,
    failure_location=_optional_text,
    error=_optional_text,
    retries=_optional_int,
    throttles=_optional_int,
    output_bytes=st.none() | st.integers(0, 2**62),
)
_steps = st.lists(
    st.one_of(_events, st.just("flush"), st.just("compact"), st.just("reopen")), max_size=40
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=_steps)
def test_fold_after_any_interleaving_equals_the_fold_of_the_sequence(steps: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        ledger = Ledger.create(run_dir, {}, make_plan(4))
        recorded: list[Event] = []
        for step in steps:
            if step == "flush":
                ledger.flush()
            elif step == "compact":
                ledger.compact()
            elif step == "reopen":
                ledger.close()
                ledger = Ledger.open(run_dir)
            else:
                ledger.record(step)
                recorded.append(step)
        ledger.close()
        reader = Ledger.open(run_dir, writable=False)
        assert records(reader.attempts()) == reference_fold(recorded)
        latest: dict[int, tuple[int, State]] = {row: (0, State.PENDING) for row in range(1, 5)}
        for event in recorded:
            if event.attempt >= latest[event.row][0]:
                latest[event.row] = (event.attempt, event.state)
        expected = dict.fromkeys(State, 0)
        for _, state in latest.values():
            expected[state] += 1
        assert reader.counts() == expected


# ---------------------------------------------------------------- real processes: lock, kill -9

_LOCK_HOLDER = """
import sys, time
from bulkinvoke.ledger.store import Ledger
ledger = Ledger.open(sys.argv[1])
print("locked", flush=True)
time.sleep(60)
"""


def test_the_lock_refuses_a_second_writer_until_the_holder_dies(ledger: Ledger) -> None:
    run_dir = ledger.run_dir
    ledger.close()
    holder = _spawn(_LOCK_HOLDER, run_dir)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LedgerLocked) as caught:
            Ledger.open(run_dir)
        assert str(run_dir) in str(caught.value)
        assert f"PID {holder.pid}" in str(caught.value)
        Ledger.open(run_dir, writable=False).counts()
    finally:
        holder.kill()
        holder.wait()
    with Ledger.open(run_dir):
        with pytest.raises(LedgerLocked):
            Ledger.open(run_dir)
        assert (run_dir / "lock").read_text() == f"{os.getpid()}\n"


_BATCH_WRITER = """
import sys
from bulkinvoke.ledger.store import Event, Ledger
from bulkinvoke.states import State
size = int(sys.argv[2])
ledger = Ledger.open(sys.argv[1])
done = ledger.attempts(["retries"])["retries"].to_pylist()
batch = max(done, default=-1) + 1
rows = ledger.plan(["row"]).num_rows
while (batch + 1) * size <= rows:
    ledger.record_many(
        Event(batch * size + i + 1, 1, State.SUBMITTED, 1e9 + batch, retries=batch,
              inference_id="bi-" + "x" * 24, output_location="s3://b/o/%d.out" % i)
        for i in range(size)
    )
    ledger.flush()
    print(batch, flush=True)
    batch += 1
"""


def test_kill_9_at_any_moment_keeps_every_flushed_batch_whole(run_dir: Path) -> None:
    size = 20
    Ledger.create(run_dir, {}, make_plan(3000 * size)).close()
    rng = random.Random(1)
    printed: set[int] = set()
    for _ in range(6):
        printed |= _run_and_kill(_BATCH_WRITER, [run_dir, size], rng.uniform(0.3, 0.9))
        present = Ledger.open(run_dir, writable=False).attempts(["retries"])
        batches: dict[int, int] = {}
        for batch in present["retries"].to_pylist():
            batches[batch] = batches.get(batch, 0) + 1
        assert printed <= set(batches), "a batch reported durable is missing"
        assert all(count == size for count in batches.values()), "a partial batch is visible"
        assert sorted(batches) == list(range(len(batches))), "batches must be contiguous"
    assert printed, "the writer never got to flush"


def batch_events(batch: int) -> list[Event]:
    """The deterministic events of one batch of the compacting writer; row 1 marks the batch."""
    rng = random.Random(batch)
    events = [Event(1, 1, State.SUBMITTED, T0 + batch, retries=batch)]
    for _ in range(rng.randint(1, 12)):
        events.append(
            Event(
                rng.randint(2, 40),
                rng.randint(1, 3),
                rng.choice(list(State)),
                T0 + batch + rng.random(),
                inference_id=rng.choice([None, f"bi-{batch}"]),
                output_location=rng.choice([None, f"s3://b/out/{batch}.out"]),
                error=rng.choice([None, None, f"error {batch}"]),
                output_bytes=rng.choice([None, batch]),
            )
        )
    return events


_COMPACTING_WRITER = """
import sys
sys.path.insert(0, sys.argv[2])
from test_ledger import batch_events
from bulkinvoke.ledger.store import Ledger
ledger = Ledger.open(sys.argv[1])
ledger.compact_after = 2
marker = [r for r in ledger.attempts(["retries"]).to_pylist() if r["row"] == 1]
batch = marker[0]["retries"] + 1 if marker else 0
while True:
    ledger.record_many(batch_events(batch))
    ledger.flush()
    print(batch, flush=True)
    ledger.maybe_compact()
    if batch % 3 == 0:
        ledger.compact()
    batch += 1
"""


def test_kill_9_during_compactions_keeps_the_fold(run_dir: Path) -> None:
    Ledger.create(run_dir, {}, make_plan(40)).close()
    rng = random.Random(2)
    printed: set[int] = set()
    for _ in range(6):
        args: list[object] = [run_dir, REPO / "tests"]
        printed |= _run_and_kill(_COMPACTING_WRITER, args, rng.uniform(0.4, 1.2))
        reader = Ledger.open(run_dir, writable=False)
        folded = records(reader.attempts())
        last = next(r["retries"] for r in folded if (r["row"], r["attempt"]) == (1, 1))
        assert max(printed) <= last
        expected = [event for batch in range(last + 1) for event in batch_events(batch)]
        assert folded == reference_fold(expected)
    assert any(name.startswith("c-") for name in event_files(run_dir))


def _spawn(script: str, *args: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def _run_and_kill(script: str, args: list[object], after: float) -> set[int]:
    """Run a writer that prints each batch number once flush() returned; kill -9 it after
    ``after`` seconds; return the numbers it printed."""
    child = _spawn(script, *args)
    time.sleep(after)
    child.send_signal(signal.SIGKILL)
    out, _ = child.communicate()
    assert child.returncode in (-signal.SIGKILL, 0), out
    return {int(line) for line in out.split()}
