"""The manifest reader: every format, every kind of bad manifest, and the rows' validation."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import string
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulkinvoke.errors import ManifestError
from bulkinvoke.manifest.delimited import quoted_rows, unquoted_rows
from bulkinvoke.manifest.loader import (
    _VALID_LOCATION,
    PROBLEMS_SCHEMA,
    TABLE_SCHEMA,
    Duplicate,
    Manifest,
    ManifestProblem,
    problems_table,
    read_manifest,
)
from bulkinvoke.request_options import INPUT_LOCATION_MAX, check_input_location

OVERRIDES = (
    "content_type",
    "accept",
    "custom_attributes",
    "inference_id",
    "request_ttl_seconds",
    "invocation_timeout_seconds",
)


def write(directory: Path, name: str, content: str | bytes) -> Path:
    path = directory / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def rows(manifest: Manifest, *columns: str) -> list[tuple[Any, ...]]:
    names = columns or ("row", "line", "input_location")
    data = manifest.table.select(list(names)).to_pylist()
    return [tuple(record[name] for name in names) for record in data]


def messages(manifest: Manifest) -> list[str]:
    return [str(problem) for problem in manifest.problems]


# --- every format -----------------------------------------------------------------------------


def test_csv_reads_rows_in_order_with_lines_and_the_contract_schema(tmp_path: Path) -> None:
    content = "input_location\ns3://b/data/1.json\ns3://b/data/2.json\n"
    path = write(tmp_path, "m.csv", content)
    manifest = read_manifest(path)
    assert manifest.table.schema == TABLE_SCHEMA
    assert rows(manifest) == [(1, 2, "s3://b/data/1.json"), (2, 3, "s3://b/data/2.json")]
    assert manifest.source == str(path)
    assert manifest.fingerprint == "sha256:" + hashlib.sha256(content.encode()).hexdigest()
    assert manifest.problems == [] and manifest.duplicates == []
    assert manifest.row_count == 2
    for name in OVERRIDES:
        assert manifest.table.column(name).null_count == 2


@pytest.mark.parametrize("header", ["s3_uri", " INPUT_URI ", "Uri", "Input_Location"])
def test_the_uri_column_goes_by_any_accepted_name(tmp_path: Path, header: str) -> None:
    path = write(tmp_path, "m.csv", f"other,{header}\nx,s3://b/k\n")
    assert rows(read_manifest(path)) == [(1, 2, "s3://b/k")]


def test_input_location_wins_over_the_other_names(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "uri,input_location\ns3://b/no,s3://b/yes\n")
    assert rows(read_manifest(path), "input_location") == [("s3://b/yes",)]


def test_tsv(tmp_path: Path) -> None:
    path = write(tmp_path, "m.tsv", "input_location\tcontent_type\ns3://b/k,1\ttext/csv\n")
    assert rows(read_manifest(path), "input_location", "content_type") == [
        ("s3://b/k,1", "text/csv")
    ]


def test_text_skips_blank_and_comment_lines(tmp_path: Path) -> None:
    content = "# inputs\n\ns3://b/a\n   \n  s3://b/b  \r\n#s3://b/skipped\ns3://b/c"
    manifest = read_manifest(write(tmp_path, "m.txt", content))
    assert rows(manifest) == [(1, 3, "s3://b/a"), (2, 5, "s3://b/b"), (3, 7, "s3://b/c")]


def test_text_with_a_header_line_treats_it_as_a_header(tmp_path: Path) -> None:
    manifest = read_manifest(write(tmp_path, "m.lst", "input_location\ns3://b/a\n"))
    assert rows(manifest) == [(1, 2, "s3://b/a")]


def test_json_lines_objects_and_bare_strings(tmp_path: Path) -> None:
    content = (
        '{"input_location": "s3://b/a", "content_type": "application/json", "note": 1}\n'
        "\n"
        '"s3://b/b"\n'
        '{"URI": "s3://b/c", "request_ttl_seconds": 120}\n'
    )
    manifest = read_manifest(write(tmp_path, "m.jsonl", content))
    assert rows(
        manifest, "row", "line", "input_location", "content_type", "request_ttl_seconds"
    ) == [
        (1, 1, "s3://b/a", "application/json", None),
        (2, 3, "s3://b/b", None, None),
        (3, 4, "s3://b/c", None, 120),
    ]
    assert manifest.table.column_names == TABLE_SCHEMA.names


def test_json_lines_row_problems(tmp_path: Path) -> None:
    content = (
        '{"input_location": "s3://b/a"}\n'
        "{not json\n"
        "[1, 2]\n"
        '{"other": "s3://b/x"}\n'
        '{"input_location": 5}\n'
        '{"input_location": "s3://b/e", "accept": 7}\n'
        '{"input_location": "s3://b/f", "request_ttl_seconds": true}\n'
        '{"input_location": "s3://b/g", "request_ttl_seconds": [300]}\n'
    )
    path = write(tmp_path, "m.ndjson", content)
    manifest = read_manifest(path)
    assert rows(manifest) == [(1, 1, "s3://b/a")]
    assert messages(manifest) == [
        f"{path}:2: not valid JSON: Expecting property name enclosed in double quotes (column 2)",
        f"{path}:3: expected a JSON object or string, found an array",
        f"{path}:4: has no input_location field",
        f"{path}:5: input_location must be a JSON string, not a number",
        f"{path}:6: accept must be a JSON string, not a number",
        f"{path}:7: request_ttl_seconds must be a JSON number, not a boolean",
        f"{path}:8: request_ttl_seconds must be a JSON number, not an array",
    ]


def test_json_lines_without_any_uri_field_names_the_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "m.jsonl", '{"path": "s3://b/a", "size": 1}\n')
    with pytest.raises(ManifestError, match=r"no line has an input_location field.*'path', 'size'"):
        read_manifest(path)


def test_json_lines_escapes_that_arrow_cannot_store_are_problems(tmp_path: Path) -> None:
    path = write(tmp_path, "m.jsonl", '"s3://b/\\ud800"\n"s3://b/ok"\n')
    manifest = read_manifest(path)
    assert rows(manifest) == [(2, 2, "s3://b/ok")]
    assert manifest.problems[0].input_location == "s3://b/\\ud800"
    assert problems_table(manifest.problems).num_rows == 1


def test_parquet_with_overrides_and_row_numbers(tmp_path: Path) -> None:
    table = pa.table(
        {
            "Input_Location": ["s3://b/a", "s3://b/b", "not-a-uri"],
            "request_ttl_seconds": pa.array([300.0, None, 120.0]),
            "invocation_timeout_seconds": pa.array([None, 60, 5], pa.int64()),
            "inference_id": pa.array(["one", None, "three"]).dictionary_encode(),
            "extra": [1, 2, 3],
        }
    )
    path = tmp_path / "m.parquet"
    pq.write_table(table, path)
    manifest = read_manifest(path)
    assert manifest.table.schema == TABLE_SCHEMA
    names = ("row", "line", "input_location", "request_ttl_seconds")
    assert rows(manifest, *names) == [(1, 1, "s3://b/a", 300), (2, 2, "s3://b/b", None)]
    assert rows(manifest, "inference_id", "invocation_timeout_seconds") == [
        ("one", None),
        (None, 60),
    ]
    assert messages(manifest) == [
        f"{path}:row 3: input_location must be an s3://bucket/key (or https://) URI"
    ]
    assert manifest.fingerprint == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_parquet_column_problems_are_manifest_errors(tmp_path: Path) -> None:
    path = tmp_path / "m.pq"
    pq.write_table(pa.table({"location": ["s3://b/a"]}), path)
    with pytest.raises(ManifestError, match=r"no input_location column.*columns found: 'location'"):
        read_manifest(path)
    pq.write_table(pa.table({"input_location": [1, 2]}), path)
    with pytest.raises(ManifestError, match="column input_location is int64, expected strings"):
        read_manifest(path)
    pq.write_table(pa.table({"uri": ["s3://b/a"], "request_ttl_seconds": [True]}), path)
    with pytest.raises(ManifestError, match="request_ttl_seconds is bool, expected whole numbers"):
        read_manifest(path)
    pq.write_table(pa.table({"uri": pa.array([], pa.string())}), path)
    with pytest.raises(ManifestError, match="has no data rows"):
        read_manifest(path)
    path.write_bytes(b"PAR1 not really parquet PAR1")
    with pytest.raises(ManifestError, match="not a readable Parquet file"):
        read_manifest(path)


def test_manifest_file_json(tmp_path: Path) -> None:
    document = [{"prefix": "s3://b/in/"}, "a.json", "sub/b.json", 7, "c.json"]
    path = write(tmp_path, "m.json", json.dumps(document, indent=1))
    manifest = read_manifest(path)
    assert rows(manifest) == [
        (1, 1, "s3://b/in/a.json"),
        (2, 2, "s3://b/in/sub/b.json"),
        (4, 4, "s3://b/in/c.json"),
    ]
    assert messages(manifest) == [
        f"{path}:entry 3: entry must be a string (a key under the prefix), not a number"
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[{"prefix": "s3://b/"},\n "a",\n oops]', r":3: not valid JSON: Expecting value"),
        ('["s3://b/a"]', r"must be a JSON array starting with \{\"prefix\""),
        ('[{"prefix": "s3://b/"}]', "has no data rows"),
    ],
)
def test_bad_manifest_file_json(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        read_manifest(write(tmp_path, "m.json", content))


def test_json_extension_holding_json_lines(tmp_path: Path) -> None:
    manifest = read_manifest(write(tmp_path, "m.json", '{"uri": "s3://b/a"}\n"s3://b/b"\n'))
    assert rows(manifest, "input_location") == [("s3://b/a",), ("s3://b/b",)]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("input_location,accept\ns3://b/a,x/y\n", "s3://b/a"),
        ("input_location\taccept\ns3://b/a\tx/y\n", "s3://b/a"),
        ('"input_location","accept"\n"s3://b/a","x/y"\n', "s3://b/a"),
        ('{"uri": "s3://b/a"}\n', "s3://b/a"),
        ('  [{"prefix": "s3://b/"}, "a"]', "s3://b/a"),
        ("s3://b/a\n", "s3://b/a"),
    ],
)
def test_unknown_extensions_are_sniffed(tmp_path: Path, content: str, expected: str) -> None:
    for name in ("manifest", "m.list", "m.CSV.bak"):
        manifest = read_manifest(write(tmp_path, name, content))
        assert rows(manifest, "input_location") == [(expected,)]


def test_parquet_without_its_extension_is_sniffed(tmp_path: Path) -> None:
    pq.write_table(pa.table({"uri": ["s3://b/a"]}), tmp_path / "manifest")
    assert rows(read_manifest(tmp_path / "manifest"), "input_location") == [("s3://b/a",)]


def test_extension_is_case_insensitive(tmp_path: Path) -> None:
    manifest = read_manifest(write(tmp_path, "M.TXT", "s3://b/a,b\n"))
    assert rows(manifest, "input_location") == [("s3://b/a,b",)]


# --- an s3:// prefix, against a real moto server ------------------------------------------------


@pytest.fixture(scope="module")
def s3_client() -> Iterator[Any]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            env.setenv(name, value)
        env.delenv("AWS_PROFILE", raising=False)
        client = boto3.client("s3", region_name="us-east-1", endpoint_url=f"http://{host}:{port}")
        client.create_bucket(Bucket="data")
        for key in ("in/b.json", "in/a.json", "in/sub/", "in/sub/c.txt", "in2/x.json", "out/y"):
            client.put_object(Bucket="data", Key=key, Body=b"{}")
        client.create_bucket(Bucket="empty")
        yield client
    server.stop()


def test_s3_prefix_lists_every_object_in_key_order(s3_client: Any) -> None:
    manifest = read_manifest("s3://data/in/", s3_client=s3_client)
    expected = ["s3://data/in/a.json", "s3://data/in/b.json", "s3://data/in/sub/c.txt"]
    assert rows(manifest) == [(i, i, uri) for i, uri in enumerate(expected, 1)]
    listing = "\n".join(expected).encode()
    assert manifest.fingerprint == "sha256:" + hashlib.sha256(listing).hexdigest()
    assert manifest.source == "s3://data/in/"


def test_s3_prefix_without_slash_is_a_plain_key_prefix(s3_client: Any) -> None:
    manifest = read_manifest("s3://data/in", s3_client=s3_client)
    assert manifest.table.num_rows == 4


def test_s3_whole_bucket(s3_client: Any) -> None:
    assert read_manifest("s3://data", s3_client=s3_client).table.num_rows == 5


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("s3://empty/", r"^s3://empty/: no objects under this prefix$"),
        ("s3://data/nothing-here/", "no objects under this prefix"),
        (
            "s3://no-such-bucket/p/",
            r"^s3://no-such-bucket/p/: cannot list the prefix .*NoSuchBucket",
        ),
        ("s3:///p/", "not an s3://bucket/prefix/ URI"),
    ],
)
def test_unusable_s3_prefixes(s3_client: Any, uri: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message) as raised:
        read_manifest(uri, s3_client=s3_client)
    assert "\n" not in str(raised.value)


def test_s3_prefix_needs_a_client() -> None:
    with pytest.raises(ValueError, match="s3_client"):
        read_manifest("s3://data/in/")


# --- manifests that cannot be used ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("m.csv", "", r"m\.csv: is empty$"),
        ("m.txt", " \n\n\t\n", r"m\.txt: is empty$"),
        ("m.txt", "# only\n# comments\n", r"m\.txt: has no data rows$"),
        ("m.csv", "input_location\n\n,\n", r"m\.csv: has no data rows$"),
        (
            "m.csv",
            "path,size\ns3://b/a,1\n",
            r"no input_location column .*columns found: 'path', 'size'$",
        ),
        ("m.csv", "s3://b/a\ns3://b/b\n", r"columns found: 's3://b/a'; the first line is data"),
        ("m.csv", "uri,URI\ns3://b/a,s3://b/b\n", r"m\.csv: the column uri appears twice$"),
        ("m.jsonl", "\n\n", r"m\.jsonl: is empty$"),
        ("m.csv", b"input_location\ns3://b/\x00\n", r"m\.csv: is a binary file"),
        ("m.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"m\.txt: is a binary file"),
    ],
)
def test_unusable_files_are_one_line_errors_naming_the_file(
    tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    with pytest.raises(ManifestError, match=message) as raised:
        read_manifest(write(tmp_path, name, content))
    assert str(raised.value).startswith(str(tmp_path / name))
    assert "\n" not in str(raised.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"nope\.csv: no such file$"):
        read_manifest(tmp_path / "nope.csv")
    with pytest.raises(ManifestError, match=r": is a directory, not a manifest file$"):
        read_manifest(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "input_location\ns3://b/a\n")
    path.chmod(0)
    with pytest.raises(ManifestError, match="cannot read the file"):
        read_manifest(path)


# --- encodings ----------------------------------------------------------------------------------


def test_utf8_bom(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "\ufeffinput_location\ns3://b/a\n".encode())
    assert rows(read_manifest(path)) == [(1, 2, "s3://b/a")]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_with_bom(tmp_path: Path, encoding: str) -> None:
    content = "input_location,custom_attributes\r\ns3://b/a,é\r\ns3://b/b,x\r\n"
    data = ("\ufeff" if encoding != "utf-16" else "") + content
    manifest = read_manifest(write(tmp_path, "m.csv", data.encode(encoding)))
    assert rows(manifest) == [(2, 3, "s3://b/b")]
    assert messages(manifest)[0].endswith(
        ":2: custom_attributes must be printable ASCII: its character 1 is not"
    )


def test_utf16_without_bom_is_named(tmp_path: Path) -> None:
    data = "input_location\ns3://b/a\n".encode("utf-16-le")
    with pytest.raises(ManifestError, match="looks like UTF-16 without a byte-order mark"):
        read_manifest(write(tmp_path, "m.csv", data))


def test_truncated_utf16(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not valid UTF-16"):
        read_manifest(write(tmp_path, "m.txt", "\ufeffs3://b/a".encode("utf-16-le") + b"x"))


def test_invalid_utf8_names_the_line_of_the_first_bad_byte(tmp_path: Path) -> None:
    data = b"input_location\r\ns3://b/a\r\ns3://b/\xe9t\xe9\n"
    with pytest.raises(ManifestError, match=r"m\.csv:3: not valid UTF-8 \(byte 0xe9\)"):
        read_manifest(write(tmp_path, "m.csv", data))


# --- CSV details --------------------------------------------------------------------------------


def test_quoted_embedded_newlines_keep_line_numbers_right(tmp_path: Path) -> None:
    content = (
        "input_location,custom_attributes\r\n"
        's3://b/a,"one\r\ntwo"\r\n'
        '"s3://b/\nbad",x\r\n'
        "\r\n"
        's3://b/c,"a,b ""q"""\r\n'
    )
    path = write(tmp_path, "m.csv", content)
    manifest = read_manifest(path)
    assert rows(manifest, "row", "line", "custom_attributes") == [(3, 7, 'a,b "q"')]
    assert messages(manifest) == [
        f"{path}:2: custom_attributes must be printable ASCII: its character 4 is not",
        f"{path}:4: input_location must be printable ASCII (no control or non-ASCII characters)",
    ]


