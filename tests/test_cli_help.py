"""Every command, and every option of every command, explains itself."""

from __future__ import annotations

import re

import pytest
import typer.main
from typer.testing import CliRunner

from bulkinvoke.cli.app import app

COMMAND = typer.main.get_command(app)
NAMES = sorted(COMMAND.commands)  # type: ignore[attr-defined]


def test_the_contracted_commands_exist() -> None:
    assert {"submit", "resume", "status", "export", "emulator"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_command_has_help_text(name: str) -> None:
    command = COMMAND.commands[name]  # type: ignore[attr-defined]
    assert command.help and command.help.strip(), f"{name} has no help text"
    for parameter in command.params:
        if parameter.param_type_name == "option" and parameter.name != "help":
            assert parameter.help, f"{name} {parameter.opts} has no help text"
            # Help is plain text now, but rich (typer's other help mode) would read "[word ...]"
            # as markup and drop it: kept out, so the texts stay right in either mode.
            assert not re.search(r"\[[a-z]", parameter.help), (
                f"{name} {parameter.opts}: brackets in help text vanish as rich markup"
            )
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_top_level_help_lists_exit_codes() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "130" in result.output and "Exit codes" in result.output


def test_a_price_without_a_dry_run_is_refused_rather_than_ignored() -> None:
    result = CliRunner().invoke(
        app, ["submit", "m.csv", "--endpoint", "e", "--price-per-instance-hour", "2"]
    )
    assert result.exit_code == 2
    assert "it prices the estimate of --dry-run" in result.output
