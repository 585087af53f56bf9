"""What a run refuses before it writes or sends anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkinvoke.calls.aws import AwsSettings, check_settings
from bulkinvoke.errors import AwsConfigError, RunError
from bulkinvoke.request_options import RequestOptions
from bulkinvoke.run.definition import RunOptions, parse_max_failures
from bulkinvoke.run.runner import submit


@pytest.mark.parametrize(
    ("text", "total", "limit"),
    [("10", 100, 10), ("0", 5, 0), ("2.5%", 1000, 25), (" 3 % ", 100, 3), ("50%", 3, 1)],
)
def test_counts_and_percentages(text: str, total: int, limit: int) -> None:
    assert parse_max_failures(text, total) == limit


@pytest.mark.parametrize("text", ["0.5", "1.5", "ten", "%", "-1", "1.5.2", "5%%"])
def test_anything_else_is_refused_by_name(text: str) -> None:
    # "0.5" once meant 0: the first failure stopped the run.
    with pytest.raises(RunError, match=r"whole count .* or a percentage"):
        parse_max_failures(text, 100)


def test_more_than_every_item_is_refused() -> None:
    assert parse_max_failures("100%", 40) == 40
    with pytest.raises(RunError, match="at most 100%"):
        parse_max_failures("150%", 40)


def test_a_library_caller_gets_the_same_refusals_as_the_cli(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("input_location\ns3://b/k\n")
    bad = RunOptions(
        endpoint="demo",
        request=RequestOptions(content_type="text/\x01plain", request_ttl_seconds=30),
        output_path_extension="s3://elsewhere",
    )
    with pytest.raises(RunError) as refused:
        submit(str(manifest), bad, run_dir=tmp_path / "run")
    message = str(refused.value)
    assert "content_type" in message.replace("-", "_") or "ContentType" in message
    assert "ttl" in message.lower() and "extension" in message.lower()
    assert not (tmp_path / "run").exists(), "refused before anything was written"


@pytest.mark.parametrize(
    ("settings", "refusal"),
    [
        (AwsSettings(endpoint_url="http://admin:pw@127.0.0.1:9"), "must not hold a user name"),
        (AwsSettings(s3_endpoint_url="http://u@127.0.0.1:9"), "must not hold a user name"),
        (AwsSettings(endpoint_url="ftp://x"), "must be an http:// or https:// URL"),
        (AwsSettings(endpoint_url="notaurl"), "must be an http:// or https:// URL"),
        (AwsSettings(endpoint_url="http://[::1"), "is no URL: Invalid IPv6 URL"),
        (AwsSettings(s3_endpoint_url="http://127.0.0.1:99999"), "is no URL: Port out of range"),
        (AwsSettings(expected_bucket_owner="abc"), "12-digit account ID"),
        (AwsSettings(expected_bucket_owner="12345678901２"), "12-digit account ID"),
    ],
)
def test_aws_settings_that_would_leak_or_fail_are_refused(
    settings: AwsSettings, refusal: str
) -> None:
    with pytest.raises(AwsConfigError, match=refusal):
        check_settings(settings)
    assert check_settings(AwsSettings(expected_bucket_owner="123456789012")) is None