def test_quoted_fields_without_line_breaks(tmp_path: Path) -> None:
    content = 'input_location,accept\n"s3://b/a",text/csv\n\n"s3://b/b","a/b"\n'
    manifest = read_manifest(write(tmp_path, "m.csv", content))
    assert rows(manifest, "row", "line", "input_location", "accept") == [
        (1, 2, "s3://b/a", "text/csv"),
        (2, 4, "s3://b/b", "a/b"),
    ]


def test_wrong_number_of_fields_and_blank_records(tmp_path: Path) -> None:
    content = (
        "input_location,accept\ns3://b/a,x/y\n\n,\n  ,  \ns3://b/b\ns3://b/c,x/y,extra\ns3://b/d,\n"
    )
    path = write(tmp_path, "m.csv", content)
    manifest = read_manifest(path)
    assert rows(manifest) == [(1, 2, "s3://b/a"), (4, 8, "s3://b/d")]
    assert messages(manifest) == [
        f"{path}:6: has 1 fields, but the header has 2",
        f"{path}:7: has 3 fields, but the header has 2",
    ]
    assert [p.input_location for p in manifest.problems] == ["s3://b/b", "s3://b/c"]
    assert manifest.row_count == 4


def test_a_huge_field_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    limit = csv.field_size_limit()
    huge = "s3://b/" + "k" * (2 << 20)
    for content in (f'input_location\n"{huge}"\ns3://b/a\n', f"input_location\n{huge}\ns3://b/a\n"):
        manifest = read_manifest(write(tmp_path, "m.csv", content))
        assert rows(manifest) == [(2, 3, "s3://b/a")]
        assert manifest.problems[0].reason == "input_location is longer than 1024 characters"
    assert csv.field_size_limit() == limit


