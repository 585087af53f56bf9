"""Export: the pure parts (CSV escaping, JSON Lines, encoding choice, JSON expansion, chunking),
downloads against a fake S3 client, and whole exports of a ledger made here."""

from __future__ import annotations

import base64
import io
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bulkinvoke.cli.app import app
from bulkinvoke.errors import ExportError, ExportStopped
from bulkinvoke.export.frame import read_ledger
from bulkinvoke.export.outputs import (
    FAILURE_STREAK,
    OUTPUT_LIMIT,
    Downloader,
    JsonColumns,
    decode_body,
    json_fields,
    plan_chunks,
)
from bulkinvoke.export.table import export_table
from bulkinvoke.export.writers import csv_safe, iso_times, json_lines
from bulkinvoke.ledger.store import Event, Ledger
from bulkinvoke.states import State

T0 = 1_767_225_600.0
OWNER = "111122223333"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ---------------------------------------------------------------- CSV escaping


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1", "'+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("s3://bucket/key=1", "s3://bucket/key=1"),
        (" =1", " =1"),
        ("", ""),
        (None, None),
    ],
)
def test_csv_safe_quotes_cells_a_spreadsheet_would_run(cell: str | None, written: str) -> None:
    table = pa.table({"text": pa.array([cell], pa.large_string())})
    assert csv_safe(table)["text"].to_pylist() == [written]


def test_csv_safe_leaves_numbers_and_the_schema_alone() -> None:
    table = pa.table({"n": [-1.5, 2.0], "i": [-3, 4], "s": pa.array(["-x", "y"], pa.string())})
    safe = csv_safe(table)
    assert safe.schema == table.schema
    assert safe["n"].to_pylist() == [-1.5, 2.0]
    assert safe["i"].to_pylist() == [-3, 4]
    assert safe["s"].to_pylist() == ["'-x", "y"]


# ---------------------------------------------------------------- JSON Lines


def _lines(table: pa.Table) -> list[dict[str, Any]]:
    text = json_lines(table).to_pybytes().decode("utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.split("\n")[:-1]]


def test_json_lines_writes_every_type_as_json() -> None:
    table = pa.table(
        {
            "s": pa.array(
                ['a"b\\c/d', "line\nbreak\ttab\x00nul\x1f", "é ✓", None], pa.large_string()
            ),
            "i": pa.array([2**62, -1, 0, None], pa.int64()),
            "f": pa.array([0.1, float("nan"), float("inf"), None], pa.float64()),
            "b": pa.array([True, False, None, True]),
            "t": pa.array([0, 1500, -1, None], pa.timestamp("ms", "UTC")),
            'we"ird\nname': pa.array([1, 2, 3, 4], pa.int32()),
        }
    )
    rows = _lines(table)
    assert [r["s"] for r in rows] == ['a"b\\c/d', "line\nbreak\ttab\x00nul\x1f", "é ✓", None]
    assert [r["i"] for r in rows] == [2**62, -1, 0, None]
    assert [r["f"] for r in rows] == [0.1, None, None, None]
    assert [r["b"] for r in rows] == [True, False, None, True]
    assert [r["t"] for r in rows] == [
        "1970-01-01T00:00:00.000Z",
        "1970-01-01T00:00:01.500Z",
        "1969-12-31T23:59:59.999Z",
        None,
    ]
    assert [r['we"ird\nname'] for r in rows] == [1, 2, 3, 4]
    assert "\\/" not in json_lines(table).to_pybytes().decode()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text()), min_size=1, max_size=20))
