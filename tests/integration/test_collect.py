"""Collection, expiry, notifications, re-drive, failure threshold and dry run, end to end."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

import boto3

from bulkinvoke.emulator import EndpointSpec, LocalStack
from bulkinvoke.export.frame import read_ledger
from bulkinvoke.ledger.store import Ledger
from bulkinvoke.results.collector import EARLIER_RUN_MARGIN_S, Collector, Finding, Watch
from bulkinvoke.run.runner import RunOptions
from bulkinvoke.run.work import CallFactory, load_run_state
from bulkinvoke.states import State

from .conftest import INPUT_BUCKET, OUTPUT_BUCKET, make_dataset, run_cli


def _submit(stack: LocalStack, manifest: Path, run_dir: Path, *extra: str) -> dict[str, Any]:
    done = run_cli(
        stack,
        "submit",
        str(manifest),
        "--endpoint",
        "demo",
        "--run-dir",
        str(run_dir),
        "--json",
        *extra,
    )
    assert done.returncode in (0, 1, 3, 4), done.stderr
    return {"exit": done.returncode, **json.loads(done.stdout)}


def test_list_and_head_strategies_find_the_same_results(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    data = make_dataset(s3, tmp_path, 30, missing=5)
    run_dir = tmp_path / "run"
    accepted = _submit(emulator, data.manifest, run_dir, "--no-wait")
    assert (accepted["exit"], accepted["outcome"], accepted["stop_reason"]) == (0, "accepted", None)
    assert emulator.wait_idle(30)
    with Ledger.open(run_dir, writable=False) as ledger:
        options = RunOptions.from_config(ledger.config["options"])
        state = load_run_state(ledger, CallFactory(ledger.plan(), options))
    found = {}
    for strategy in ("list", "head"):
        collector = Collector(s3, strategy=strategy)
        findings = collector.sweep(state.watches)
        found[strategy] = sorted(
            (f.row, f.attempt, f.state, f.output_bytes, f.error) for f in findings
        )
        assert collector.requests.total > 0
    assert found["list"] == found["head"]
    assert len(found["list"]) == 30


def test_collect_records_results_of_a_no_wait_run(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    data = make_dataset(s3, tmp_path, 20)
    run_dir = tmp_path / "run"
    assert _submit(emulator, data.manifest, run_dir, "--no-wait")["exit"] == 0
    done = run_cli(emulator, "collect", str(run_dir), "--wait", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["counts"]["succeeded"] == 20
    assert summary["submitted_this_session"] == 0


def test_an_item_with_no_result_expires(emulator: LocalStack, s3: Any, tmp_path: Path) -> None:
    # Without an S3FailurePath a failed request leaves nothing in S3: only expiry can end it.
    data = make_dataset(s3, tmp_path, 4, missing=2)
    run_dir = tmp_path / "run"
    done = run_cli(
        emulator,
        "submit",
        str(data.manifest),
        "--endpoint",
        "no-failure-path",
        "--run-dir",
        str(run_dir),
        "--expire-after",
        "2",
        "--json",
    )
    assert done.returncode == 1, done.stderr
    counts = json.loads(done.stdout)["counts"]
    assert (counts["succeeded"], counts["expired"]) == (2, 2)


def test_results_that_come_after_expiry_are_found_not_paid_for_twice(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    # Slower than --expire-after; some items fail in the model, also late.
    emulator.configure(latency="uniform:4-4.5", model_failure_probability=0.4, seed=5)
    data = make_dataset(s3, tmp_path, 8)
    runs = {how: tmp_path / how for how in ("collect", "retry")}
    for how, run_dir in runs.items():
        expired = _submit(
            emulator, data.manifest, run_dir, "--expire-after", "1", "--id-namespace", how
        )
        assert (expired["exit"], expired["counts"]["expired"]) == (1, 8), expired
    assert emulator.wait_idle(30)
    sent = sum(emulator.accepted_ids().values())

    collected = _submit_again(emulator, "collect", runs["collect"])
    retried = _submit_again(emulator, "retry", runs["retry"], "--expired")
    for summary in (collected, retried):
        counts = summary["counts"]
        assert counts["expired"] == 0 and counts["succeeded"] + counts["failed"] == 8
        assert summary["submitted_this_session"] == 0
    assert sum(emulator.accepted_ids().values()) == sent, "nothing was sent again"
    table = read_ledger(runs["collect"])
    succeeded = table[table["state"] == "succeeded"]
    failed = table[table["state"] == "failed"]
    assert len(succeeded) and len(failed), "both kinds of late result"
    assert succeeded["error"].isna().all(), "a late success carries no expiry error"
    assert (succeeded["attempts"] == 1).all() and succeeded["output_bytes"].gt(0).all()
    assert not failed["error"].str.contains("in time").any(), "the model's error, not expiry's"


def _submit_again(stack: LocalStack, command: str, run_dir: Path, *extra: str) -> dict[str, Any]:
    done = run_cli(stack, command, str(run_dir), "--json", *extra)
    assert done.returncode in (0, 1), done.stderr
    return {"exit": done.returncode, **json.loads(done.stdout)}


def test_retry_sends_failed_items_again_as_a_new_attempt(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    data = make_dataset(s3, tmp_path, 10, missing=3)
    run_dir = tmp_path / "run"
    first = _submit(emulator, data.manifest, run_dir)
    assert (first["exit"], first["counts"]["failed"]) == (1, 3)
    for location in data.locations[-3:]:
        key = location.split("/", 3)[3]
        s3.put_object(Bucket=INPUT_BUCKET, Key=key, Body=b'{"late": true}')

    done = run_cli(emulator, "retry", str(run_dir), "--failed", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["counts"]["succeeded"] == 10
    assert summary["submitted_this_session"] == 3

    table = read_ledger(run_dir)
    retried = table[table["attempts"] == 2]
    assert len(retried) == 3 and (retried["state"] == "succeeded").all()
    with Ledger.open(run_dir, writable=False) as ledger:
        attempts = ledger.attempts().to_pandas()
    kept = attempts[(attempts["attempt"] == 1) & attempts["row"].isin(retried["row"])]
    assert (kept["state"] == "failed").all(), "the first attempt's record is kept"
    assert set(kept["inference_id"]).isdisjoint(retried["inference_id"])


def test_max_failures_stops_the_run_resumably(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    emulator.configure(model_failure_probability=1.0)
    data = make_dataset(s3, tmp_path, 60)
    summary = _submit(
        emulator,
        data.manifest,
        tmp_path / "run",
        "--max-failures",
        "5",
        "--concurrency",
        "2",
        "--rate",
        "20",
    )
    assert summary["exit"] == 4
    assert "max-failures" in summary["stop_reason"]
    assert summary["counts"]["pending"] > 0


def test_dry_run_sends_nothing(emulator: LocalStack, s3: Any, tmp_path: Path) -> None:
    data = make_dataset(s3, tmp_path, 7)
    before = sum(emulator.accepted_ids().values())
    done = run_cli(
        emulator,
        "submit",
        str(data.manifest),
        "--endpoint",
        "demo",
        "--run-dir",
        str(tmp_path / "run"),
        "--dry-run",
        "--rate",
        "2",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert (plan["items"], plan["to_send"], plan["estimated_seconds"]) == (7, 7, 3.5)
    assert len(plan["first_ids"]) == 5
    assert sum(emulator.accepted_ids().values()) == before
    assert not (tmp_path / "run").exists()


def test_notifications_deliver_results_through_sns_and_sqs(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    sns = boto3.client("sns", endpoint_url=emulator.sns_url, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=emulator.sqs_url, region_name="us-east-1")
    success = sns.create_topic(Name="bulk-success")["TopicArn"]
    error = sns.create_topic(Name="bulk-error")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="bulk-results")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    for topic in (success, error):
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    emulator.add_endpoint(
        EndpointSpec(
            "notified",
            f"s3://{OUTPUT_BUCKET}/notified-out",
            f"s3://{OUTPUT_BUCKET}/notified-fail",
            success_topic=success,
            error_topic=error,
        )
    )
    data = make_dataset(s3, tmp_path, 25, missing=5)
    done = run_cli(
        emulator,
        "submit",
        str(data.manifest),
        "--endpoint",
        "notified",
        "--run-dir",
        str(tmp_path / "run"),
        "--notifications-queue",
        queue_url,
        "--json",
    )
    assert done.stdout, done.stderr
    assert done.returncode == 1, done.stderr
    counts = json.loads(done.stdout)["counts"]
    assert (counts["succeeded"], counts["failed"]) == (20, 5)
    table = read_ledger(tmp_path / "run")
    assert table.loc[table["state"] == "failed", "error"].str.len().min() > 0
    leftover = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=0,
        AttributeNames=["ApproximateReceiveCount"],
    ).get("Messages", [])
    # Every notification the run received is deleted. One may still arrive after the run has
    # ended (its result found in S3 first, on a loaded machine): received here for the first time.
    received_before = [m for m in leftover if m["Attributes"]["ApproximateReceiveCount"] != "1"]
    assert not received_before, "recorded notifications are deleted"


def test_a_result_older_than_its_call_is_flagged_as_an_earlier_runs(
    emulator: LocalStack, s3: Any
) -> None:
    key = f"out/earlier-{time.time_ns()}.out"
    s3.put_object(Bucket=OUTPUT_BUCKET, Key=key, Body=b"{}")
    location = f"s3://{OUTPUT_BUCKET}/{key}"

    def finding(submitted_at: float, strategy: Literal["list", "head"]) -> Finding:
        watch = Watch(1, 1, "bi-x", location, None, submitted_at, float("inf"))
        (found,) = Collector(s3, strategy=strategy).sweep([watch])
        return found

    for strategy in ("list", "head"):
        assert not finding(time.time(), strategy).written_before_call
        later = finding(time.time() + 2 * EARLIER_RUN_MARGIN_S, strategy)
        assert later.state is State.SUCCEEDED and later.written_before_call