def test_unclosed_quote_swallows_the_rest_into_one_refused_row(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", 'input_location\ns3://b/a\n"s3://b/b\ns3://b/c\n')
    manifest = read_manifest(path)
    assert rows(manifest) == [(1, 2, "s3://b/a")]
    assert [(p.row, p.line) for p in manifest.problems] == [(2, 3)]


def test_unknown_columns_are_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "id,input_location,notes\n1,s3://b/a,hello\n")
    manifest = read_manifest(path)
    assert manifest.table.column_names == TABLE_SCHEMA.names
    assert rows(manifest) == [(1, 2, "s3://b/a")]


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("s3://bucket", "input_location names a bucket but no object key"),
        ("s3://bucket/", "input_location names a bucket but no object key"),
        ("http://b/k", "input_location must be an s3://bucket/key (or https://) URI"),
        ("bucket/key", "input_location must be an s3://bucket/key (or https://) URI"),
        (
            "s3://b/ké",
            "input_location must be printable ASCII (no control or non-ASCII characters)",
        ),
        ("s3://b/" + "k" * 1018, "input_location is longer than 1024 characters"),
    ],
)
def test_input_locations_are_checked(tmp_path: Path, location: str, reason: str) -> None:
    path = write(tmp_path, "m.txt", f"s3://b/ok\n{location}\n")
    manifest = read_manifest(path)
    assert manifest.problems == [
        ManifestProblem(str(path), 2, reason, row=2, input_location=location)
    ]
    assert rows(manifest) == [(1, 1, "s3://b/ok")]


