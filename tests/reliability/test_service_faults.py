"""Faults from the services, injected by the emulator or by a proxy in front of it or of S3: the
run completes, or stops cleanly (exit 4) and resumably, with the right states and counts.

Duplicate calls are counted with ``LocalStack.accepted_ids()``: a call can reach the endpoint
twice only when its answer was lost on the way back (a reset after the service took the call, an
answer slower than the client's timeout), so the duplicates are bounded by those faults.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_proxy import FaultProxy

from bulkinvoke.emulator import LocalStack
from bulkinvoke.export.frame import read_ledger
from bulkinvoke.ledger.store import Ledger
from bulkinvoke.manifest.ids import inference_id
from bulkinvoke.states import State

from .conftest import (
    ENDPOINT,
    cli_env,
    finish,
    make_dataset,
    run_cli,
    start_cli,
    with_fault_hook,
)


@pytest.fixture
def sagemaker_proxy(emulator: LocalStack) -> Iterator[FaultProxy]:
    with FaultProxy(emulator.sagemaker_url, flavor="json", seed=11) as proxy:
        yield proxy


@pytest.fixture
def s3_proxy(emulator: LocalStack) -> Iterator[FaultProxy]:
    with FaultProxy(emulator.s3_url, flavor="s3", seed=12) as proxy:
        yield proxy


class Calls:
    """The calls the endpoint accepted for one dataset, from a starting point."""

    def __init__(self, emulator: LocalStack, locations: list[str]) -> None:
        self._emulator = emulator
        self.ids = {inference_id("", ENDPOINT, location, 1) for location in locations}
        self._before = Counter(emulator.accepted_ids())

    def accepted(self) -> Counter[str]:
        now = Counter(self._emulator.accepted_ids())
        return Counter({i: n for i, n in (now - self._before).items() if i in self.ids})

    def duplicates(self) -> int:
        accepted = self.accepted()
        return sum(accepted.values()) - len(accepted)

    def all_reached_the_endpoint(self) -> bool:
        return set(self.accepted()) == self.ids


def _submit(data_manifest: Path, run_dir: Path, *extra: str) -> list[str]:
    return ["submit", str(data_manifest), "--endpoint", ENDPOINT, "--run-dir", str(run_dir),
            "--json", "--quiet", *extra]  # fmt: skip


def _all_succeeded(run_dir: Path, items: int) -> None:
    table = read_ledger(run_dir)
    assert len(table) == items
    assert table["state"].value_counts().to_dict() == {"succeeded": items}


def _wait_until(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the run never got there"
        time.sleep(0.05)


def _counts(run_dir: Path) -> dict[State, int]:
    if not Ledger.exists(run_dir):
        return dict.fromkeys(State, 0)
    with Ledger.open(run_dir, writable=False) as ledger:
        return ledger.counts()


def test_5xx_storms_and_throttling_finish_without_a_duplicate(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    # Under the slow start's first rate (10/s), so that throttling is certain, not a race with
    # the capacity's one-second burst.
    emulator.configure(
        capacity_per_second=8, unavailable_probability=0.2, internal_failure_probability=0.05
    )
    data = make_dataset(s3, tmp_path, 30)
    calls = Calls(emulator, data.locations)
    done = run_cli(cli_env(emulator), *_submit(data.manifest, tmp_path / "run", "--rate", "200"))
    assert done.returncode == 0, done.stderr
    _all_succeeded(tmp_path / "run", 30)
    table = read_ledger(tmp_path / "run")
    assert table["retries"].sum() > 0 and table["throttles"].sum() > 0
    # The service refused those calls before taking them: none was taken twice.
    assert calls.all_reached_the_endpoint() and calls.duplicates() == 0
    print(f"faults injected: {table['retries'].sum()} (throttled {table['throttles'].sum()})")


def test_connection_resets_and_5xx_on_the_way_finish(
    emulator: LocalStack, sagemaker_proxy: FaultProxy, s3: Any, tmp_path: Path
) -> None:
    sagemaker_proxy.configure(faults={"reset_before": 0.1, "reset_after": 0.1, "error": 0.1})
    data = make_dataset(s3, tmp_path, 60)
    calls = Calls(emulator, data.locations)
    env = cli_env(emulator, sagemaker_url=sagemaker_proxy.url)
    done = run_cli(env, *_submit(data.manifest, tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    _all_succeeded(tmp_path / "run", 60)
    assert calls.all_reached_the_endpoint()
    assert min(sagemaker_proxy.injected.values()) > 0
    assert calls.duplicates() <= sagemaker_proxy.injected["reset_after"]
    print(f"faults injected: {dict(sagemaker_proxy.injected)}, duplicates {calls.duplicates()}")


def test_answers_slower_than_the_call_timeout_are_retried(
    emulator: LocalStack, sagemaker_proxy: FaultProxy, s3: Any, tmp_path: Path
) -> None:
    sagemaker_proxy.configure(faults={"slow": 0.1}, slow_seconds=3)
    data = make_dataset(s3, tmp_path, 60)
    calls = Calls(emulator, data.locations)
    env = cli_env(emulator, sagemaker_url=sagemaker_proxy.url)
    started = time.monotonic()
    done = run_cli(env, *_submit(data.manifest, tmp_path / "run", "--call-timeout", "1"))
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 30
    _all_succeeded(tmp_path / "run", 60)
    assert sagemaker_proxy.injected["slow"] > 0
    assert calls.all_reached_the_endpoint()
    retries = read_ledger(tmp_path / "run")["retries"].sum()
    print(f"faults injected: {dict(sagemaker_proxy.injected)}, duplicates {calls.duplicates()}")
    assert retries >= 1
    # Only a retried call can be accepted twice: each slow answer, and any answer a loaded
    # machine was slower than --call-timeout to give (not counted as injected).
    assert calls.duplicates() <= retries


def test_a_timeout_with_calls_still_on_the_wire_is_incomplete_and_resumes(
    emulator: LocalStack, sagemaker_proxy: FaultProxy, s3: Any, tmp_path: Path
) -> None:
    sagemaker_proxy.configure(fail_all="slow", slow_seconds=2)
    data = make_dataset(s3, tmp_path, 8)
    env = cli_env(emulator, sagemaker_url=sagemaker_proxy.url)
    run_dir = tmp_path / "run"
    cut = run_cli(env, *_submit(data.manifest, run_dir, "--concurrency", "4", "--timeout", "0.5"))
    assert cut.returncode == 3, cut.stderr  # incomplete, not 4 (stopped)
    assert json.loads(cut.stdout)["outcome"] == "incomplete"
    sagemaker_proxy.clear()
    done = run_cli(env, "resume", str(run_dir), "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    _all_succeeded(run_dir, 8)


def test_sigterm_lets_the_calls_in_flight_finish_and_repeats_none(
    emulator: LocalStack, sagemaker_proxy: FaultProxy, s3: Any, tmp_path: Path
) -> None:
    """What AWS Batch or Kubernetes send to stop a job, with time before SIGKILL."""
    sagemaker_proxy.configure(fail_all="slow", slow_seconds=1)
    data = make_dataset(s3, tmp_path, 40)
    calls = Calls(emulator, data.locations)
    run_dir = tmp_path / "run"
    env = cli_env(emulator, sagemaker_url=sagemaker_proxy.url)
    process = start_cli(env, *_submit(data.manifest, run_dir, "--concurrency", "4"))
    _wait_until(lambda: sagemaker_proxy.injected["slow"] >= 6)
    process.send_signal(signal.SIGTERM)
    _, err = finish(process)
    assert process.returncode == 130, err
    assert "interrupted; nothing is lost" in err and "Traceback" not in err
    # The calls in flight were answered, and the intents of those that never left taken back:
    # nothing is in doubt, so resume has nothing to look for or wait on.
    states = read_ledger(run_dir)["state"].value_counts().to_dict()
    assert "submitting" not in states, states
    sagemaker_proxy.clear()
    done = run_cli(env, "resume", str(run_dir), "--json", "--quiet", "--in-doubt", "wait")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["in_doubt_found"] == 0
    _all_succeeded(run_dir, 40)
    assert calls.all_reached_the_endpoint() and calls.duplicates() == 0


def test_s3_errors_while_collecting_finish(
    emulator: LocalStack, s3_proxy: FaultProxy, s3: Any, tmp_path: Path
) -> None:
    emulator.configure(latency="uniform:0.05-0.3")
    s3_proxy.configure(faults={"error": 0.25, "reset_before": 0.05, "reset_after": 0.05})
    data = make_dataset(s3, tmp_path, 60)
    env = cli_env(emulator, s3_url=s3_proxy.url)
    done = run_cli(env, *_submit(data.manifest, tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    _all_succeeded(tmp_path / "run", 60)
    assert s3_proxy.total_injected > 0
    print(f"faults injected: {dict(s3_proxy.injected)}")


def test_expired_credentials_mid_run_stop_cleanly_then_resume(
    emulator: LocalStack,
    sagemaker_proxy: FaultProxy,
    s3_proxy: FaultProxy,
    s3: Any,
    tmp_path: Path,
) -> None:
    data = make_dataset(s3, tmp_path, 100)
    calls = Calls(emulator, data.locations)
    run_dir = tmp_path / "run"
    env = cli_env(emulator, sagemaker_url=sagemaker_proxy.url, s3_url=s3_proxy.url)
    process = start_cli(env, *_submit(data.manifest, run_dir, "--rate", "100"))
    _wait_until(lambda: _counts(run_dir)[State.SUBMITTED] + _counts(run_dir)[State.SUCCEEDED] > 20)
    sagemaker_proxy.configure(fail_all="expired")
    s3_proxy.configure(fail_all="expired")
    out, err = finish(process)
    assert process.returncode == 4, err
    assert "Traceback" not in err
    summary = json.loads(out)
    assert summary["outcome"] == "stopped"
    assert "ExpiredToken" in summary["stop_reason"]
    # Stopped before the end, with nothing failed for it.
    assert summary["counts"]["pending"] + summary["counts"]["submitting"] > 0
    assert summary["counts"]["failed"] == summary["counts"]["rejected"] == 0

    sagemaker_proxy.clear()
    s3_proxy.clear()
    done = run_cli(env, "resume", str(run_dir), "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    _all_succeeded(run_dir, 100)
    assert calls.all_reached_the_endpoint()


def test_expired_credentials_while_collecting_stop_cleanly(
    emulator: LocalStack, s3_proxy: FaultProxy, s3: Any, tmp_path: Path
) -> None:
    emulator.configure(latency="fixed:0.5", workers=2)
    data = make_dataset(s3, tmp_path, 40)
    run_dir = tmp_path / "run"
    env = cli_env(emulator, s3_url=s3_proxy.url)
    process = start_cli(env, *_submit(data.manifest, run_dir))
    _wait_until(lambda: _counts(run_dir)[State.SUBMITTED] == 40 - _counts(run_dir)[State.SUCCEEDED]
                and _counts(run_dir)[State.SUBMITTED] > 0)  # fmt: skip
    s3_proxy.configure(fail_all="expired")
    out, err = finish(process)
    assert process.returncode == 4, err
    assert "Traceback" not in err
    assert "ExpiredToken" in json.loads(out)["stop_reason"]

    s3_proxy.clear()
    emulator.configure(latency="fixed:0", workers=8)
    done = run_cli(env, "resume", str(run_dir), "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["submitted_this_session"] == 0
    _all_succeeded(run_dir, 40)


def test_s3_refusing_while_in_doubt_items_are_settled_stops_cleanly(
    emulator: LocalStack, s3_proxy: FaultProxy, s3: Any, tmp_path: Path
) -> None:
    data = make_dataset(s3, tmp_path, 100)
    run_dir = tmp_path / "run"
    env = cli_env(emulator, s3_url=s3_proxy.url)
    # Killed right after a batch of results is on disk, with more calls in flight: some items
    # are left in doubt.
    crashed = run_cli(
        with_fault_hook(env, BULKINVOKE_CRASH_AT="batch-renamed:4"),
        *_submit(data.manifest, run_dir, "--rate", "100"),
    )
    assert crashed.returncode == -9, crashed.stderr
    assert _counts(run_dir)[State.SUBMITTING] > 0

    s3_proxy.configure(fail_all="expired")
    stopped = run_cli(env, "resume", str(run_dir), "--json", "--quiet")
    assert stopped.returncode == 4, stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert "ExpiredToken" in json.loads(stopped.stdout)["stop_reason"]

    s3_proxy.clear()
    done = run_cli(env, "resume", str(run_dir), "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    _all_succeeded(run_dir, 100)


def test_endpoint_deleted_mid_run_stops_cleanly_then_resumes(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    data = make_dataset(s3, tmp_path, 100)
    calls = Calls(emulator, data.locations)
    run_dir = tmp_path / "run"
    env = cli_env(emulator)
    process = start_cli(env, *_submit(data.manifest, run_dir, "--rate", "40"))
    _wait_until(lambda: _counts(run_dir)[State.SUBMITTED] + _counts(run_dir)[State.SUCCEEDED] > 10)
    spec = next(spec for spec in emulator.endpoints() if spec.name == ENDPOINT)
    emulator.remove_endpoint(ENDPOINT)
    out, err = finish(process)
    assert process.returncode == 4, err
    summary = json.loads(out)
    assert "not found" in summary["stop_reason"]
    # Nothing was marked rejected or failed for the endpoint's absence.
    assert summary["counts"]["rejected"] == summary["counts"]["failed"] == 0
    assert summary["counts"]["pending"] + summary["counts"]["submitting"] > 0

    emulator.add_endpoint(spec)
    done = run_cli(env, "resume", str(run_dir), "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    _all_succeeded(run_dir, 100)
    assert calls.all_reached_the_endpoint()