def test_json_lines_round_trips_any_text(values: list[str | None]) -> None:
    table = pa.table({"s": pa.array(values, pa.large_string())})
    assert [row["s"] for row in _lines(table)] == values


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-(10**13), 10**13), min_size=1, max_size=20))
def test_iso_times_are_iso_8601_utc_with_milliseconds(millis: list[int]) -> None:
    times = pa.chunked_array([pa.array(millis, pa.timestamp("ms", "UTC"))])
    expected = [
        (EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")[:-6] + "Z"
        for ms in millis
    ]
    assert iso_times(times).to_pylist() == expected


# ---------------------------------------------------------------- bodies, JSON, chunks


def test_decode_body_chooses_text_or_base64() -> None:
    assert decode_body("héllo".encode(), truncated=False) == ("héllo", "utf-8")
    binary = b"\xff\xd8\xff\xe0jpeg"
    assert decode_body(binary, truncated=False) == (base64.b64encode(binary).decode(), "base64")
    # The cap cut "é" (two bytes) in half: the text is kept, without the half character.
    assert decode_body("abé".encode()[:3], truncated=True) == ("ab", "utf-8")
    # Not cut by the cap, the same bytes are not UTF-8.
    assert decode_body("abé".encode()[:3], truncated=False)[1] == "base64"
    assert decode_body(b"", truncated=False) == ("", "utf-8")


def test_json_fields_flattens_one_level() -> None:
    text = (
        '{"label": "cat", "score": 0.9, "n": 3, "ok": true, "none": null, "box": [1, 2], '
        '"meta": {"a": {"b": 1}}}'
    )
    assert json_fields(text) == {
        "label": "cat",
        "score": 0.9,
        "n": 3,
        "ok": True,
        "none": None,
        "box": "[1, 2]",
        "meta": '{"a": {"b": 1}}',
    }


@pytest.mark.parametrize(
    "text", [None, "", "[1, 2]", '"text"', "42", "{not json", "{" * 100_000, "plain words"]
)
def test_json_fields_is_none_unless_the_output_is_an_object(text: str | None) -> None:
    assert json_fields(text) is None


def test_json_columns_type_each_key_by_every_value_seen() -> None:
    rows: list[dict[str, Any] | None] = [
        {"b": True, "i": 1, "f": 1, "t": "x", "mixed": 1, "big": 1, "null": None},
        None,
        {"b": False, "i": -2, "f": 2.5, "t": None, "mixed": "one", "big": 2**64},
        {"nested": "[1]"},
    ]
    columns = JsonColumns()
    for row in rows:
        columns.observe(row)
    types = {f.name: f.type for f in columns.fields()}
    assert types == {
        "output.b": pa.bool_(),
        "output.i": pa.int64(),
        "output.f": pa.float64(),
        "output.t": pa.large_string(),
        "output.mixed": pa.large_string(),
        "output.big": pa.large_string(),
        "output.null": pa.large_string(),
        "output.nested": pa.large_string(),
    }
    values = dict(zip(types, (a.to_pylist() for a in columns.arrays(rows)), strict=True))
    assert values["output.i"] == [1, None, -2, None]
    assert values["output.f"] == [1.0, None, 2.5, None]
    assert values["output.mixed"] == ["1", None, "one", None]
    assert values["output.big"] == ["1", None, str(2**64), None]
    assert values["output.nested"] == [None, None, None, "[1]"]


def test_json_columns_stop_at_their_limit() -> None:
    columns = JsonColumns(limit=2)
    columns.observe({"a": 1, "b": 2})
    columns.observe({"c": 3, "a": 4})
    assert [f.name for f in columns.fields()] == ["output.a", "output.b"]
    assert columns.capped
    assert [a.to_pylist() for a in columns.arrays([{"a": 4, "c": 3}])] == [[4], [None]]


def test_plan_chunks_bounds_rows_and_bytes() -> None:
    sizes = np.array([10, 10, 10, 100, 0, 0, 0, 0, 5])
    assert list(plan_chunks(sizes, max_rows=3, max_bytes=25)) == [
        (0, 2),
        (2, 3),
        (3, 4),
        (4, 7),
        (7, 9),
    ]
    assert list(plan_chunks(np.zeros(0, np.int64), max_rows=3, max_bytes=25)) == []
    assert list(plan_chunks(np.zeros(5, np.int64), max_rows=2, max_bytes=1)) == [
        (0, 2),
        (2, 4),
        (4, 5),
    ]


# ---------------------------------------------------------------- downloads (fake S3)


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} happened"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "GetObject",
    )


class FakeS3:
    """get_object over a dict of (bucket, key) -> bytes, honouring Range as S3 does."""

    def __init__(self, objects: dict[tuple[str, str], bytes], fail: BaseException | None = None):
        self.objects = objects
        self.fail = fail
        self.calls: list[dict[str, Any]] = []

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.fail is not None:
            raise self.fail
        key = (kwargs["Bucket"], kwargs["Key"])
        if key not in self.objects:
            raise _client_error("NoSuchKey", 404)
        data = self.objects[key]
        first, last = (int(n) for n in kwargs["Range"].removeprefix("bytes=").split("-"))
        if first >= len(data):
            raise _client_error("InvalidRange", 416)
        return {"Body": io.BytesIO(data[first : last + 1])}