def test_https_and_longest_locations_pass(tmp_path: Path) -> None:
    longest = "s3://b/" + "k" * (INPUT_LOCATION_MAX - 7)
    path = write(tmp_path, "m.txt", f"https://b.s3.amazonaws.com/k\n{longest}\ns3://b//k\n")
    assert read_manifest(path).table.num_rows == 3


def test_override_columns(tmp_path: Path) -> None:
    header = ",".join(("input_location", *OVERRIDES))
    content = (
        f"{header}\n"
        "s3://b/a,application/json,text/csv,trace=1,id-a,300,60\n"
        "s3://b/b,,,,,,\n"
        "s3://b/c, text/plain ,,,,3600.0, 1 \n"
        "s3://b/d,,,,,+21600,3600\n"
    )
    manifest = read_manifest(write(tmp_path, "m.csv", content))
    assert manifest.problems == []
    assert rows(manifest, *OVERRIDES) == [
        ("application/json", "text/csv", "trace=1", "id-a", 300, 60),
        (None, None, None, None, None, None),
        ("text/plain", None, None, None, 3600, 1),
        (None, None, None, None, 21600, 3600),
    ]


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("content_type", "x" * 1025, "content_type is 1025 characters long, more than the 1024"),
        ("accept", "tëxt/csv", "accept must be printable ASCII: its character 2, 'ë', is not"),
        # A line break would end the HTTP header it travels in.
        ("content_type", "text/plain\r\nX-Other: 1", "content_type must be printable ASCII: its"),
        ("custom_attributes", "a" * 1025, "custom_attributes is 1025 characters long, more than"),
        ("inference_id", "x" * 65, "inference_id must be 1-64 printable ASCII characters"),
        ("inference_id", "idé", "inference_id must be 1-64 printable ASCII characters"),
        (
            "request_ttl_seconds",
            "59",
            "request_ttl_seconds must be a whole number from 60 to 21600, not 59",
        ),
        ("request_ttl_seconds", "21601", "from 60 to 21600, not 21601"),
        ("request_ttl_seconds", "300.5", "from 60 to 21600, not '300.5'"),
        ("request_ttl_seconds", "5m", "from 60 to 21600, not '5m'"),
        ("request_ttl_seconds", "1e3", "from 60 to 21600, not '1e3'"),
        ("invocation_timeout_seconds", "0", "must be a whole number from 1 to 3600, not 0"),
        ("invocation_timeout_seconds", "9" * 40, "from 1 to 3600, not '99999999"),
    ],
)
def test_override_values_are_checked(tmp_path: Path, column: str, value: str, reason: str) -> None:
    path = write(tmp_path, "m.jsonl", json.dumps({"input_location": "s3://b/a", column: value}))
    manifest = read_manifest(path)
    assert manifest.table.num_rows == 0
    [problem] = manifest.problems
    assert reason in problem.reason and (problem.row, problem.line) == (1, 1)


