"""The CLI run from a program: off the main thread, or with SIGTERM handled by the caller."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from bulkinvoke.cli import app


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
