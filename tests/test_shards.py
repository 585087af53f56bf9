"""Shards of a manifest: a stable rule, an exact partition, balanced, and the run's contract."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pyarrow as pa
import pytest
import typer.main
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkinvoke.cli.app import app
from bulkinvoke.errors import ShardError
from bulkinvoke.manifest.ids import inference_id
from bulkinvoke.manifest.loader import TABLE_SCHEMA, Duplicate, Manifest, ManifestProblem
from bulkinvoke.run.runner import default_run_dir
from bulkinvoke.scale.shards import Shard, resolve_shard, select_shard, shard_of


def make_manifest(locations: list[str], own_ids: list[str | None] | None = None) -> Manifest:
    n = len(locations)
    columns = {
        "row": pa.array(range(1, n + 1), pa.int64()),
        "line": pa.array(range(2, n + 2), pa.int64()),
        "input_location": pa.array(locations, pa.string()),
        "inference_id": pa.array(own_ids or [None] * n, pa.string()),
    }
    table = pa.table(
        {f.name: columns.get(f.name, pa.nulls(n, f.type)) for f in TABLE_SCHEMA},
        schema=TABLE_SCHEMA,
    )
    return Manifest("m.csv", "sha256:x", table, [], [])


def rows_of(manifest: Manifest) -> list[int]:
    return manifest.table.column("row").to_pylist()


def test_the_rule_is_the_documented_one_and_never_changes() -> None:
    # Golden values: a changed rule would move rows between shards of a run in progress.
    digest = hashlib.sha256(b"my-own-id-42").digest()
    assert shard_of("my-own-id-42", 1000) == int.from_bytes(digest[:8], "big") % 1000 == 851
    assert shard_of("bi-aaaaaaaaaaaaaaaaaaaaaaaa", 7) == 2
    ids = [inference_id("", "demo", f"s3://b/k{i}") for i in range(8)]
    assert [shard_of(i, 3) for i in ids] == [2, 0, 2, 1, 1, 0, 0, 2]


@settings(max_examples=60, deadline=None)
@given(
    locations=st.lists(
        st.text(st.characters(codec="utf-8"), min_size=1, max_size=30), unique=True, max_size=60
    ),
    count=st.integers(1, 12),
    namespace=st.text(max_size=8),
)
def test_shards_partition_any_manifest_exactly(
    locations: list[str], count: int, namespace: str
) -> None:
    manifest = make_manifest([f"s3://bucket/{loc}" for loc in locations])
    seen: list[int] = []
    for index in range(count):
        seen += rows_of(select_shard(manifest, Shard(index, count), namespace, "ep"))
    assert sorted(seen) == rows_of(manifest), "every row in exactly one shard"


# Keys as alike as a real dataset's: one prefix, a sequence number.
LARGE = [inference_id("v1", "ep", f"s3://b/part-{i:08d}.jpg") for i in range(20_000)]


@settings(max_examples=30, deadline=None)
@given(count=st.integers(2, 64))
def test_shards_are_balanced(count: int) -> None:
    sizes = [0] * count
    for identifier in LARGE:
        sizes[shard_of(identifier, count)] += 1
    expected = len(LARGE) / count
    # Binomial: a shard more than 6 standard deviations off would mean a biased rule.
    tolerance = 6 * math.sqrt(expected * (1 - 1 / count))
    assert max(abs(size - expected) for size in sizes) <= tolerance, sizes


def test_a_rows_own_inference_id_decides_its_shard() -> None:
    manifest = make_manifest(["s3://b/a", "s3://b/b"], ["id-one", None])
    for index in range(5):
        chosen = rows_of(select_shard(manifest, Shard(index, 5), "", "ep"))
        assert (1 in chosen) == (shard_of("id-one", 5) == index)
        assert (2 in chosen) == (shard_of(inference_id("", "ep", "s3://b/b"), 5) == index)


def test_invalid_rows_and_duplicates_are_in_exactly_one_shard() -> None:
    manifest = make_manifest(["s3://b/a", "s3://b/b", "s3://b/c"])
    manifest.problems = [ManifestProblem("m.csv", 9, "bad", row=4, input_location="nope")]
    manifest.duplicates = [Duplicate(5, 2, "s3://b/b")]
    problems, duplicates = [], []
    for index in range(3):
        part = select_shard(manifest, Shard(index, 3), "", "ep")
        problems += part.problems
        duplicates += part.duplicates
        assert all(d.first_row in rows_of(part) for d in part.duplicates)
        assert part.fingerprint == manifest.fingerprint
    assert problems == manifest.problems and duplicates == manifest.duplicates


@pytest.mark.parametrize(
    ("spec", "shards", "environ", "expected"),
    [
        (None, None, {}, None),
        ("2/5", None, {}, Shard(2, 5)),
        ("2", 5, {}, Shard(2, 5)),
        ("2/5", 5, {}, Shard(2, 5)),
        ("auto", 4, {"AWS_BATCH_JOB_ARRAY_INDEX": "3"}, Shard(3, 4)),
        ("auto", 4, {"JOB_COMPLETION_INDEX": "2"}, Shard(2, 4)),
        ("auto", 4, {"JOB_COMPLETION_INDEX": "1", "AWS_BATCH_JOB_ARRAY_INDEX": "1"}, Shard(1, 4)),
        (
            "AUTO",
            None,
            {"AWS_BATCH_JOB_ARRAY_INDEX": "0", "AWS_BATCH_JOB_ARRAY_SIZE": "2"},
            Shard(0, 2),
        ),
    ],
)
def test_resolve_shard(
    spec: str | None, shards: int | None, environ: dict[str, str], expected: Shard | None
) -> None:
    assert resolve_shard(spec, shards, environ) == expected


@pytest.mark.parametrize(
    ("spec", "shards", "environ", "message"),
    [
        (None, 3, {}, "--shards needs --shard"),
        ("auto", 3, {}, "AWS_BATCH_JOB_ARRAY_INDEX.*JOB_COMPLETION_INDEX.*neither is set"),
        ("auto", 3, {"JOB_COMPLETION_INDEX": "x"}, "JOB_COMPLETION_INDEX='x' is not a shard"),
        (
            "auto",
            3,
            {"JOB_COMPLETION_INDEX": "0", "AWS_BATCH_JOB_ARRAY_INDEX": "1"},
            "name different shards",
        ),
        ("auto", None, {"AWS_BATCH_JOB_ARRAY_INDEX": "1"}, "how many shards"),
        ("1", None, {}, "how many shards"),
        ("3/3", None, {}, "numbered 0-2"),
        ("1/3", 4, {}, "--shards says 4"),
        ("one/3", None, {}, "--shard takes"),
        ("0/0", None, {}, "must be 1-"),
    ],
)
def test_resolve_shard_refuses(
    spec: str | None, shards: int | None, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ShardError, match=message):
        resolve_shard(spec, shards, environ)


def test_a_shards_default_run_dir_says_which_shard() -> None:
    assert default_run_dir("data/images.csv", "ep", Shard(1, 3)) == Path(
        "bulkinvoke-runs/images-ep-shard-1-of-3"
    )
    assert default_run_dir("data/images.csv", "ep") == Path("bulkinvoke-runs/images-ep")


def test_the_aws_batch_example_is_a_valid_sharded_submit() -> None:
    examples = Path(__file__).parent.parent / "examples" / "aws-batch"
    definition = json.loads((examples / "job-definition.json").read_text())
    job = json.loads((examples / "submit-array-job.json").read_text())
    parameters = {**definition["parameters"], **job["parameters"]}
    command = [
        parameters[word.removeprefix("Ref::")] if word.startswith("Ref::") else word
        for word in definition["containerProperties"]["command"]
    ]
    assert command[:2] == ["bulkinvoke", "submit"]
    submit = typer.main.get_command(app).commands["submit"]  # type: ignore[attr-defined]
    parsed = submit.make_context("submit", command[2:]).params
    assert parsed["shard"] == "auto"
    assert parsed["shards"] == job["arrayProperties"]["size"]
    assert parsed["ledger_uri"].startswith("s3://")
