"""Records read for ``submit --stage``: the payload of each, its content address, the other
columns, and the problems of records that cannot be sent (by line, as a bad manifest row)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bulkinvoke.errors import ManifestError
from bulkinvoke.manifest import records as records_module
from bulkinvoke.manifest.records import read_records


def _jsonl(tmp_path: Path, text: str) -> str:
    path = tmp_path / "records.jsonl"
    path.write_text(text)
    return str(path)


def test_each_line_whole_is_a_payload_without_a_payload_column(tmp_path: Path) -> None:
    source = _jsonl(tmp_path, '{"a": 1}\n\n  {"b": 2}  \n')
    records = read_records(source, None)
    assert records.payloads == [b'{"a": 1}', b'{"b": 2}']
    assert records.starts == [1, 3] and records.unit == "line"
    assert records.staged_key(0) == hashlib.sha256(b'{"a": 1}').hexdigest() + ".json"
    assert records.columns.num_columns == 0


def test_a_payload_column_takes_one_key_and_keeps_the_others(tmp_path: Path) -> None:
    source = _jsonl(
        tmp_path,
        '{"id": 1, "body": "hello", "lang": "en"}\n'
        '{"id": 2, "body": {"x": [1, 2]}, "lang": "fr"}\n'
        '{"id": 3, "lang": "de"}\n'
        "not json\n"
        '["a", "list"]\n',
    )
    records = read_records(source, "body")
    assert records.payloads[:2] == [b"hello", b'{"x":[1,2]}']
    assert records.extensions[:2] == ["txt", "json"]
    assert records.broken == {
        2: "has no 'body' (the payload)",
        3: records.broken[3],
        4: "expected a JSON object with the key 'body'",
    }
    assert records.broken[3].startswith("not valid JSON")
    assert records.columns.column("lang").to_pylist()[:3] == ["en", "fr", "de"]


def test_keys_of_mixed_types_are_kept_as_json_text_and_a_wrong_payload_key_named_by_line(
    tmp_path: Path,
) -> None:
    source = _jsonl(
        tmp_path,
        '{"id": 1, "p": "a", "n": 1, "flag": 1, "meta": {}}\n'
        '{"id": "two", "p": "b", "tag": null, "n": 1.5, "flag": true, "meta": {"k": [1]}}\n',
    )
    records = read_records(source, "p")
    assert records.columns.column("id").to_pylist() == ["1", '"two"']
    assert records.columns.column("tag").to_pylist() == [None, None]
    assert records.columns.column("n").to_pylist() == [1.0, 1.5]  # numbers stay numbers
    assert records.columns.column("flag").to_pylist() == ["1", "true"]  # not 1.0 and 1.0
    assert records.columns.column("meta").to_pylist() == ["{}", '{"k": [1]}']
    pq.write_table(records.columns, tmp_path / "columns.parquet")  # every column can be kept
    assert not records.broken
    wrong = read_records(source, "prompt")
    assert wrong.broken == {0: "has no 'prompt' (the payload)", 1: "has no 'prompt' (the payload)"}


def test_parquet_string_and_binary_payloads(tmp_path: Path) -> None:
    path = tmp_path / "records.parquet"
    pq.write_table(
        pa.table(
            {
                "text": ["a", None, "c"],
                "image": pa.array([b"\x00\x01", b"", b"\xff"], pa.binary()),
                "label": [1, 2, 3],
            }
        ),
        path,
    )
    texts = read_records(str(path), "text")
    assert texts.payloads == [b"a", None, b"c"] and texts.broken == {
        1: "has no 'text' (the payload)"
    }
    assert texts.columns.column_names == ["image", "label"]
    images = read_records(str(path), "image")
    assert images.payloads == [b"\x00\x01", b"", b"\xff"] and images.extensions[0] == "bin"
    with pytest.raises(
        ManifestError, match="column label is int64; a payload is a string or bytes"
    ):
        read_records(str(path), "label")
    with pytest.raises(ManifestError, match="has no column 'nope'"):
        read_records(str(path), "nope")
    with pytest.raises(ManifestError, match="needs --payload-column"):
        read_records(str(path), None)


def test_a_payload_over_the_limit_is_refused_by_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(records_module, "MAX_PAYLOAD_BYTES", 10)
    records = read_records(_jsonl(tmp_path, '"short"\n"' + "x" * 20 + '"\n'), None)
    assert records.payloads[0] == b'"short"' and records.payloads[1] is None
    assert records.broken == {1: "the payload is 22 bytes, over the service's limit of 10"}


def test_the_digest_depends_on_the_payload_column(tmp_path: Path) -> None:
    source = _jsonl(tmp_path, '{"a": "1", "b": "2"}\n')
    assert read_records(source, "a").digest != read_records(source, "b").digest
