"""The CLI run from a program: off the main thread, with SIGTERM handled by the caller, or
writing to a pipe."""

from __future__ import annotations

import io
import signal
import threading
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from bulkinvoke.cli.app import app
from bulkinvoke.cli.errors import PIPED_WIDTH, wide_when_piped


def test_a_command_run_off_the_main_thread_fails_as_usual(tmp_path: Path) -> None:
    results: list[Any] = []
    thread = threading.Thread(
        target=lambda: results.append(CliRunner().invoke(app, ["status", str(tmp_path / "x")]))
    )
    thread.start()
    thread.join()
    (result,) = results
    assert result.exit_code == 2, result.output  # not a ValueError from signal.signal
    assert "holds no bulkinvoke run" in result.output


def test_the_callers_sigterm_handling_is_left_as_it_was(tmp_path: Path) -> None:
    def own(signum: int, frame: object) -> None:
        pass

    for before in (signal.SIG_IGN, own):
        previous = signal.signal(signal.SIGTERM, before)
        try:
            result = CliRunner().invoke(app, ["status", str(tmp_path / "x")])
            assert result.exit_code == 2
            assert signal.getsignal(signal.SIGTERM) is before
        finally:
            signal.signal(signal.SIGTERM, previous)


def test_tables_written_to_a_pipe_are_not_cut_at_80_columns() -> None:
    piped = wide_when_piped(Console(file=io.StringIO()))
    assert piped.width == PIPED_WIDTH > 80
    table = Table("location")
    location = "s3://bucket/" + "a-long-prefix/" * 8 + "item.json"
    table.add_row(location)
    piped.print(table)
    assert location in piped.file.getvalue()  # type: ignore[attr-defined]