def test_json_numbers_for_integer_overrides(tmp_path: Path) -> None:
    lines = [
        {"uri": "s3://b/a", "request_ttl_seconds": 300},
        {"uri": "s3://b/b", "request_ttl_seconds": 300.0},
        {"uri": "s3://b/c", "request_ttl_seconds": 300.25},
        {"uri": "s3://b/d", "request_ttl_seconds": 10**30},
        {"uri": "s3://b/e", "request_ttl_seconds": None},
    ]
    path = write(tmp_path, "m.jsonl", "\n".join(map(json.dumps, lines)))
    manifest = read_manifest(path)
    assert rows(manifest, "row", "request_ttl_seconds") == [(1, 300), (2, 300), (5, None)]
    assert [(p.row, p.reason.rsplit(", not ", 1)[1]) for p in manifest.problems] == [
        (3, "300.25"),
        (4, str(10**30)),
    ]


def test_all_problems_of_a_row_and_of_the_file_are_collected(tmp_path: Path) -> None:
    content = "input_location,request_ttl_seconds,content_type\nbad,1,\ns3://b/a,,\ns3://b/b,,é\n"
    path = write(tmp_path, "m.csv", content)
    manifest = read_manifest(path)
    assert messages(manifest) == [
        f"{path}:2: input_location must be an s3://bucket/key (or https://) URI; "
        "request_ttl_seconds must be a whole number from 60 to 21600, not 1",
        f"{path}:4: content_type must be printable ASCII: its character 1, 'é', is not",
    ]
    assert manifest.row_count == 3


