"""How every command ends on an error a user can cause: one line on stderr, a documented code."""

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
