"""What a run refuses before it writes or sends anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkinvoke.options import RequestOptions
from bulkinvoke.run_setup import RunError, RunOptions, parse_max_failures
from bulkinvoke.runner import submit


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
