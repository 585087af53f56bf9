"""How every command ends on an error a user can cause: one line on stderr and the exit code that
``bulkinvoke.errors`` assigns, never a traceback; and consoles that do not break lines for a pipe.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from bulkinvoke.errors import BulkinvokeError, ExportStopped, InvalidManifest, LedgerWriteError
from bulkinvoke.exit_codes import ExitCode

err = Console(stderr=True)

MAX_PROBLEMS_SHOWN = 20
# Wide enough for a table of S3 locations; a terminal keeps its own width.
PIPED_WIDTH = 200


def fail(message: str, code: ExitCode = ExitCode.USAGE) -> NoReturn:
    # Messages quote file names and manifest cells: "[...]" in them is text, not rich markup;
    # soft_wrap keeps a file name whole, to be copied from the terminal.
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(int(code))


def wide_when_piped(console: Console) -> Console:
    """``console``, as wide as ``PIPED_WIDTH`` when it writes to a pipe or a file (rich takes
    80 columns there, and breaks locations and commands in tables across lines)."""
    if not console.is_terminal:
        console.width = PIPED_WIDTH
    return console


@contextmanager
def expected_errors(go_on: str = "run the same command again") -> Iterator[None]:
    """Turn every :class:`~bulkinvoke.errors.BulkinvokeError` and Ctrl-C (or SIGTERM) into a
    message and its exit code; ``go_on`` says how to continue after a stop or an interrupt."""
    try:
        with _sigterm_as_ctrl_c():
            yield
    except InvalidManifest as error:
        problems = error.manifest.problems
        for problem in problems[:MAX_PROBLEMS_SHOWN]:
            err.print(str(problem), highlight=False, markup=False, soft_wrap=True)
        if len(problems) > MAX_PROBLEMS_SHOWN:
            err.print(f"... and {len(problems) - MAX_PROBLEMS_SHOWN} more invalid rows")
        fail(f"{error} (use --skip-invalid to record them as rejected and go on)")
    except LedgerWriteError as error:
        # A full disk or an I/O error is no usage error: the run stopped, and what is on disk
        # is whole, so it resumes once the disk can be written again.
        fail(
            f"{error}. The run stopped; once the disk can be written again, {go_on}",
            error.exit_code,
        )
    except ExportStopped as error:
        fail(f"{error}; nothing was written", error.exit_code)
    except BulkinvokeError as error:
        fail(str(error), error.exit_code)
    except KeyboardInterrupt:
        fail(f"interrupted; nothing is lost: {go_on}", ExitCode.INTERRUPTED)


@contextmanager
def _sigterm_as_ctrl_c() -> Iterator[None]:
    """A scheduler stops a job with SIGTERM (AWS Batch, Kubernetes, systemd), with time to spare
    before SIGKILL: taken as Ctrl-C, the calls in flight get to finish. Only the main thread can
    set a handler, and a SIGTERM the caller chose to ignore stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        # None: a handler set outside Python, which cannot be put back; the default is closest.
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
