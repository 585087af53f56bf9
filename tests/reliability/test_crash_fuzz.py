"""The crash harness of bench/crash_fuzz.py, briefly: a few kill -9s, one of each kind.

The long version (hundreds of kills) runs from bench/: ``python bench/crash_fuzz.py --kills 300``.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from crash_fuzz import MODES, CrashFuzzer, FuzzSettings

from bulkinvoke.emulator import LocalStack
from bulkinvoke.ledger.store import Ledger
from bulkinvoke.manifest.ids import inference_id
from bulkinvoke.states import State

from .conftest import ENDPOINT, cli_env, make_dataset, run_cli, with_fault_hook


def test_kill_9_at_every_kind_of_instant_loses_nothing(
    emulator: LocalStack, tmp_path: Path
) -> None:
    settings = FuzzSettings(
        kills=len(MODES),
        items=400,
        kills_per_trial=len(MODES),
        rate=300,
        latency="uniform:0.01-0.05",
        seed=7,
        session_timeout=60,
        crash_steps=8,
        cycle_modes=True,
    )
    report = CrashFuzzer(settings, tmp_path, emulator, log=print).run()
    figures = report.figures()
    print(figures)
    assert report.violations == []
    assert figures["items_lost"] == 0
    assert figures["items"] >= 400
    # Sessions that finished before their kill end a trial early; most must have been killed.
    assert figures["kills"] >= len(MODES) - 1
    assert figures["duplicate_calls"] <= figures["duplicate_bound"]


def test_a_first_session_killed_before_any_answer_was_on_disk_resends_nothing_finished(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    """Outputs are found from the location an accepted call returns: a first session killed
    before any was on disk leaves in-doubt items whose outputs cannot be looked for yet."""
    data = make_dataset(s3, tmp_path, 100)
    run_dir = tmp_path / "run"
    env = cli_env(emulator)
    submit = ["submit", str(data.manifest), "--endpoint", ENDPOINT, "--run-dir", str(run_dir),
              "--rate", "100", "--quiet"]  # fmt: skip
    # Killed while writing its second batch: only the first, intents, is on disk.
    crashed = run_cli(with_fault_hook(env, BULKINVOKE_CRASH_AT="batch-data:2"), *submit)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    with Ledger.open(run_dir, writable=False) as ledger:
        counts = ledger.counts()
    assert counts[State.SUBMITTING] > 0 and counts[State.SUBMITTED] == 0
    ids = {inference_id("", ENDPOINT, location, 1) for location in data.locations}
    assert emulator.wait_idle()
    finished = {i: n for i, n in emulator.accepted_ids().items() if i in ids}
    assert finished, "calls were accepted before the kill"

    done = run_cli(env, "resume", str(run_dir), "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"]["succeeded"] == 100
    accepted = emulator.accepted_ids()
    assert {i: accepted[i] for i in finished} == finished, "an item with an output was resent"
    assert ids <= set(accepted)


def test_rows_refused_by_validation_stay_unsent_when_the_run_died_before_recording_them(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    data = make_dataset(s3, tmp_path, 5)
    with data.manifest.open("a") as manifest:
        manifest.write("not-a-uri\n")
    run_dir = tmp_path / "run"
    env = cli_env(emulator)
    submit = ["submit", str(data.manifest), "--endpoint", ENDPOINT, "--run-dir", str(run_dir),
              "--skip-invalid", "--quiet"]  # fmt: skip
    # Killed writing its first batch, the refused row's record: run.json is already there.
    crashed = run_cli(with_fault_hook(env, BULKINVOKE_CRASH_AT="batch-data:1"), *submit)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert Ledger.exists(run_dir)

    done = run_cli(env, "resume", str(run_dir), "--json", "--quiet")
    assert done.returncode == 1, done.stderr  # one item rejected
    counts = json.loads(done.stdout)["counts"]
    assert {state: n for state, n in counts.items() if n} == {"succeeded": 5, "rejected": 1}
    with Ledger.open(run_dir, writable=False) as ledger:
        refused = ledger.latest().to_pandas().set_index("row").loc[6]
    assert refused["state"] == "rejected"
    assert refused["error"] == refused["invalid_reason"], "refused by bulkinvoke, not the endpoint"
    assert not isinstance(refused["inference_id"], str), "never sent"
