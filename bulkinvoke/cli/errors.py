"""What every command shares: how it ends on an error a user can cause (one line on stderr, a
documented code), and consoles that do not break lines for a pipe."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from bulkinvoke.exit_codes import ExitCode

err = Console(stderr=True)


def fail(message: str, code: ExitCode = ExitCode.USAGE) -> NoReturn:
    # Messages quote file names and manifest cells: "[...]" in them is text, not rich markup;
    # soft_wrap keeps a file name whole, to be copied from the terminal.
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(int(code))


# Wide enough for a table of S3 locations; a terminal keeps its own width.
PIPED_WIDTH = 200


def wide_when_piped(console: Console) -> Console:
    """``console``, as wide as ``PIPED_WIDTH`` when it writes to a pipe or a file (rich takes
    80 columns there, and breaks locations and commands in tables across lines)."""
    if not console.is_terminal:
        console.width = PIPED_WIDTH
    return console