def test_downloader_caps_decodes_and_reports_each_object() -> None:
    s3 = FakeS3(
        {
            ("b", "text.out"): b'{"label": "cat"}',
            ("b", "exact.out"): b"x" * 100,
            ("b", "long.out"): b"y" * 101,
            ("b", "binary.out"): b"\x00\xff\xfe",
            ("b", "empty.out"): b"",
        }
    )
    locations = [
        "s3://b/text.out",
        "s3://b/exact.out",
        "s3://b/long.out",
        "s3://b/binary.out",
        "s3://b/empty.out",
        "s3://b/missing.out",
        "not-a-uri",
    ]
    with Downloader(s3, expected_bucket_owner=OWNER, limit=100) as downloader:
        bodies = downloader.fetch_all(locations)
    text, exact, long, binary, empty, missing, bad = bodies
    assert (text.text, text.encoding, text.truncated) == ('{"label": "cat"}', "utf-8", False)
    assert (exact.text, exact.truncated) == ("x" * 100, False)
    assert (long.text, long.truncated) == ("y" * 100, True)
    assert (binary.text, binary.encoding) == (base64.b64encode(b"\x00\xff\xfe").decode(), "base64")
    assert (empty.text, empty.encoding, empty.error) == ("", "utf-8", None)
    assert missing.text is None and missing.error == "NoSuchKey: NoSuchKey happened"
    assert bad.text is None and "not an S3 URI" in (bad.error or "")
    assert len(s3.calls) == 6
    assert all(call["ExpectedBucketOwner"] == OWNER for call in s3.calls)
    assert all(call["Range"] == "bytes=0-100" for call in s3.calls)


def test_downloader_sends_no_owner_when_the_run_has_none() -> None:
    s3 = FakeS3({("b", "k"): b"x"})
    with Downloader(s3) as downloader:
        downloader.fetch_all(["s3://b/k"])
    assert "ExpectedBucketOwner" not in s3.calls[0]


def test_missing_objects_never_stop_the_export() -> None:
    s3 = FakeS3({})
    with Downloader(s3) as downloader:
        bodies = downloader.fetch_all([f"s3://b/{i}" for i in range(FAILURE_STREAK * 3)])
    assert all(body.error for body in bodies)


class FlakyS3(FakeS3):
    """Every other object fails with S3's own error (throttling that outlasted the retries)."""

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        if int(kwargs["Key"]) % 2:
            raise _client_error("SlowDown", 503)
        return super().get_object(**kwargs)


def test_a_success_between_s3_failures_keeps_the_export_going() -> None:
    keys = [str(i) for i in range(FAILURE_STREAK * 4)]
    s3 = FlakyS3({("b", key): b"ok" for key in keys})
    with Downloader(s3, threads=1) as downloader:
        bodies = downloader.fetch_all([f"s3://b/{key}" for key in keys])
    assert [body.text for body in bodies[:2]] == ["ok", None]
    assert (bodies[1].error or "").startswith("SlowDown")


@pytest.mark.parametrize(
    "failure",
    [
        _client_error("ExpiredToken", 400),
        _client_error("AccessDenied", 403),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    ],
)
def test_s3_failing_for_every_object_stops_the_export(failure: BaseException) -> None:
    s3 = FakeS3({}, fail=failure)
    with Downloader(s3) as downloader, pytest.raises(ExportStopped, match="in a row failed"):
        downloader.fetch_all([f"s3://b/{i}" for i in range(FAILURE_STREAK * 4)])


# ---------------------------------------------------------------- whole exports


OUTPUTS = {
    ("out", "1.out"): b'{"label": "cat", "score": 0.5}',
    ("out", "2.out"): b"plain text",
    ("out", "../../etc/passwd"): b'{"label": "dog", "score": 1}',
    ("out", "/abs/olute"): b"\xff\xfe",
    ("out", "..\\..\\win"): b"[1, 2]",
    ("out", "nul\x00key"): b"=cmd|' /C calc'!A0",
}


