"""Hostile and broken input, fuzzed: every manifest format and every option of `submit`.

Whatever the input, `bulkinvoke submit` never shows a traceback; an input it refuses gets exit 2,
the file, line and reason, and nothing is sent (the endpoint is a recording proxy that answers
every call with ExpiredTokenException, so that an accepted input ends the run at its first call,
with exit 4) and no run directory is made.

The CLI runs in-process (typer's CliRunner), with the boto3 clients made once per settings:
creating them costs half a second, which thousands of cases cannot afford. CI runs a few hundred
cases; ``HYPOTHESIS_PROFILE=long`` runs twenty times as many (see bench/RELIABILITY.md).
"""

from __future__ import annotations

import codecs
import csv
import functools
import http.server
import io
import json
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fault_proxy import FaultProxy
from hypothesis import assume, given
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

import bulkinvoke.run.runner
import bulkinvoke.run.session
from bulkinvoke.cli.app import app
from bulkinvoke.emulator import LocalStack
from bulkinvoke.export.frame import read_ledger
from bulkinvoke.manifest.loader import read_manifest

from .conftest import (
    ENDPOINT,
    FAKE_CREDENTIALS,
    INPUT_BUCKET,
    cli_env,
    fuzz_settings,
    run_cli,
)

OVERRIDES = ("content_type", "accept", "custom_attributes", "inference_id",
             "request_ttl_seconds", "invocation_timeout_seconds")  # fmt: skip
URI_NAMES = ("input_location", "s3_uri", "input_uri", "uri")
# Cases run, by test: the figure bench/RELIABILITY.md reports.
CASES: dict[str, int] = {}


@dataclass
class Target:
    """The recording endpoint every run is pointed at, and the CLI environment for it."""

    proxy: FaultProxy
    env: dict[str, str | None]

    def calls(self) -> int:
        return len(self.proxy.requests())


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    # Nothing is relayed (every request is answered by the proxy), so the upstream is a dummy.
    with FaultProxy("http://127.0.0.1:9", flavor="json", record=True) as proxy:
        proxy.configure(fail_all="expired")
        # None removes a variable: no profile or config of the machine's reaches the runs.
        env: dict[str, str | None] = {
            **FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": proxy.url,
            "AWS_ENDPOINT_URL_SAGEMAKER": proxy.url,
            "AWS_ENDPOINT_URL_CLOUDWATCH": proxy.url,
            "AWS_ENDPOINT_URL_S3": proxy.url,
            "AWS_PROFILE": None,
            "AWS_SESSION_TOKEN": None,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }
        with pytest.MonkeyPatch.context() as patch:
            cached = functools.cache(bulkinvoke.run.runner.make_clients)
            patch.setattr(bulkinvoke.run.runner, "make_clients", cached)
            patch.setattr(bulkinvoke.run.session, "make_clients", cached)
            yield Target(proxy, env)
    print(f"fuzzed inputs by test: {CASES}, in all {sum(CASES.values())}")


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="hostile-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _count(test: str) -> None:
    CASES[test] = CASES.get(test, 0) + 1


_counter = iter(range(10**9))


def _fresh(workdir: Path, name: str) -> tuple[Path, Path]:
    case = workdir / f"case-{next(_counter)}"
    case.mkdir()
    return case / name, case / "run"


def _submit(target: Target, manifest: Path, run_dir: Path, *options: str) -> Result:
    return CliRunner().invoke(
        app,
        ["submit", str(manifest), "--endpoint", "fuzz", "--run-dir", str(run_dir), "--json",
         "--quiet", *options],
        env=target.env,
    )  # fmt: skip