def test_many_rows_repeating_a_bad_value_each_get_a_problem(tmp_path: Path) -> None:
    body = "".join(f"s3://b/{i},{'text/é' if i % 3 else 'a/b'}\n" for i in range(30))
    manifest = read_manifest(write(tmp_path, "m.csv", "input_location,accept\n" + body))
    assert [p.row for p in manifest.problems] == [i + 1 for i in range(30) if i % 3]
    assert rows(manifest, "row", "accept") == [(i + 1, "a/b") for i in range(0, 30, 3)]


def test_duplicates_are_kept_once_and_reported(tmp_path: Path) -> None:
    content = "input_location\ns3://b/a\ns3://b/b\ns3://b/a\nbad\ns3://b/b\ns3://b/a\n"
    manifest = read_manifest(write(tmp_path, "m.csv", content))
    assert rows(manifest) == [(1, 2, "s3://b/a"), (2, 3, "s3://b/b")]
    assert manifest.duplicates == [
        Duplicate(3, 1, "s3://b/a"),
        Duplicate(5, 2, "s3://b/b"),
        Duplicate(6, 1, "s3://b/a"),
    ]
    assert [p.row for p in manifest.problems] == [4]
    assert manifest.row_count == 6


def test_a_duplicate_of_a_refused_row_is_kept(tmp_path: Path) -> None:
    content = "input_location,request_ttl_seconds\ns3://b/a,1\ns3://b/a,60\n"
    manifest = read_manifest(write(tmp_path, "m.csv", content))
    assert rows(manifest, "row") == [(2,)] and manifest.duplicates == []