def make_run(run: Path, outputs: list[tuple[str, str]]) -> Path:
    """A run whose first rows succeeded with these outputs, then one failed row with a
    formula-like error, then one row never sent; its plan has custom attributes."""
    rows = len(outputs) + 2
    plan = pa.table(
        {
            "row": pa.array(range(1, rows + 1), pa.int64()),
            "line": pa.array(range(2, rows + 2), pa.int64()),
            "input_location": [f"s3://in/data/{i}.json" for i in range(rows)],
            "custom_attributes": ["top-secret-attribute"] * rows,
        }
    )
    events = []
    for row, (bucket, key) in enumerate(outputs, start=1):
        events += [
            Event(row, 1, State.SUBMITTED, T0, inference_id=f"bi-{row}", submitted_at=T0),
            Event(
                row,
                1,
                State.SUCCEEDED,
                T0 + 2,
                completed_at=T0 + 1.5,
                output_location=f"s3://{bucket}/{key}",
                output_bytes=100,
            ),
        ]
    events.append(Event(rows - 1, 1, State.FAILED, T0 + 1, error="=1+2 model error", retries=2))
    config = {"options": {"aws": {"expected_bucket_owner": OWNER, "region": "us-east-1"}}}
    with Ledger.create(run, config, plan) as ledger:
        ledger.record_many(events)
    return run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """Eight rows: six succeeded, their outputs in OUTPUTS under keys that would be dangerous
    as paths; one failed; one never sent."""
    return make_run(tmp_path / "run", list(OUTPUTS))


def read_export(path: Path) -> pd.DataFrame:
    """An exported file, whatever its format, as a DataFrame."""
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines()])


def _values(column: pd.Series) -> list[Any]:
    """The column's values with every kind of missing value as None."""
    return [None if pd.isna(value) else value for value in column]


def _files(directory: Path) -> list[str]:
    """Every path under ``directory`` but the run directory's."""
    paths = (path.relative_to(directory) for path in directory.rglob("*"))
    return sorted(str(path) for path in paths if path.parts[0] != "run")


def test_plain_parquet_export_is_read_ledger(run_dir: Path, tmp_path: Path) -> None:
    result = export_table(run_dir, tmp_path / "all.parquet")
    assert result.rows == 8
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "all.parquet"), read_ledger(run_dir))


@pytest.mark.parametrize("name", ["all.csv", "all.jsonl"])
def test_plain_text_exports_hold_read_ledgers_values(
    run_dir: Path, tmp_path: Path, name: str
) -> None:
    export_table(run_dir, tmp_path / name)
    expected, got = read_ledger(run_dir), read_export(tmp_path / name)
    assert list(got.columns) == list(expected.columns)
    for column in ("row", "input_location", "state", "attempts", "output_location", "retries"):
        assert _values(got[column]) == _values(expected[column])
    # The one formula-like cell is quoted for spreadsheets, in CSV only.
    quoted = "'" if name.endswith(".csv") else ""
    assert _values(got["error"]) == [None] * 6 + [quoted + "=1+2 model error", None]
    assert _values(pd.to_datetime(got["completed_at"])) == _values(expected["completed_at"])
    assert got["completed_at"][0] == "2026-01-01T00:00:01.500Z"
    assert _values(got["latency_s"]) == [1.5] * 6 + [None, None]


def test_state_filter_keeps_only_those_states(run_dir: Path, tmp_path: Path) -> None:
    export_table(run_dir, tmp_path / "f.parquet", states=["FAILED", "pending"])
    assert pd.read_parquet(tmp_path / "f.parquet")["row"].tolist() == [7, 8]
    assert export_table(run_dir, tmp_path / "none.csv", states=["expired"]).rows == 0
    assert (tmp_path / "none.csv").read_text().startswith('"row","input_location"')
    for name in ("none.parquet", "none.jsonl", "none.csv"):
        result = export_table(
            run_dir, tmp_path / name, states=["expired"], expand_json=True, s3_client=FakeS3({})
        )
        assert (result.rows, result.outputs, result.json_columns) == (0, 0, 0)
    assert list(pd.read_parquet(tmp_path / "none.parquet").columns)[-4:] == [
        "output",
        "output_encoding",
        "output_truncated",
        "output_error",
    ]
    assert (tmp_path / "none.jsonl").read_bytes() == b""


