"""A run directory made by bulkinvoke before its modules moved into subpackages (commit 0485e2e)
still resumes: the ledger's format is a contract with every run on disk.

``tests/data/run-made-before-the-move`` is such a run, stopped by ``--timeout`` part-way: of its
40 items, 17 were accepted (awaiting results), 15 had their intents written but were never sent
(in doubt) and 8 were pending.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from bulkinvoke.emulator import LocalStack
from bulkinvoke.export.frame import read_ledger

from .conftest import INPUT_BUCKET, run_cli

OLD_RUN = Path(__file__).resolve().parents[1] / "data" / "run-made-before-the-move"


def test_a_run_made_before_the_move_resumes_and_repeats_nothing(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(OLD_RUN, run_dir)
    before = read_ledger(run_dir)
    assert before["state"].value_counts().to_dict() == {
        "submitted": 17,
        "submitting": 15,
        "pending": 8,
    }
    for location in before["input_location"]:
        s3.put_object(Bucket=INPUT_BUCKET, Key=location.split("/", 3)[3], Body=b'{"i": 0}')
    # The endpoint that accepted the 17 is gone: their outputs are put where it said they
    # would land, so that resume finds them rather than sends them again.
    accepted = before[before["state"] == "submitted"]
    for location in accepted["output_location"]:
        bucket, key = location.removeprefix("s3://").split("/", 1)
        s3.put_object(Bucket=bucket, Key=key, Body=b'{"ok": true}')
    sent_before = emulator.accepted_ids()

    result = run_cli(emulator, "resume", str(run_dir), "--json")

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["counts"]["succeeded"] == 40
    counts = emulator.accepted_ids()
    sent = {i: n - sent_before.get(i, 0) for i, n in counts.items() if n > sent_before.get(i, 0)}
    after = read_ledger(run_dir)
    assert set(after["state"]) == {"succeeded"}
    assert (after["attempts"] == 1).all()
    # Only what was never accepted went out, once each: the pending and the in-doubt items.
    never_accepted = before[before["state"].isin(["pending", "submitting"])]["row"]
    expected = set(after[after["row"].isin(never_accepted)]["inference_id"])
    assert len(expected) == 23
    assert sent == dict.fromkeys(expected, 1)
