"""``submit RECORDS --stage``: payloads staged in (moto's) S3 at content addresses, sent through
the emulator, and the export giving the user's own table back with each record's result."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bulkinvoke.emulator import LocalStack

from .conftest import run_cli

STAGE_BUCKET = "staging"


def _stage(s3: Any, name: str) -> str:
    s3.create_bucket(Bucket=STAGE_BUCKET)  # idempotent in us-east-1
    return f"s3://{STAGE_BUCKET}/{name}/"


def _staged_keys(s3: Any, prefix: str) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=STAGE_BUCKET, Prefix=prefix).get("Contents", [])
    return {
        item["Key"]: s3.get_object(Bucket=STAGE_BUCKET, Key=item["Key"])["Body"].read()
        for item in listed
    }


def test_json_lines_records_are_staged_once_sent_and_exported_with_their_columns(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    stage = _stage(s3, "jsonl")
    prompts = ["hello", "bonjour", "hello", "hola"]
    lines = [json.dumps({"id": i, "prompt": p, "lang": p[:2]}) for i, p in enumerate(prompts)]
    # A key only later records have is a column too, empty for the others.
    lines[2] = json.dumps({"id": 2, "prompt": "hello", "lang": "he", "note": "again"})
    records = tmp_path / "records.jsonl"
    records.write_text("\n".join(lines) + "\n")
    run_dir = tmp_path / "run"
    submit = ["submit", str(records), "--endpoint", "demo", "--stage", stage]
    submit += ["--payload-column", "prompt", "--run-dir", str(run_dir), "--json", "--quiet"]
    done = run_cli(emulator, *submit)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    # Two records have the same payload: one object, one call, both rows with its result.
    assert summary["counts"]["succeeded"] == 3 and summary["duplicate_rows"] == 1
    staged = _staged_keys(s3, "jsonl/")
    assert staged == {
        f"jsonl/{hashlib.sha256(p.encode()).hexdigest()}.txt": p.encode() for p in set(prompts)
    }
    exported = tmp_path / "results.parquet"
    made = run_cli(emulator, "export", str(run_dir), "-o", str(exported), "--with-output")
    assert made.returncode == 0, made.stderr
    table = pd.read_parquet(exported).sort_values("row")
    assert table["id"].tolist() == [0, 1, 2, 3]
    assert table["lang"].tolist() == ["he", "bo", "he", "ho"]
    assert table["note"].fillna("-").tolist() == ["-", "-", "again", "-"]
    assert (table["state"] == "succeeded").all()
    # The emulator's handler echoes the payload it read: each record got its own.
    texts = [json.loads(output)["text"] for output in table["output"]]
    assert texts == prompts

    # Submitted again (a second machine, a lost run dir): nothing is uploaded again. A staged
    # object changed behind its back stays changed, so it was not put a second time.
    key = next(iter(staged))
    s3.put_object(Bucket=STAGE_BUCKET, Key=key, Body=b"marker")
    again = run_cli(emulator, *[a if a != str(run_dir) else str(tmp_path / "run2") for a in submit])
    assert again.returncode == 0, again.stderr
    assert s3.get_object(Bucket=STAGE_BUCKET, Key=key)["Body"].read() == b"marker"


def test_a_parquet_table_of_binary_payloads_and_a_dry_run_that_uploads_nothing(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    stage = _stage(s3, "parquet")
    records = tmp_path / "images.parquet"
    images = [bytes([i]) * (10 + i) for i in range(5)]
    pq.write_table(
        pa.table({"image": pa.array(images, pa.binary()), "label": list("abcde")}), records
    )
    common = ["submit", str(records), "--endpoint", "demo", "--stage", stage]
    common += ["--payload-column", "image", "--run-dir", str(tmp_path / "run")]
    planned = run_cli(emulator, *common, "--dry-run", "--json")
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert plan["to_send"] == 5
    assert plan["payloads"] == 5 and plan["payloads_staged_already"] == 0
    assert _staged_keys(s3, "parquet/") == {}, "a dry run writes nothing"
    done = run_cli(emulator, *common, "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"]["succeeded"] == 5
    staged = _staged_keys(s3, "parquet/")
    assert sorted(staged.values()) == sorted(images)
    assert all(key.endswith(".bin") for key in staged)
    again = json.loads(run_cli(emulator, *common, "--dry-run", "--json").stdout)
    assert again["payloads_staged_already"] == 5


def test_a_stage_that_cannot_be_written_stops_with_one_line(
    emulator: LocalStack, tmp_path: Path
) -> None:
    records = tmp_path / "records.jsonl"
    records.write_text('"a"\n"b"\n')
    done = run_cli(
        emulator, "submit", str(records), "--endpoint", "demo", "--stage",
        "s3://no-such-stage-bucket/x/", "--run-dir", str(tmp_path / "run"), "--quiet",
    )  # fmt: skip
    assert done.returncode == 4, done.stderr
    assert "cannot stage the payloads under s3://no-such-stage-bucket/x/" in done.stderr
    assert "NoSuchBucket" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()


def test_a_stage_that_is_no_s3_location_is_a_usage_error(tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    records.write_text('"a"\n')
    for local in ([], ["--local"]):
        done = subprocess.run(
            [sys.executable, "-m", "bulkinvoke", "submit", str(records), "--endpoint", "demo",
             "--stage", str(tmp_path / "dir"), *local],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "--stage must be an s3://bucket/prefix/ location" in done.stderr
        assert "Traceback" not in done.stderr


def test_the_records_columns_travel_with_a_mirrored_ledger(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    stage = _stage(s3, "mirrored")
    records = tmp_path / "records.jsonl"
    records.write_text("".join(json.dumps({"k": i, "body": f"p{i}"}) + "\n" for i in range(3)))
    ledger = f"s3://{STAGE_BUCKET}/ledgers/mirrored/"
    done = run_cli(
        emulator, "submit", str(records), "--endpoint", "demo", "--stage", stage,
        "--payload-column", "body", "--ledger-uri", ledger, "--run-dir", str(tmp_path / "run"),
        "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # Exported on another machine, from the prefix alone.
    exported = tmp_path / "elsewhere.parquet"
    made = run_cli(emulator, "export", ledger, "-o", str(exported))
    assert made.returncode == 0, made.stderr
    assert pd.read_parquet(exported).sort_values("row")["k"].tolist() == [0, 1, 2]


def test_a_stage_bucket_s3_refuses_is_one_line_with_local_too(tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    records.write_text('{"p": "a"}\n')
    done = subprocess.run(
        [sys.executable, "-m", "bulkinvoke", "submit", str(records), "--endpoint", "demo",
         "--stage", "s3://b/stage/", "--payload-column", "p", "--local"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 4, done.stderr
    assert "cannot stage the payloads under s3://b/stage/" in done.stderr
    assert "InvalidBucketName" in done.stderr and "Traceback" not in done.stderr