def test_custom_attributes_never_appear_in_an_export(run_dir: Path, tmp_path: Path) -> None:
    for name in ("a.parquet", "a.csv", "a.jsonl"):
        export_table(run_dir, tmp_path / name, with_output=True, s3_client=FakeS3(OUTPUTS))
        assert b"top-secret-attribute" not in (tmp_path / name).read_bytes()


@pytest.mark.parametrize("name", ["o.parquet", "o.csv", "o.jsonl"])
def test_with_output_adds_bodies_and_writes_nothing_else(
    run_dir: Path, tmp_path: Path, name: str
) -> None:
    target = tmp_path / "exports" / name
    s3 = FakeS3(OUTPUTS)
    result = export_table(run_dir, target, with_output=True, s3_client=s3)
    assert (result.rows, result.outputs, result.output_errors, result.truncated) == (8, 6, 0, 0)
    # Keys like ../../etc/passwd, /abs/olute or NUL went into cells, never into paths.
    assert _files(tmp_path) == ["exports", f"exports/{name}"]
    assert all(call["ExpectedBucketOwner"] == OWNER for call in s3.calls)
    got = read_export(target)
    assert _values(got["output"]) == [
        '{"label": "cat", "score": 0.5}',
        "plain text",
        '{"label": "dog", "score": 1}',
        base64.b64encode(b"\xff\xfe").decode(),
        "[1, 2]",
        ("'" if name.endswith(".csv") else "") + "=cmd|' /C calc'!A0",
        None,
        None,
    ]
    assert _values(got["output_encoding"]) == ["utf-8"] * 3 + ["base64"] + ["utf-8"] * 2 + [
        None,
        None,
    ]
    assert _values(got["output_error"]) == [None] * 8
    assert _values(got["output_truncated"]) == [False] * 8


@pytest.mark.parametrize("name", ["x.parquet", "x.csv", "x.jsonl"])
def test_expand_json_spreads_objects_into_columns(run_dir: Path, tmp_path: Path, name: str) -> None:
    result = export_table(run_dir, tmp_path / name, expand_json=True, s3_client=FakeS3(OUTPUTS))
    assert (result.json_columns, result.json_columns_capped) == (2, False)
    got = read_export(tmp_path / name)
    assert list(got.columns) == [
        *read_ledger(run_dir).columns,
        "output",
        "output_encoding",
        "output_truncated",
        "output_error",
        "output.label",
        "output.score",
    ]
    assert _values(got["output.label"]) == ["cat", None, "dog"] + [None] * 5
    assert _values(got["output.score"]) == [0.5, None, 1.0] + [None] * 5
    # The spool beside the output is gone.
    assert _files(tmp_path) == [name]


def test_expand_json_columns_are_typed_in_parquet(run_dir: Path, tmp_path: Path) -> None:
    export_table(run_dir, tmp_path / "x.parquet", expand_json=True, s3_client=FakeS3(OUTPUTS))
    schema = pq.read_schema(tmp_path / "x.parquet")
    assert schema.field("output.label").type == pa.large_string()
    assert schema.field("output.score").type == pa.float64()
    assert schema.field("output_truncated").type == pa.bool_()
    # The ledger's columns read back exactly as read_ledger gives them.
    expected = read_ledger(run_dir)
    got = pd.read_parquet(tmp_path / "x.parquet")[expected.columns]
    pd.testing.assert_frame_equal(got, expected)


def test_unreadable_outputs_get_an_error_and_the_export_completes(
    run_dir: Path, tmp_path: Path
) -> None:
    present = {key: body for key, body in OUTPUTS.items() if key[1] != "2.out"}
    result = export_table(
        run_dir, tmp_path / "o.parquet", with_output=True, s3_client=FakeS3(present)
    )
    assert (result.outputs, result.output_errors) == (5, 1)
    got = pd.read_parquet(tmp_path / "o.parquet")
    assert _values(got["output_error"])[:3] == [None, "NoSuchKey: NoSuchKey happened", None]
    assert _values(got["output"])[1] is None