def test_an_inference_id_used_by_two_rows_is_a_problem(tmp_path: Path) -> None:
    content = (
        "input_location,inference_id\n"
        "s3://b/a,job-1\n"
        "s3://b/b,job-1\n"
        "s3://b/a,job-1\n"
        "s3://b/c,job-2\n"
        "s3://b/b,\n"
    )
    path = write(tmp_path, "m.csv", content)
    manifest = read_manifest(path)
    assert messages(manifest) == [f"{path}:3: inference_id 'job-1' is already used by row 1"]
    assert rows(manifest, "row", "input_location", "inference_id") == [
        (1, "s3://b/a", "job-1"),
        (4, "s3://b/c", "job-2"),
        (5, "s3://b/b", None),
    ]
    assert manifest.duplicates == [Duplicate(3, 1, "s3://b/a")]


def test_problem_strings() -> None:
    assert str(ManifestProblem("m.csv", 14, "why")) == "m.csv:14: why"
    assert str(ManifestProblem("m.parquet", 14, "why", 14, None, "row")) == "m.parquet:row 14: why"


def test_problems_table_joins_the_plan(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "input_location\ns3://b/a\n\nbad\n,\ns3://b/c,x\n")
    manifest = read_manifest(path)
    rejected = problems_table(manifest.problems)
    assert rejected.schema == PROBLEMS_SCHEMA
    assert rejected.select(["row", "line", "input_location", "invalid_reason"]).to_pylist() == [
        {
            "row": 2,
            "line": 4,
            "input_location": "bad",
            "invalid_reason": "input_location must be an s3://bucket/key (or https://) URI",
        },
        {
            "row": 3,
            "line": 6,
            "input_location": "s3://b/c",
            "invalid_reason": "has 2 fields, but the header has 1",
        },
    ]
    plan = pa.concat_tables([manifest.table, rejected], promote_options="default").sort_by("row")
    assert plan.column("row").to_pylist() == [1, 2, 3]
    assert problems_table([]).schema == PROBLEMS_SCHEMA


def test_empty_uri_cell_is_refused_with_a_null_raw_location(tmp_path: Path) -> None:
    manifest = read_manifest(write(tmp_path, "m.csv", "input_location,accept\n,a/b\n"))
    [problem] = manifest.problems
    assert (problem.reason, problem.input_location) == ("input_location is empty", None)


# --- properties ---------------------------------------------------------------------------------

EXTENSION_CHOICES = [".csv", ".tsv", ".txt", ".jsonl", ".json", ".parquet", ".dat", ""]
FRAGMENTS = [
    "input_location", "uri", "content_type", "request_ttl_seconds", "inference_id", ",", "\t",
    '"', '""', "\n", "\r\n", "\r", " ", "#", "s3://b/k", "s3://b/", "https://h/k", "{", "}", "[",
    "]", ":", '"prefix"', "null", "true", "1e400", "-1", "300", "300.5", "\ufeff", "é", "\\ud800",
    "PAR1", "9" * 30,
]  # fmt: skip


@st.composite
def manifest_bytes(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "text", "fragments"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "text":
        text = draw(st.text(max_size=200))
    else:
        text = "".join(draw(st.lists(st.sampled_from(FRAGMENTS), max_size=40)))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]))
    return text.encode(encoding, "surrogatepass")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=manifest_bytes(), extension=st.sampled_from(EXTENSION_CHOICES))