def _check_outcome(result: Result, target: Target, calls_before: int, run_dir: Path) -> None:
    """The contract: no traceback; refused (2) with nothing sent and nothing written, or
    accepted and stopped by the endpoint's first answer (4) or by --timeout 0 (3)."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"traceback: {result.exception!r}\n{result.output}")
    assert "Traceback" not in result.output
    assert result.exit_code in (2, 3, 4), result.output
    if result.exit_code == 2:
        assert target.calls() == calls_before, "a refused input sent something"
        assert not run_dir.exists(), "a refused input made a run directory"
        # One "error:" line of ours, or click's usage error for an option it parsed itself.
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert errors or "Invalid value" in result.stderr, result.stderr


_PLACE = re.compile(r"^(?P<source>.+):(?P<unit>row |entry |key )?(?P<n>\d+): (?P<reason>.+)$")


def _check_refusal_names_the_place(result: Result, manifest: Path, lines: int) -> None:
    """Each problem line is ``FILE:LINE: reason`` (or ``row N`` / ``entry N``) within the file;
    a refusal of the whole file names the file."""
    source = str(manifest)
    problems = [line for line in result.stderr.splitlines() if line.startswith(source + ":")]
    for line in problems:
        match = _PLACE.match(line)
        assert match and match["source"] == source and match["reason"].strip(), line
        # A line number points into the file; rows and entries count records, not lines.
        assert 1 <= int(match["n"]) <= (lines if match["unit"] is None else 10**9), line
    error = next(line for line in result.stderr.splitlines() if line.startswith("error: "))
    assert source in error, error


# -- manifest content ----------------------------------------------------------------------

_GOOD_URI = st.builds(
    lambda bucket, key: f"s3://{bucket}/{key}",
    st.from_regex(r"[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9!_.*'()/ +=&$@,;:?#\[\]%-]{1,60}", fullmatch=True),
)
_HOSTILE = st.sampled_from(
    [
        "",
        " ",
        "s3://",
        "s3://bucket",
        "s3://bucket/",
        "https://",
        "file:///etc/passwd",
        "=cmd|' /C calc'!A0",
        "+SUM(1,2)",
        "@SUM(1)",
        "-2+3",
        '=HYPERLINK("http://x","y")',
        "s3://b/\u202eevil",
        "s3://b/\u00e9t\u00e9",
        "s3://b/\x00nul",
        "s3://b/tab\there",
        "s3://b/new\nline",
        "s3://b/" + "k" * 1100,
        "S3://B/UPPER",
        "s3:/b/k",
        "s3//b/k",
        "\ufeffs3://b/bom",
        "s3://b/\udcff",
        "../../../etc/shadow",
        "s3://b/" + "/" * 5,
        "https://bucket.s3.amazonaws.com/key",
        "s3://b/k?versionId=1",
        "s3://b/%00%ff",
        "[/oops]",
        "[bold red]loud[/]",
        "s3://b/[/x]",
        "[link=file:///etc/passwd]x[/link]",
    ]
)
_TEXT = st.text(max_size=40)
URI_CELL = st.one_of(_GOOD_URI, _GOOD_URI, _HOSTILE, _TEXT)
OVERRIDE_CELL = st.one_of(
    st.just(""),
    _TEXT,
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(["60", "21600", "21601", "0", "3600", "1.0", "1e3", "nan", "inf", "300.5"]),
    st.sampled_from(["application/json", "text/csv", "x" * 1025, "é", "bi-" + "a" * 70]),
)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
ENCODINGS = ("utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-16-le", "latin-1", "cp1252")


@st.composite
def delimited(draw: st.DrawFn, delimiter: str) -> str:
    uri_name = draw(
        st.sampled_from([*URI_NAMES, " Input_Location ", "URI", "location", "", "[/oops]"])
    )
    extra = draw(st.lists(st.sampled_from([*OVERRIDES, "notes", ""]), max_size=3))
    header = [uri_name, *extra]
    rows = draw(st.lists(st.lists(st.one_of(URI_CELL, OVERRIDE_CELL), min_size=1,
                                  max_size=len(header) + 1), max_size=8))  # fmt: skip
    if draw(st.booleans()):
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=delimiter, lineterminator=draw(
            st.sampled_from(["\n", "\r\n", "\r"])))  # fmt: skip
        writer.writerows([header, *rows])
        return buffer.getvalue()
    # Unquoted: cells holding the delimiter, quotes or line breaks break the structure.
    return "\n".join(delimiter.join(row) for row in [header, *rows]) + "\n"


@st.composite
def text_lines(draw: st.DrawFn) -> str:
    lines = draw(st.lists(st.one_of(URI_CELL, st.sampled_from(["# comment", "", "  "])),
                          max_size=10))  # fmt: skip
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n"]))


@st.composite
def json_lines(draw: st.DrawFn) -> str:
    def line(draw: st.DrawFn) -> str:
        kind = draw(st.integers(0, 3))
        if kind == 0:
            keys = draw(st.lists(st.sampled_from([*URI_NAMES, *OVERRIDES, "x"]), max_size=4))
            values = {k: draw(st.one_of(URI_CELL, OVERRIDE_CELL, JSON_VALUE)) for k in keys}
            return json.dumps(values, ensure_ascii=draw(st.booleans()))
        if kind == 1:
            return json.dumps(draw(URI_CELL))
        if kind == 2:
            return json.dumps(draw(JSON_VALUE))
        return draw(_TEXT)

    return "\n".join(line(draw) for _ in range(draw(st.integers(0, 8)))) + "\n"


@st.composite
def manifest_file(draw: st.DrawFn) -> str:
    prefix = st.builds(lambda p: {"prefix": p}, st.one_of(_GOOD_URI, URI_CELL))
    head: Any = draw(st.one_of(prefix, JSON_VALUE))
    entries = draw(st.lists(st.one_of(_TEXT, JSON_VALUE, _HOSTILE), max_size=8))
    return json.dumps([head, *entries])


@st.composite
def parquet_bytes(draw: st.DrawFn) -> bytes:
    names = draw(st.lists(st.sampled_from([*URI_NAMES, *OVERRIDES, "other"]), min_size=1,
                          max_size=4, unique=True))  # fmt: skip
    rows = draw(st.integers(0, 6))
    columns = {}
    for name in names:
        kind = draw(st.sampled_from(["string", "int", "float", "bool", "binary", "list"]))
        if kind == "string":
            # Parquet holds UTF-8 only: a lone surrogate cannot be written at all.
            cell = URI_CELL.map(lambda text: text.encode("utf-8", "replace").decode())
            values: list[Any] = draw(st.lists(st.none() | cell, min_size=rows, max_size=rows))
            columns[name] = pa.array(values, pa.string())
        elif kind == "int":
            values = draw(st.lists(st.none() | st.integers(-(2**63), 2**63 - 1), min_size=rows,
                                   max_size=rows))  # fmt: skip
            columns[name] = pa.array(values, pa.int64())
        elif kind == "float":
            values = draw(st.lists(st.floats(), min_size=rows, max_size=rows))
            columns[name] = pa.array(values, pa.float64())
        elif kind == "bool":
            columns[name] = pa.array(draw(st.lists(st.booleans(), min_size=rows, max_size=rows)))
        elif kind == "binary":
            values = draw(st.lists(st.binary(max_size=10), min_size=rows, max_size=rows))
            columns[name] = pa.array(values, pa.binary())
        else:
            values = draw(st.lists(st.lists(st.integers(0, 9), max_size=2), min_size=rows,
                                   max_size=rows))  # fmt: skip
            columns[name] = pa.array(values, pa.list_(pa.int64()))
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


def _encode(text: str, encoding: str) -> bytes:
    try:
        return text.encode(encoding)
    except UnicodeEncodeError:
        return text.encode(encoding, errors="replace")


@st.composite
def manifests(draw: st.DrawFn) -> tuple[str, bytes]:
    """(file name, bytes) of a manifest in any format, under its own or another extension."""
    kind = draw(st.sampled_from(["csv", "tsv", "txt", "jsonl", "json", "parquet", "bytes"]))
    if kind == "parquet":
        data = draw(parquet_bytes())
    elif kind == "bytes":
        data = draw(st.binary(max_size=200))
    else:
        text = {
            "csv": lambda: draw(delimited(",")),
            "tsv": lambda: draw(delimited("\t")),
            "txt": lambda: draw(text_lines()),
            "jsonl": lambda: draw(json_lines()),
            "json": lambda: draw(manifest_file()),
        }[kind]()
        data = _encode(text, draw(st.sampled_from(ENCODINGS)))
        if draw(st.integers(0, 9)) == 0:
            # A truncated or spliced file: cut anywhere, even inside a character.
            data = data[: draw(st.integers(0, len(data)))]
    suffix = draw(st.sampled_from([kind if kind != "bytes" else "csv", kind, "csv", "", "dat"]))
    return f"manifest.{suffix}" if suffix else "manifest", data


@fuzz_settings(150)
@given(case=manifests())
def test_any_manifest_is_sent_or_refused_cleanly(
    target: Target, workdir: Path, case: tuple[str, bytes]
) -> None:
    _count("manifests")
    name, data = case
    manifest, run_dir = _fresh(workdir, name)
    manifest.write_bytes(data)
    before = target.calls()
    result = _submit(target, manifest, run_dir)
    _check_outcome(result, target, before, run_dir)
    if result.exit_code == 2:
        # Counted as the readers count them (CR, LF, CRLF), a bound for UTF-16 text too.
        lines = len(re.findall(rb"\r\n?|\n", data)) + 1
        _check_refusal_names_the_place(result, manifest, lines)
    else:
        assert target.calls() > before
        assert not read_manifest(manifest).problems, "an invalid manifest was accepted"


# -- one bad row among good ones: named by its line, and nothing sent ----------------------

BAD_ROWS = {
    "empty key": ("s3://bucket/", None),
    "no scheme": ("bucket/key.json", None),
    "non-ASCII": ("s3://bucket/d\u00e9j\u00e0.json", None),
    "control character": ("s3://bucket/a\x07b.json", None),
    "too long": ("s3://bucket/" + "k" * 1100, None),
    "formula": ('=HYPERLINK("http://evil","x")', None),
    "TTL out of range": (None, ("request_ttl_seconds", "59")),
    "TTL not a number": (None, ("request_ttl_seconds", "sixty")),
    "timeout out of range": (None, ("invocation_timeout_seconds", "3601")),
    "custom attributes too long": (None, ("custom_attributes", "c" * 1025)),
    "content type not ASCII": (None, ("content_type", "text/\u00e9")),
    "inference ID too long": (None, ("inference_id", "i" * 65)),
}


@fuzz_settings(80)
@given(
    rows=st.integers(1, 40),
    data=st.data(),
    kind=st.sampled_from(["csv", "tsv", "jsonl", "txt"]),
    bad=st.sampled_from(sorted(BAD_ROWS)),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]),
)
def test_one_bad_row_is_named_by_its_line_and_nothing_is_sent(
    target: Target,
    workdir: Path,
    rows: int,
    data: st.DataObject,
    kind: str,
    bad: str,
    encoding: str,
) -> None:
    location, override = BAD_ROWS[bad]
    assume(kind != "txt" or override is None)
    _count("one bad row")
    position = data.draw(st.integers(0, rows))
    records: list[dict[str, str]] = [
        {"input_location": f"s3://bucket/in/{i:04d}.json"} for i in range(rows)
    ]
    wrong = {"input_location": location or "s3://bucket/in/bad.json"}
    if override is not None:
        wrong[override[0]] = override[1]
    records.insert(position, wrong)
    columns = ["input_location", *([override[0]] if override else [])]
    if kind == "jsonl":
        text = "".join(json.dumps(r) + "\n" for r in records)
        line = position + 1
    elif kind == "txt":
        text = "".join(r["input_location"] + "\n" for r in records)
        line = position + 1
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns, delimiter="," if kind == "csv" else "\t",
                                lineterminator="\n")  # fmt: skip
        writer.writeheader()
        writer.writerows(records)
        text = buffer.getvalue()
        line = position + 2
    manifest, run_dir = _fresh(workdir, f"bad.{kind}")
    manifest.write_bytes(codecs.encode(text, encoding))
    before = target.calls()
    result = _submit(target, manifest, run_dir)
    _check_outcome(result, target, before, run_dir)
    assert result.exit_code == 2, result.output
    assert re.search(rf"^{re.escape(str(manifest))}:{line}: \S", result.stderr, re.M), (
        line,
        result.stderr,
    )


def test_an_enormous_manifest_with_one_bad_row_is_refused_quickly(
    target: Target, workdir: Path
) -> None:
    rows = 300_000
    manifest, run_dir = _fresh(workdir, "huge.csv")
    lines = [f"s3://bucket/in/{i:07d}.json" for i in range(rows)]
    lines[rows - 7] = "s3://bucket/in/\u00e9.json"
    manifest.write_text("input_location\n" + "\n".join(lines) + "\n")
    before = target.calls()
    result = _submit(target, manifest, run_dir)
    _check_outcome(result, target, before, run_dir)
    assert result.exit_code == 2
    assert f"{manifest}:{rows - 7 + 2}: input_location must be printable ASCII" in result.stderr


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"input_location\ns3://b/a\ns3://b/\xff\n", ":3: not valid UTF-8 (byte 0xff)"),
        (b"input_location\r\ns3://b/\xc3(\r\n", ":2: not valid UTF-8 (byte 0xc3)"),
        ("input_location\ns3://b/a\n".encode("utf-16-le"), ": looks like UTF-16 without a byte"),
        (b"\xef\xbb\xbfinput_location\ns3://b/caf\xc3\xa9\n", ":2: input_location must be"),
        ("input_location\ns3://b/\u00e9\n".encode("utf-16"), ":2: input_location must be"),
        (b"input_location\ns3://b/a\x00\n", ": is a binary file"),
    ],
    ids=["invalid-utf8", "invalid-utf8-crlf", "utf16-no-bom", "utf8-bom", "utf16-bom", "nul"],
)
def test_encodings_are_read_or_refused_by_line(
    target: Target, workdir: Path, data: bytes, expected: str
) -> None:
    manifest, run_dir = _fresh(workdir, "m.csv")
    manifest.write_bytes(data)
    before = target.calls()
    result = _submit(target, manifest, run_dir)
    _check_outcome(result, target, before, run_dir)
    assert result.exit_code == 2
    assert f"{manifest}{expected}" in result.stderr


def test_text_in_brackets_is_shown_as_written_not_as_markup(target: Target, workdir: Path) -> None:
    manifest, run_dir = _fresh(workdir, "m[bold].csv")
    manifest.write_text("[/oops],[bold]x[/bold]\ns3://b/k,1\n")
    before = target.calls()
    result = _submit(target, manifest, run_dir)
    _check_outcome(result, target, before, run_dir)
    assert result.exit_code == 2
    assert f"{manifest}: no input_location column" in result.stderr
    assert "columns found: '[/oops]', '[bold]x[/bold]'" in result.stderr


def test_many_bad_rows_are_counted_after_the_first_twenty(target: Target, workdir: Path) -> None:
    manifest, run_dir = _fresh(workdir, "many.txt")
    manifest.write_text("".join(f"not-a-uri-{i}\n" for i in range(5000)))
    result = _submit(target, manifest, run_dir)
    assert result.exit_code == 2
    assert (
        len([line for line in result.stderr.splitlines() if line.startswith(str(manifest))]) == 20
    )
    assert "... and 4980 more invalid rows" in result.stderr


def test_huge_fields_are_refused_by_row_not_by_crash(target: Target, workdir: Path) -> None:
    manifest, run_dir = _fresh(workdir, "wide.csv")
    huge = "x" * 5_000_000
    manifest.write_text(f'input_location,custom_attributes\ns3://b/k,"{huge}"\n"s3://b/{huge}",\n')
    before = target.calls()
    result = _submit(target, manifest, run_dir)
    _check_outcome(result, target, before, run_dir)
    assert result.exit_code == 2
    assert f"{manifest}:2: custom_attributes is 5000000 characters long" in result.stderr
    assert f"{manifest}:3: input_location is longer than 1024" in result.stderr


# -- options -------------------------------------------------------------------------------

_NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["0", "-1", "1e309", "-inf", "NaN", "0x10", "1_000", " 5 ", "", "five"]),
)
OPTIONS: dict[str, st.SearchStrategy[str]] = {
    "--endpoint": st.one_of(st.from_regex(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,70}", fullmatch=True),
                            _TEXT, st.sampled_from(["", "-a", "a-", "a--b", "a" * 64])),
    "--rate": _NUMBERS,
    "--concurrency": _NUMBERS,
    "--max-in-flight": _NUMBERS,
    "--content-type": st.one_of(_TEXT, st.just("x" * 1025)),
    "--accept": _TEXT,
    "--custom-attributes": st.one_of(_TEXT, st.just("c" * 1025)),
    "--request-ttl-seconds": _NUMBERS,
    "--invocation-timeout-seconds": _NUMBERS,
    "--output-path-extension": st.one_of(_TEXT, st.sampled_from(["s3:x", "a/b", "x" * 513])),
    "--id-namespace": _TEXT,
    "--timeout": _NUMBERS,
    "--max-failures": st.one_of(_TEXT, _NUMBERS, st.sampled_from(["5%", "101%", "1.5", "%"])),
    "--expire-after": _NUMBERS,
    "--call-timeout": _NUMBERS,
}  # fmt: skip


@fuzz_settings(150)
@given(chosen=st.dictionaries(st.sampled_from(sorted(OPTIONS)), st.just(""), max_size=5),
       data=st.data())  # fmt: skip
def test_any_options_are_used_or_refused_cleanly(
    target: Target, workdir: Path, chosen: dict[str, str], data: st.DataObject
) -> None:
    _count("options")
    values = {name: data.draw(OPTIONS[name], label=name) for name in chosen}
    manifest, run_dir = _fresh(workdir, "ok.csv")
    manifest.write_text("input_location\ns3://bucket/a.json\ns3://bucket/b.json\n")
    endpoint = values.pop("--endpoint", "fuzz")
    arguments = [f"{name}={value}" for name, value in values.items()]
    before = target.calls()
    result = CliRunner().invoke(
        app,
        ["submit", str(manifest), f"--endpoint={endpoint}", "--run-dir", str(run_dir), "--json",
         "--quiet", *arguments],
        env=target.env,
    )  # fmt: skip
    _check_outcome(result, target, before, run_dir)
    if result.exit_code == 4:
        saved = json.loads((run_dir / "run.json").read_text())
        assert saved["options"]["endpoint"] == endpoint


@pytest.mark.parametrize(
    "option",
    [
        # Each was once taken, saved in run.json, and then failed the run (and every resume).
        ("--max-failures", "ten"),
        ("--rate", "inf"),
        # Each call would have been rejected by the service, one item at a time.
        ("--endpoint", "my endpoint"),
        ("--endpoint", "e" * 64),
        # A pool of that many connections is allocated up front: memory runs out first.
        ("--concurrency", "1000000000"),
        # A socket timeout that large overflows: every call failed after its retries.
        ("--call-timeout", "10000000000"),
        # Each raised a traceback from botocore.
        ("--endpoint-url", "notaurl"),
        ("--s3-endpoint-url", "notaurl"),
        ("--region", "not a region!"),
    ],
)
def test_options_that_cannot_work_are_refused_before_anything_is_written(
    target: Target, workdir: Path, option: tuple[str, str]
) -> None:
    manifest, run_dir = _fresh(workdir, "ok.csv")
    manifest.write_text("input_location\ns3://bucket/a.json\n")
    name, value = option
    endpoint = [] if name == "--endpoint" else ["--endpoint", "fuzz"]
    before = target.calls()
    result = CliRunner().invoke(
        app,
        ["submit", str(manifest), *endpoint, f"{name}={value}", "--run-dir", str(run_dir)],
        env=target.env,
    )
    _check_outcome(result, target, before, run_dir)
    assert result.exit_code == 2, result.output


@pytest.mark.parametrize("problem", ["port in use", "unknown handler", "not an S3 server"])
def test_an_emulator_that_cannot_start_says_why(problem: str) -> None:
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        port = str(web.server_address[1])
        arguments = {
            "port in use": ["--s3-port", port],
            "unknown handler": ["--handler", "no_such_module:handle"],
            "not an S3 server": ["--s3-url", f"http://127.0.0.1:{port}"],
        }[problem]
        result = CliRunner().invoke(app, ["emulator", *arguments])
    finally:
        web.shutdown()
        web.server_close()
    assert result.exit_code == 2, result.output
    assert "cannot start the emulator" in result.output
    assert "Traceback" not in result.output


def test_keys_with_odd_characters_reach_the_endpoint_unchanged(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    """Every printable ASCII character may be in a key; each travels in an HTTP header, and the
    endpoint must read the very object the manifest names."""
    keys = [
        "odd/with space.json", "odd/plus+sign.json", "odd/percent%20not-escaped.json",
        "odd/hash#and?query=1&x=y.json", "odd/quote'\"back`tick.json", "odd/semi;colon,comma.json",
        "odd/brackets[1]{2}<3>.json", "odd/=cmd|' /C calc'!A0.json", "odd/ leading-space.json",
        "odd/trailing-space .json", "odd//double//slash.json", "odd/tilde~caret^pipe|.json",
        "odd/back\\slash.json", "odd/dots/../not-parent.json", "odd/@at$dollar!bang*.json",
    ]  # fmt: skip
    for key in keys:
        s3.put_object(Bucket=INPUT_BUCKET, Key=key, Body=json.dumps(key).encode())
    manifest = tmp_path / "odd.csv"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([["input_location"], *[[f"s3://{INPUT_BUCKET}/{key}"] for key in keys]])
    manifest.write_text(buffer.getvalue())
    done = run_cli(cli_env(emulator), "submit", str(manifest), "--endpoint", ENDPOINT,
                   "--run-dir", str(tmp_path / "run"), "--json", "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    table = read_ledger(tmp_path / "run")
    assert (table["state"] == "succeeded").all()
    for location, output in zip(table["input_location"], table["output_location"], strict=True):
        bucket, _, key = output.removeprefix("s3://").partition("/")
        summary = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        # Leading and trailing spaces are trimmed from a manifest cell, by design.
        assert summary["input_location"] == location
        assert summary["text"] == json.dumps(location.split("/", 3)[3])


# -- a manifest that changes under a run ---------------------------------------------------


def test_a_changed_manifest_is_refused_for_an_existing_run(target: Target, workdir: Path) -> None:
    manifest, run_dir = _fresh(workdir, "m.csv")
    manifest.write_text("input_location\ns3://bucket/a.json\ns3://bucket/b.json\n")
    first = _submit(target, manifest, run_dir)
    assert first.exit_code == 4, first.output  # started, then stopped by the endpoint
    saved = sorted(p.name for p in run_dir.rglob("*"))
    for changed in (
        "input_location\ns3://bucket/a.json\ns3://bucket/b.json\ns3://bucket/c.json\n",
        "input_location\ns3://bucket/a.json\n",
        "input_location\r\ns3://bucket/a.json\r\ns3://bucket/b.json\r\n",
        "input_location\ns3://bucket/b.json\ns3://bucket/a.json\n",
    ):
        manifest.write_text(changed)
        before = target.calls()
        result = _submit(target, manifest, run_dir)
        assert result.exit_code == 2, result.output
        assert "made from a different manifest" in result.stderr
        assert "bulkinvoke resume" in result.stderr
        assert target.calls() == before
        assert sorted(p.name for p in run_dir.rglob("*")) == saved