def test_an_interrupted_export_leaves_no_file_and_keeps_the_old_one(
    run_dir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "o.csv"
    target.write_text("previous export\n")
    with pytest.raises(KeyboardInterrupt):
        export_table(run_dir, target, with_output=True, s3_client=FakeS3({}, KeyboardInterrupt()))
    assert target.read_text() == "previous export\n"
    assert _files(tmp_path) == ["o.csv"]


def test_s3_failing_throughout_stops_the_export_and_writes_nothing(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", [("out", f"{i}.out") for i in range(FAILURE_STREAK * 2)])
    failing = FakeS3({}, fail=_client_error("InvalidAccessKeyId", 403))
    with pytest.raises(ExportStopped, match="InvalidAccessKeyId"):
        export_table(run, tmp_path / "o.jsonl", expand_json=True, s3_client=failing)
    assert _files(tmp_path) == []


def test_the_command_exits_4_when_s3_fails_throughout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_run(tmp_path / "run", [("out", f"{i}.out") for i in range(FAILURE_STREAK * 2)])
    failing = FakeS3({}, fail=_client_error("ExpiredToken", 400))
    monkeypatch.setattr(
        "bulkinvoke.calls.aws.make_clients", lambda settings, **_: type("C", (), {"s3": failing})
    )
    command = ["export", str(run), "-o", str(tmp_path / "o.csv"), "--with-output"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 4, result.output
    assert "ExpiredToken" in result.output and "nothing was written" in result.output
    assert "Traceback" not in result.output
    assert _files(tmp_path) == []


def test_big_outputs_are_cut_at_the_limit(run_dir: Path, tmp_path: Path) -> None:
    big = {key: b"z" * (OUTPUT_LIMIT + 1) for key in OUTPUTS}
    result = export_table(run_dir, tmp_path / "o.parquet", with_output=True, s3_client=FakeS3(big))
    assert result.truncated == 6
    got = pd.read_parquet(tmp_path / "o.parquet")
    assert got["output"].str.len().dropna().eq(OUTPUT_LIMIT).all()
    assert got["output_truncated"].tolist() == [True] * 6 + [False] * 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"output": "t.xlsx"}, "must end in .parquet, .csv or .jsonl"),
        ({"output": "t.csv", "states": ["done"]}, "unknown state 'done'"),
        ({"output": "blocker/t.csv"}, "cannot write .*: a part of its path is a file"),
        ({"output": "blocker/deeper/t.csv"}, "cannot write .*: a part of its path is a file"),
        ({"output": "adir.csv"}, "is a directory"),
        ({"output": "run/plan.parquet"}, "would replace a file of the run's ledger"),
        ({"output": "run/events/x.parquet"}, "would replace a file of the run's ledger"),
    ],
)
def test_bad_requests_are_export_errors(
    run_dir: Path, tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    (tmp_path / "blocker").write_text("a file, not a directory")
    (tmp_path / "adir.csv").mkdir()
    output = tmp_path / kwargs.pop("output")
    with pytest.raises(ExportError, match=message):
        export_table(run_dir, output, **kwargs)


def test_a_directory_that_cannot_be_written_is_an_export_error(
    run_dir: Path, tmp_path: Path
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.access(locked, os.W_OK):
        pytest.skip("running as a user who can write anywhere")
    with pytest.raises(ExportError, match="cannot write"):
        export_table(run_dir, locked / "t.csv")


# ---------------------------------------------------------------- the command


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "{tmp}/t.txt"], "must end in .parquet, .csv or .jsonl"),
        (["-o", "{tmp}/t.csv", "--state", "bogus"], "unknown state 'bogus'"),
        (["-o", "{tmp}/blocker/t.csv"], "cannot write"),
        (
            ["-o", "{tmp}/t.csv", "--expand-json", "--profile", "no-such-profile-here"],
            "no-such-profile-here",
        ),
    ],
)
def test_command_errors_are_one_line_and_exit_2(
    run_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "blocker").write_text("")
    command = ["export", str(run_dir), *(a.format(tmp=tmp_path) for a in args)]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_command_reports_what_it_wrote(run_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "a-rather-long-directory-name-for-wrapping" / "t.parquet"
    result = CliRunner().invoke(app, ["export", str(run_dir), "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert f"wrote 8 rows to {target}\n" in result.output
