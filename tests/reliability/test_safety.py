"""What a run writes and says never holds a secret, and goes only where it should.

Credentials (the access key, the secret, the session token) appear in no file a run writes, no
report, no export and no output; custom attributes (sensitive, says the API) appear only in the
saved options (run.json, plan.parquet); export writes the file named and nothing else; run
directories are private; and --expected-bucket-owner reaches every S3 call.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from fault_proxy import FaultProxy
from typer.testing import CliRunner

import bulkinvoke.run.local
import bulkinvoke.run.runner
from bulkinvoke.calls.aws import AwsSettings, Clients
from bulkinvoke.cli.app import app
from bulkinvoke.emulator import EndpointSpec, LocalStack

from .conftest import (
    ENDPOINT,
    INPUT_BUCKET,
    OUTPUT_BUCKET,
    cli_env,
    make_dataset,
    run_cli,
)

ACCOUNT = "123456789012"  # moto's, which owns every bucket of the emulator


def _all_text(path: Path) -> str:
    """What a file says, Parquet decoded (its pages are compressed, so bytes would hide it)."""
    data = path.read_bytes()
    if data[:4] == b"PAR1":
        table = pq.read_table(path)
        return json.dumps(table.to_pylist(), default=str) + repr(table.schema.metadata)
    return data.decode("latin-1")


def _files(root: Path) -> Iterator[Path]:
    return (path for path in sorted(root.rglob("*")) if path.is_file())


def _leaks(root: Path, outputs: list[str], secrets: list[str], allowed: set[str]) -> list[str]:
    found = []
    for path in _files(root):
        text = _all_text(path)
        found += [f"{path}: {s}" for s in secrets if s in text and path.name not in allowed]
    for number, output in enumerate(outputs):
        found += [f"output {number}: {s}" for s in secrets if s in output]
    return found


def _reports_and_exports(env: dict[str, str], run_dir: Path, into: Path) -> list[str]:
    """Every report format and every export format of ``run_dir``, written into ``into``;
    returns what the commands printed. In-process: only what they write is looked at here,
    the processes of the runs themselves were real."""
    printed = []
    commands = [["status", str(run_dir)], ["status", str(run_dir), "--json"],
                ["report", str(run_dir)]]  # fmt: skip
    commands += [["report", str(run_dir), "-o", str(into / f"report.{suffix}")]
                 for suffix in ("json", "md", "html", "txt")]  # fmt: skip
    commands += [["export", str(run_dir), "-o", str(into / f"export.{suffix}")]
                 for suffix in ("csv", "jsonl", "parquet")]  # fmt: skip
    runner = CliRunner()
    for command in commands:
        result = runner.invoke(app, command, env=env)
        assert result.exit_code == 0, (command, result.output)
        printed += [result.stdout, result.stderr]
    return printed


def test_no_credential_reaches_any_file_or_output(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    secrets = {
        "AWS_ACCESS_KEY_ID": "AKIASAFETYKEYID77777",
        "AWS_SECRET_ACCESS_KEY": "Safety/Secret/Key/0123456789abcdefghijKLMN",
        "AWS_SESSION_TOKEN": "FwoGZXIvYXdzSafetySessionToken/0123456789+abcdefXYZ==",
    }
    # The endpoint knows these credentials (it checks every signature), as AWS would.
    known = {**emulator.config.credentials, secrets["AWS_ACCESS_KEY_ID"]: secrets[
        "AWS_SECRET_ACCESS_KEY"]}  # fmt: skip
    emulator.configure(model_failure_probability=0.2, credentials=known)
    data = make_dataset(s3, tmp_path, 40, missing=5)
    run_dir = tmp_path / "run"
    printed: list[str] = []
    with (
        FaultProxy(emulator.sagemaker_url, flavor="json", seed=3) as sagemaker,
        FaultProxy(emulator.s3_url, flavor="s3", seed=4) as s3_proxy,
    ):
        env = cli_env(emulator, sagemaker_url=sagemaker.url, s3_url=s3_proxy.url, extra=secrets)
        # The service refuses the signature, echoing the canonical request, session token
        # included: the run stops on it.
        sagemaker.configure(faults={"signature": 0.05})
        done = run_cli(env, "submit", str(data.manifest), "--endpoint", ENDPOINT,
                       "--run-dir", str(run_dir), "--rate", "100")  # fmt: skip
        assert done.returncode == 4, done.stderr
        printed += [done.stdout, done.stderr]
        # Then S3 does the same while results are collected.
        sagemaker.clear()
        s3_proxy.configure(faults={"signature": 0.3})
        done = run_cli(env, "resume", str(run_dir), "--timeout", "20")
        assert done.returncode in (3, 4), done.stderr
        printed += [done.stdout, done.stderr]
        s3_proxy.clear()
        done = run_cli(env, "resume", str(run_dir))
        assert done.returncode == 1, done.stderr  # the model failed some, 5 inputs are missing
        printed += [done.stdout, done.stderr]
        assert sagemaker.injected["signature"] and s3_proxy.injected["signature"]
    printed += _reports_and_exports(env, run_dir, tmp_path)
    leaks = _leaks(tmp_path, printed, list(secrets.values()), set())
    assert not leaks, "\n".join(leaks)


@pytest.fixture
def echoing_endpoint(emulator: LocalStack) -> Iterator[str]:
    name = "rel-echo"
    emulator.add_endpoint(
        EndpointSpec(
            name,
            f"s3://{OUTPUT_BUCKET}/echo-out",
            f"s3://{OUTPUT_BUCKET}/echo-fail",
            handler="tests.reliability.echo_model:fail_every_third",
        )
    )
    yield name
    emulator.remove_endpoint(name)


def test_custom_attributes_stay_in_the_saved_options(
    emulator: LocalStack, s3: Any, echoing_endpoint: str, tmp_path: Path
) -> None:
    run_value = "run-SECRET-ca-7f3e"
    data = make_dataset(s3, tmp_path, 30)
    manifest = tmp_path / "with-attributes.csv"
    rows = [
        f"{location},{'' if i % 2 else f'row-SECRET-ca-{i}'}"
        for i, location in enumerate(data.locations)
    ]
    manifest.write_text("input_location,custom_attributes\n" + "\n".join(rows) + "\n")
    run_dir = tmp_path / "run"
    env = cli_env(emulator)
    done = run_cli(env, "submit", str(manifest), "--endpoint", echoing_endpoint,
                   "--run-dir", str(run_dir), "--custom-attributes", run_value)  # fmt: skip
    # The model fails a third of the items, echoing the attributes in its failure objects.
    assert done.returncode == 1, done.stderr
    assert (
        "SECRET-ca"
        in s3.get_object(
            Bucket=OUTPUT_BUCKET,
            Key=next(
                o["Key"]
                for o in s3.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix="echo-fail/")["Contents"]
            ),
        )["Body"]
        .read()
        .decode()
    )
    printed = [done.stdout, done.stderr]
    again = run_cli(env, "resume", str(run_dir))
    printed += [again.stdout, again.stderr]
    printed += _reports_and_exports(env, run_dir, tmp_path / "out")
    saved = {"run.json", "plan.parquet", manifest.name}
    leaks = _leaks(tmp_path, printed, ["SECRET-ca"], saved)
    assert not leaks, "\n".join(leaks)
    assert run_value in (run_dir / "run.json").read_text()


def _fingerprints(root: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in _files(root)}


def test_export_writes_the_named_file_and_nothing_else(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    data = make_dataset(s3, tmp_path, 20, missing=4)
    run_dir = tmp_path / "run"
    env = cli_env(emulator)
    assert run_cli(env, "submit", str(data.manifest), "--endpoint", ENDPOINT, "--run-dir",
                   str(run_dir), "--quiet").returncode == 1  # fmt: skip
    runner = CliRunner()
    odd = "we ird;$(touch pwned)&'name"
    for target, extra in [
        (tmp_path / "out" / "deeper" / "all.csv", []),
        (tmp_path / "out" / f"{odd}.jsonl", ["--state", "failed"]),
        (tmp_path / "out" / "..all.parquet", ["--state", "succeeded", "--state", "FAILED"]),
    ]:
        before = _fingerprints(tmp_path)
        result = runner.invoke(app, ["export", str(run_dir), "-o", str(target), *extra], env=env)
        assert result.exit_code == 0, result.output
        after = _fingerprints(tmp_path)
        assert set(after) - set(before) == {target}, set(after) ^ set(before)
        assert {p: h for p, h in after.items() if p != target} == before
    assert not list(tmp_path.rglob("pwned"))
    # A refused export writes nothing at all.
    before = _fingerprints(tmp_path)
    for command in (
        ["export", str(run_dir), "-o", str(tmp_path / "new" / "x.csv"), "--state", "bogus"],
        ["export", str(run_dir), "-o", str(tmp_path / "new" / "x.xlsx")],
        ["export", str(tmp_path / "no-run"), "-o", str(tmp_path / "new" / "x.csv")],
    ):
        result = runner.invoke(app, command, env=env)
        assert result.exit_code == 2, result.output
    assert _fingerprints(tmp_path) == before
    assert not (tmp_path / "new").exists()


def test_run_directories_are_private_whatever_the_umask(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    data = make_dataset(s3, tmp_path, 5)
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o777)
    os.chmod(existing, 0o777)
    for run_dir in (tmp_path / "a" / "new", existing):
        done = subprocess.run(
            [sys.executable, "-m", "bulkinvoke", "submit", str(data.manifest), "--endpoint",
             ENDPOINT, "--run-dir", str(run_dir), "--no-wait", "--quiet"],
            env=cli_env(emulator), capture_output=True, text=True, timeout=60,
            # The child's umask is the point: the run directory must not depend on it.
            preexec_fn=lambda: os.umask(0),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE((run_dir / "events").stat().st_mode) == 0o700
        for path in _files(run_dir):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def _owner_headers(requests: list[Any]) -> list[tuple[str, str | None]]:
    return [
        (f"{seen.method} {seen.target}",
         {k.lower(): v for k, v in seen.headers.items()}.get("x-amz-expected-bucket-owner"))
        for seen in requests
    ]  # fmt: skip


def test_expected_bucket_owner_reaches_every_s3_call(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    emulator.configure(model_failure_probability=0.3)
    prefix = f"owned-{uuid.uuid4().hex[:8]}"
    for i in range(30):
        s3.put_object(Bucket=INPUT_BUCKET, Key=f"{prefix}/{i:03d}.json", Body=b"{}")
    run_dir = tmp_path / "run"
    with FaultProxy(emulator.s3_url, flavor="s3", record=True) as proxy:
        env = cli_env(emulator, s3_url=proxy.url)
        source = f"s3://{INPUT_BUCKET}/{prefix}/"
        done = run_cli(env, "submit", source, "--endpoint", ENDPOINT, "--run-dir", str(run_dir),
                       "--expected-bucket-owner", ACCOUNT, "--quiet")  # fmt: skip
        assert done.returncode == 1, done.stderr  # the model failed some
        for command in (["collect", str(run_dir)], ["resume", str(run_dir)]):
            done = run_cli(env, *command, "--quiet")
            assert done.returncode == 1, done.stderr
        seen = _owner_headers(proxy.requests())
    assert any(f"prefix={prefix}" in request for request, _ in seen), "the manifest was listed"
    assert any(request.startswith("GET /rel-results/fail") for request, _ in seen)
    assert [request for request, owner in seen if owner != ACCOUNT] == []


def test_expected_bucket_owner_reaches_the_local_uploads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, str | None]] = []

    def record(request: Any, event_name: str, **_: Any) -> None:
        owner = request.headers.get("x-amz-expected-bucket-owner")
        operation = event_name.rsplit(".", 1)[-1]
        seen.append((operation, owner.decode() if isinstance(owner, bytes) else owner))

    def recording(make: Any) -> Any:
        def make_clients(settings: AwsSettings, **kwargs: Any) -> Clients:
            clients = make(settings, **kwargs)
            clients.s3.meta.events.register("before-send.s3", record)
            return clients

        return make_clients

    for module in (bulkinvoke.run.local, bulkinvoke.run.runner):
        monkeypatch.setattr(module, "make_clients", recording(module.make_clients))
    inputs = tmp_path / "job-inputs"
    inputs.mkdir()
    for i in range(3):
        (inputs / f"{i}.json").write_text("{}")
    manifest = tmp_path / "job.csv"
    manifest.write_text(
        "input_location\n" + "".join(f"s3://local-in/d/{i}.json\n" for i in range(3))
    )
    result = CliRunner().invoke(
        app,
        ["submit", str(manifest), "--endpoint", "local", "--local", "--run-dir",
         str(tmp_path / "run"), "--expected-bucket-owner", ACCOUNT, "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    operations = {operation for operation, _ in seen}
    assert "PutObject" in operations, "the inputs were uploaded"
    assert {"HeadObject", "ListObjectsV2"} & operations, "the results were collected"
    # CreateBucket has no such parameter: the bucket is the caller's from its creation.
    assert [(op, owner) for op, owner in seen if owner != ACCOUNT and op != "CreateBucket"] == []