def test_any_file_gives_a_manifest_or_a_manifest_error(data: bytes, extension: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = write(Path(directory), "m" + extension, data)
        try:
            manifest = read_manifest(path)
        except ManifestError as error:
            assert str(error) and "\n" not in str(error)
            return
    assert manifest.table.schema == TABLE_SCHEMA
    assert manifest.row_count >= 1
    every_row = [*manifest.table.column("row").to_pylist(), *(p.row for p in manifest.problems)]
    every_row += [d.row for d in manifest.duplicates]
    assert sorted(every_row) == list(range(1, manifest.row_count + 1))
    problems_table(manifest.problems)


KEY_CHARACTERS = string.ascii_letters + string.digits + "!-_.*'()/ ,\"#"
locations = st.builds(
    lambda scheme, bucket, key: f"{scheme}://{bucket}/{key}",
    st.sampled_from(["s3", "https"]),
    st.text(string.ascii_lowercase + string.digits + ".-", min_size=1, max_size=20),
    st.text(KEY_CHARACTERS, min_size=1, max_size=60).map(str.strip).filter(bool),
)
overrides = st.fixed_dictionaries(
    {
        "content_type": st.none() | st.sampled_from(["application/json", "text/csv; x=1"]),
        "accept": st.none() | st.just("*/*"),
        "custom_attributes": st.none() | st.text(string.printable[:95], min_size=1).map(str.strip),
        "inference_id": st.none(),
        "request_ttl_seconds": st.none() | st.integers(60, 21600),
        "invocation_timeout_seconds": st.none() | st.integers(1, 3600),
    }
)


def _write_manifest(directory: Path, kind: str, records: list[dict[str, Any]]) -> Path:
    if kind == "text":
        path = directory / "m.txt"
        path.write_text("".join(f"{r['input_location']}\n" for r in records), newline="")
    elif kind == "csv":
        path = directory / "m.csv"
        with path.open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=["input_location", *OVERRIDES])
            writer.writeheader()
            writer.writerows(records)
    elif kind == "jsonl":
        path = directory / "m.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    else:
        path = directory / "m.parquet"
        pq.write_table(pa.Table.from_pylist(records, schema=TABLE_SCHEMA.remove(0).remove(0)), path)
    return path


@settings(max_examples=60, deadline=None)
@given(
    chosen=st.lists(
        st.tuples(locations, overrides), min_size=1, max_size=25, unique_by=lambda t: t[0]
    ),
    kind=st.sampled_from(["csv", "jsonl", "text", "parquet"]),
)
def test_valid_rows_read_back_the_same(chosen: list[tuple[str, dict[str, Any]]], kind: str) -> None:
    records = [
        {"input_location": location, **({} if kind == "text" else extra)}
        for location, extra in chosen
    ]
    for i, record in enumerate(records):
        record.update({k: v or None for k, v in record.items()})
        record.setdefault("inference_id", None)
        if i % 2 and kind != "text":
            record["inference_id"] = f"id-{i}"
    with tempfile.TemporaryDirectory() as directory:
        manifest = read_manifest(_write_manifest(Path(directory), kind, records))
    assert manifest.problems == [] and manifest.duplicates == []
    expected = [
        {name: record.get(name) for name in ("input_location", *OVERRIDES)} for record in records
    ]
    assert manifest.table.drop_columns(["row", "line"]).to_pylist() == expected
    assert manifest.table.column("row").to_pylist() == list(range(1, len(records) + 1))


unquoted_text = st.lists(
    st.sampled_from(["input_location", "accept", "uri", "s3://b/k", "a/b", "", " ", "x", "é"]),
    max_size=8,
).map(",".join)


def _outcome(reader: Any, text: str) -> object:
    try:
        raw = reader(text, "m.csv", ",")
    except ManifestError as error:
        return str(error)
    return list(raw.starts), raw.locations, raw.overrides, raw.broken


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(unquoted_text, min_size=1, max_size=12),
    ending=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_the_unquoted_fast_path_reads_like_the_csv_module(lines: list[str], ending: str) -> None:
    text = ending.join(lines)
    assert _outcome(unquoted_rows, text) == _outcome(quoted_rows, text)


@settings(max_examples=500, deadline=None)
@given(
    location=st.text(st.characters(max_codepoint=0x7F), max_size=40).map(lambda s: "s3://" + s)
    | st.text(max_size=40)
    | locations
)
def test_the_fast_location_pattern_accepts_only_what_the_check_accepts(location: str) -> None:
    fast = len(location) <= INPUT_LOCATION_MAX and _VALID_LOCATION.fullmatch(location) is not None
    assert fast == (check_input_location(location) is None)


def test_csv_module_quoting_is_what_the_csv_writer_writes(tmp_path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["input_location", "custom_attributes"])
    writer.writerow(['s3://b/"quoted", key', 'a="1", b'])
    manifest = read_manifest(write(tmp_path, "m.csv", buffer.getvalue()))
    assert rows(manifest, "input_location", "custom_attributes") == [
        ('s3://b/"quoted", key', 'a="1", b')
    ]
