"""--max-failures: a whole count, or a percentage of the run's items."""

from __future__ import annotations

import pytest

from bulkinvoke.run_setup import RunError, parse_max_failures


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
