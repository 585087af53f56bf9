"""The journal: answers durable before their batch, replayed after a crash, never twice.

A writer process records answers through ``BackgroundWriter.record_durably`` (the way call slots
do) and prints each one once it returns; it is killed with SIGKILL at random moments. Whatever it
printed must be in the ledger the next writer opens: the journal's promise.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bulkinvoke.errors import LedgerCorrupt
from bulkinvoke.ledger.background import BackgroundWriter
from bulkinvoke.ledger.journal import journal_name, read_journal
from bulkinvoke.ledger.store import Event, Ledger
from bulkinvoke.states import State
from tests.test_ledger import T0, make_plan

REPO = Path(__file__).resolve().parents[1]


def _writer(ledger: Ledger) -> BackgroundWriter:
    return BackgroundWriter(ledger, flush_interval=0.1, on_durable=None, warn=print)


def _accepted(row: int) -> Event:
    return Event(row, 1, State.SUBMITTED, T0 + row, submitted_at=T0 + row, retries=row % 3)


def test_a_durable_answer_is_in_the_journal_before_any_batch(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    ledger = Ledger.create(run_dir, {}, make_plan(10))
    writer = _writer(ledger)
    writer.record_durably([_accepted(1), _accepted(2)])
    journal = run_dir / "events" / journal_name(1)
    assert read_journal(journal) == [_accepted(1), _accepted(2)]
    assert not list((run_dir / "events").glob("b-*")), "no batch was written yet"
    # Once a batch carries them, their journal goes.
    writer.flush()
    assert not journal.exists()
    assert [r["state"] for r in ledger.attempts().to_pylist()] == ["submitted", "submitted"]
    writer.close()
    ledger.close()


def test_the_next_writer_replays_a_journal_left_by_a_crash(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    Ledger.create(run_dir, {}, make_plan(10)).close()
    # What a writer killed after its group commit, before its batch, leaves behind.
    lines = [b'{"row":3,"attempt":1,"state":"submitted","at":1767225603.0}\n']
    (run_dir / "events" / journal_name(1)).write_bytes(b"".join(lines) + b'{"row":4,"att')
    # Readers do not look at journals; the next writer turns them into a batch.
    assert Ledger.open(run_dir, writable=False).counts()[State.SUBMITTED] == 0
    with Ledger.open(run_dir) as ledger:
        assert ledger.counts()[State.SUBMITTED] == 1, "the torn last line is not an event"
    assert not list((run_dir / "events").glob("j-*"))


def test_a_journal_older_than_the_last_batch_is_not_replayed(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with Ledger.create(run_dir, {}, make_plan(10)) as ledger:
        ledger.record(Event(3, 1, State.SUCCEEDED, T0 + 9))
        ledger.flush()
    # A leftover of a writer killed between its batch and the journal's removal: its events
    # are in batch 1, and replaying them after it would undo the success.
    line = b'{"row":3,"attempt":1,"state":"submitted","at":1767225603.0}\n'
    (run_dir / "events" / journal_name(1)).write_bytes(line)
    with Ledger.open(run_dir) as ledger:
        assert ledger.counts()[State.SUCCEEDED] == 1
    assert not list((run_dir / "events").glob("j-*"))


def test_a_damaged_line_before_the_end_is_named(tmp_path: Path) -> None:
    path = tmp_path / journal_name(1)
    path.write_bytes(b'{"row":1,"attempt":1,"state":"bogus","at":1.0}\n{"row":2}\n')
    with pytest.raises(LedgerCorrupt, match=r"line 1 .*move it out of the run directory"):
        read_journal(path)


_ANSWERING_WRITER = """
import sys, threading
from bulkinvoke.ledger.background import BackgroundWriter
from bulkinvoke.ledger.store import Event, Ledger
from bulkinvoke.states import State
ledger = Ledger.open(sys.argv[1])
writer = BackgroundWriter(ledger, flush_interval=0.05, on_durable=None, warn=print)
start = int(sys.argv[2])
lock = threading.Lock()
def slot(first):
    for row in range(first, 100_000, 8):
        ledger.record(Event(row, 1, State.SUBMITTING, 1.0))
        writer.record_durably([Event(row, 1, State.SUBMITTED, 2.0, submitted_at=2.0)])
        with lock:
            print(row, flush=True)
threads = [threading.Thread(target=slot, args=(start + i,)) for i in range(8)]
for t in threads: t.start()
while True:
    writer.flush_if_due()
"""


def test_kill_9_never_loses_an_answer_a_slot_was_told_is_durable(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    Ledger.create(run_dir, {}, make_plan(100_000)).close()
    rng = random.Random(3)
    durable: set[int] = set()
    start = 1
    for _ in range(5):
        child = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(_ANSWERING_WRITER), str(run_dir), str(start)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        time.sleep(rng.uniform(0.5, 1.0))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
        printed = {int(line) for line in out.split()}
        assert printed, "the writer answered nothing before it was killed"
        durable |= printed
        start = max(durable) + 8
        with Ledger.open(run_dir) as ledger:  # replays the journals, as resume does
            submitted = {
                r["row"]
                for r in ledger.attempts(["state"]).to_pylist()
                if r["state"] == "submitted"
            }
        assert durable <= submitted, f"{len(durable - submitted)} durable answers were lost"
