"""The whole path through real HTTP on loopback: manifest -> endpoint -> S3 -> ledger -> summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bulkinvoke.emulator import LocalStack
from bulkinvoke.export.frame import read_ledger
from bulkinvoke.manifest.ids import inference_id, output_filename
from bulkinvoke.states import State

from .conftest import OUTPUT_BUCKET, cli_env, make_dataset, run_cli


def test_submit_waits_for_every_output_and_exports(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    data = make_dataset(s3, tmp_path, 40)
    run_dir = tmp_path / "run"
    done = run_cli(
        emulator,
        "submit",
        str(data.manifest),
        "--endpoint",
        "demo",
        "--run-dir",
        str(run_dir),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["counts"]["succeeded"] == 40
    assert summary["outcome"] == "complete"

    table = read_ledger(run_dir)
    assert list(table.columns[:11]) == [
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
    ]
    assert table["row"].tolist() == list(range(1, 41))
    assert (table["state"] == "succeeded").all()
    assert (table["latency_s"] >= 0).all()
    first = table.iloc[0]
    assert first["inference_id"] == inference_id("", "demo", data.locations[0], 1)
    assert first["output_location"] == (
        f"s3://{OUTPUT_BUCKET}/out/{output_filename(first['inference_id'])}"
    )
    body = s3.get_object(Bucket=OUTPUT_BUCKET, Key=f"out/{output_filename(first['inference_id'])}")
    assert body["Body"].read()

    exported = tmp_path / "results.csv"
    done = run_cli(emulator, "export", str(run_dir), "-o", str(exported))
    assert done.returncode == 0, done.stderr
    assert len(pd.read_csv(exported)) == 40

    again = run_cli(
        emulator,
        "submit",
        str(data.manifest),
        "--endpoint",
        "demo",
        "--run-dir",
        str(run_dir),
        "--json",
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["submitted_this_session"] == 0


def test_failures_and_missing_inputs_exit_1(emulator: LocalStack, s3: Any, tmp_path: Path) -> None:
    data = make_dataset(s3, tmp_path, 12, missing=3)
    run_dir = tmp_path / "run"
    done = run_cli(
        emulator,
        "submit",
        str(data.manifest),
        "--endpoint",
        "demo",
        "--run-dir",
        str(run_dir),
        "--json",
    )
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    counts = summary["counts"]
    assert counts == {**counts, "succeeded": 9, "failed": 3}
    # resume would send nothing: the failed items are finished; retry sends them again.
    assert summary["next_step"] == (
        f"bulkinvoke retry {run_dir}  (sends the 3 failed or expired items again)"
    )
    table = read_ledger(run_dir)
    failed = table[table["state"] == "failed"]
    assert failed["error"].str.len().min() > 0
    assert failed["failure_location"].notna().all()


def test_status_counts_from_the_ledger(emulator: LocalStack, s3: Any, tmp_path: Path) -> None:
    data = make_dataset(s3, tmp_path, 5)
    run_dir = tmp_path / "run"
    assert (
        run_cli(
            emulator,
            "submit",
            str(data.manifest),
            "--endpoint",
            "demo",
            "--run-dir",
            str(run_dir),
            "--no-wait",
        ).returncode
        == 0
    )
    done = run_cli(emulator, "status", str(run_dir), "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["items"] == 5
    assert status["counts"]["submitted"] + status["counts"]["succeeded"] == 5


# Errors reach the retry policy the same way through both transports.
TRANSPORTS = pytest.mark.parametrize("transport", ["direct", "botocore"])


@TRANSPORTS
def test_unknown_endpoint_stops_the_run_at_once(
    emulator: LocalStack, s3: Any, tmp_path: Path, transport: str
) -> None:
    data = make_dataset(s3, tmp_path, 200)
    run_dir = tmp_path / "run"
    done = run_cli(
        emulator,
        "submit",
        str(data.manifest),
        "--endpoint",
        "no-such-endpoint",
        "--run-dir",
        str(run_dir),
        "--json",
        "--transport",
        transport,
        # The calls' own answer, unchecked before (test_endpoint_check.py has the check's).
        "--no-check-endpoint",
    )
    assert done.returncode == 4, done.stderr
    summary = json.loads(done.stdout)
    assert "not found" in summary["stop_reason"]
    assert summary["counts"]["rejected"] == 0
    assert summary["counts"]["pending"] > 100


def test_invalid_manifest_is_refused_before_anything_is_sent(
    emulator: LocalStack, tmp_path: Path
) -> None:
    manifest = tmp_path / "bad.csv"
    manifest.write_text("input_location\ns3://inputs/ok.json\nnot-a-uri\ns3://inputs/\n")
    done = run_cli(
        emulator, "submit", str(manifest), "--endpoint", "demo", "--run-dir", str(tmp_path / "run")
    )
    assert done.returncode == 2
    assert "bad.csv:3" in done.stderr and "bad.csv:4" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()


@TRANSPORTS
def test_throttling_and_503_storms_still_finish(
    emulator: LocalStack, s3: Any, tmp_path: Path, transport: str
) -> None:
    emulator.configure(
        capacity_per_second=40, unavailable_probability=0.2, internal_failure_probability=0.05
    )
    data = make_dataset(s3, tmp_path, 150)
    run_dir = tmp_path / "run"
    done = run_cli(
        emulator,
        "submit",
        str(data.manifest),
        "--endpoint",
        "demo",
        "--run-dir",
        str(run_dir),
        "--rate",
        "200",
        "--json",
        "--transport",
        transport,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"]["succeeded"] == 150
    table = read_ledger(run_dir)
    assert table["retries"].sum() > 0
    assert table["throttles"].sum() > 0


def test_max_in_flight_bounds_the_endpoints_queue(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    import threading
    import time

    emulator.configure(latency="fixed:0.05", workers=2)
    data = make_dataset(s3, tmp_path, 60)
    deepest = 0
    done_flag = threading.Event()

    def watch_queue() -> None:
        nonlocal deepest
        while not done_flag.is_set():
            stats = emulator.stats()
            deepest = max(deepest, stats["queue_depth"] + stats["in_progress"])
            time.sleep(0.005)

    watcher = threading.Thread(target=watch_queue)
    watcher.start()
    try:
        done = run_cli(
            emulator,
            "submit",
            str(data.manifest),
            "--endpoint",
            "demo",
            "--run-dir",
            str(tmp_path / "run"),
            "--max-in-flight",
            "6",
            "--json",
        )
    finally:
        done_flag.set()
        watcher.join()
        emulator.configure(workers=8)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"]["succeeded"] == 60
    assert 0 < deepest <= 6


def test_a_continued_run_with_other_options_is_refused_by_name_and_dry_runs_agree(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    data = make_dataset(s3, tmp_path, 4)
    run_dir = tmp_path / "run"
    first = ["submit", str(data.manifest), "--endpoint", "demo", "--run-dir", str(run_dir)]
    secret = "tenant=s3cr3t-value"
    done = run_cli(
        emulator,
        *first,
        "--content-type",
        "application/json",
        "--custom-attributes",
        secret,
        "--quiet",
    )
    assert done.returncode == 0, done.stderr

    for extra, named in [
        (["--custom-attributes", secret], "--content-type 'application/json', not None"),
        (
            ["--content-type", "application/json", "--custom-attributes", "tenant=changed"],
            "--custom-attributes (not shown",
        ),
    ]:
        for dry in ([], ["--dry-run"]):
            refused = run_cli(emulator, *first, *extra, *dry)
            assert refused.returncode == 2, refused.stderr
            assert named in refused.stderr and "Traceback" not in refused.stderr
            assert secret not in refused.stderr and "changed" not in refused.stderr

    other = make_dataset(s3, tmp_path, 3)
    refused = run_cli(
        emulator,
        "submit",
        str(other.manifest),
        "--endpoint",
        "demo",
        "--run-dir",
        str(run_dir),
        "--dry-run",
    )
    assert refused.returncode == 2 and "different manifest" in refused.stderr, refused.stderr


def test_dry_run_of_an_s3_prefix_lists_it(emulator: LocalStack, s3: Any, tmp_path: Path) -> None:
    data = make_dataset(s3, tmp_path, 3)
    prefix = data.locations[0].rsplit("/", 1)[0] + "/"
    done = run_cli(
        emulator,
        "submit",
        prefix,
        "--endpoint",
        "demo",
        "--dry-run",
        "--run-dir",
        str(tmp_path / "run"),
    )
    assert done.returncode == 0, done.stderr
    assert "3 items" in done.stdout + done.stderr


def test_duplicate_rows_are_sent_once_and_exported_each(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    data = make_dataset(s3, tmp_path, 3)
    a, b, c = data.locations
    manifest = tmp_path / "dups.csv"
    manifest.write_text("input_location\n" + "\n".join([a, b, a, c, b]) + "\n")
    run_dir = tmp_path / "run"
    done = run_cli(
        emulator, "submit", str(manifest), "--endpoint", "demo", "--run-dir", str(run_dir), "--json"
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["items"], summary["duplicate_rows"]) == (3, 2)

    exported = tmp_path / "out.csv"
    done = run_cli(emulator, "export", str(run_dir), "-o", str(exported))
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(exported)
    assert table["row"].tolist() == [1, 2, 3, 4, 5]
    assert table["input_location"].tolist() == [a, b, a, c, b]
    assert (table["state"] == "succeeded").all()
    assert table["duplicate_of"].fillna(0).astype(int).tolist() == [0, 0, 1, 0, 2]
    assert table["inference_id"][2] == table["inference_id"][0]


@pytest.mark.timeout(60)
def test_an_unexpected_error_while_sending_stops_the_run_instead_of_hanging(
    emulator: LocalStack, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bulkinvoke.calls.invoker import Invoker
    from bulkinvoke.run.outcome import Outcome
    from bulkinvoke.run.runner import RunOptions, submit

    data = make_dataset(s3, tmp_path, 20)
    for name, value in cli_env(emulator).items():
        monkeypatch.setenv(name, value)

    def broken(self: Invoker, call: Any) -> Any:
        raise RuntimeError("a bug on the way out")

    monkeypatch.setattr(Invoker, "invoke", broken)
    options = RunOptions(endpoint="demo", concurrency=4)
    result = submit(str(data.manifest), options, run_dir=tmp_path / "run", timeout=30)
    assert result.outcome is Outcome.STOPPED
    assert result.stop_reason is not None
    assert "RuntimeError: unexpected error: a bug on the way out" in result.stop_reason
    # Every attempt handed out stays in doubt for resume to settle; none is lost.
    assert result.counts.get(State.SUCCEEDED, 0) == 0
    assert sum(result.counts.values()) == 20


def test_a_proxy_for_the_endpoint_is_used_and_said(
    emulator: LocalStack, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_dataset(s3, tmp_path, 3)
    # Nothing listens on port 9: every call fails at the proxy, which shows it was used.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    done = run_cli(
        emulator,
        "submit",
        str(data.manifest),
        "--endpoint",
        "demo",
        "--run-dir",
        str(tmp_path / "run"),
        "--json",
        "--no-wait",
    )
    assert done.returncode in (1, 4), done.stderr
    assert "calls go through botocore's HTTP stack" in done.stderr
    assert "Traceback" not in done.stderr
    errors = read_ledger(tmp_path / "run")["error"].dropna()
    assert len(errors) == 3 and errors.str.contains("proxy", case=False).all()
