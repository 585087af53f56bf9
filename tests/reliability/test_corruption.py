"""A truncated or corrupt ledger file: every command that reads the run (status, resume, export,
report) refuses with one message naming the file and saying how to recover, and never shows
fewer rows or different counts as if nothing had happened. Following the advice works."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bulkinvoke.cli.app import app
from bulkinvoke.emulator import LocalStack
from bulkinvoke.export.frame import read_ledger

from .conftest import ENDPOINT, cli_env, make_dataset, run_cli, with_fault_hook

ITEMS = 80


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _flip_a_byte(path: Path) -> None:
    # In the middle of the file: a data page, which the page checksums cover.
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x5A
    path.write_bytes(bytes(data))


def _append_garbage(path: Path) -> None:
    with path.open("ab") as file:
        file.write(b"\x00garbage after the footer")


Damage = Callable[[Path], None]


@pytest.fixture(scope="module")
def finished_run(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run whose events are a compaction plus batches after it."""
    import boto3

    directory = tmp_path_factory.mktemp("corruption")
    s3 = boto3.client("s3", endpoint_url=stack.s3_url, region_name="us-east-1")
    data = make_dataset(s3, directory, ITEMS)
    run_dir = directory / "run"
    env = with_fault_hook(cli_env(stack), BULKINVOKE_COMPACT_AFTER="4")
    done = run_cli(env, "submit", str(data.manifest), "--endpoint", ENDPOINT,
                   "--run-dir", str(run_dir), "--rate", "200", "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in (run_dir / "events").iterdir())
    assert any(n.startswith("c-") for n in names) and any(n.startswith("b-") for n in names)
    return run_dir


def _target(run_dir: Path, which: str) -> Path:
    events = sorted((run_dir / "events").iterdir())
    if which == "first batch":
        return next(p for p in events if p.name.startswith("b-"))
    if which == "last batch":
        return [p for p in events if p.name.startswith("b-")][-1]
    if which == "compaction":
        return next(p for p in events if p.name.startswith("c-"))
    return run_dir / which


# (file, damage, words of the recovery advice the message must give)
CASES: list[tuple[str, Damage, str]] = [
    ("last batch", _truncate, "move it out of the run directory"),
    ("first batch", _empty, "move it out of the run directory"),
    ("first batch", _append_garbage, "move it out of the run directory"),
    ("compaction", _truncate, "restore it from a backup"),
    ("compaction", _flip_a_byte, "restore it from a backup"),
    ("plan.parquet", _truncate, "start a new run"),
    ("run.json", _truncate, "must be restored"),
]


@pytest.mark.parametrize(("which", "damage", "advice"), CASES)
def test_damage_is_named_with_its_remedy_by_every_command(
    emulator: LocalStack,
    finished_run: Path,
    tmp_path: Path,
    which: str,
    damage: Damage,
    advice: str,
) -> None:
    runner = CliRunner()
    env = cli_env(emulator)
    status = ["status", str(finished_run), "--json"]
    intact = runner.invoke(app, status, env=env).stdout.replace(str(finished_run), "RUN")
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    damaged = _target(run_dir, which)
    damage(damaged)
    for command in (
        ["status", str(run_dir), "--json"],
        ["resume", str(run_dir), "--quiet"],
        ["export", str(run_dir), "-o", str(tmp_path / "out.csv")],
        ["report", str(run_dir)],
        ["report", str(run_dir), "-o", str(tmp_path / "report.json")],
    ):
        result = runner.invoke(app, command, env=env)
        if command[0] == "status" and result.exit_code == 0:
            # status reads two columns only: damage elsewhere may not touch what it shows,
            # but what it shows must be the truth.
            assert result.stdout.replace(str(run_dir), "RUN") == intact
            continue
        shown = " ".join(result.output.split())
        assert result.exit_code == 2, (command, result.output)
        assert isinstance(result.exception, SystemExit), result.exception
        assert str(damaged) in shown, (command, shown)
        assert advice in shown, (command, shown)
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "report.json").exists()


def test_moving_a_corrupt_batch_aside_as_advised_recovers_every_row(
    emulator: LocalStack, s3: Any, finished_run: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    batch = _target(run_dir, "last batch")
    _truncate(batch)
    batch.rename(tmp_path / batch.name)
    before = emulator.accepted_ids()
    done = run_cli(cli_env(emulator), "resume", str(run_dir), "--quiet")
    assert done.returncode == 0, done.stderr
    table = read_ledger(run_dir)
    assert len(table) == ITEMS and (table["state"] == "succeeded").all()
    # What only the lost batch knew is found again in S3, not sent again.
    assert emulator.accepted_ids() == before


def test_a_missing_events_directory_is_named(
    emulator: LocalStack, finished_run: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    shutil.rmtree(run_dir / "events")
    for command in (["status", str(run_dir)], ["resume", str(run_dir)]):
        result = CliRunner().invoke(app, command, env=cli_env(emulator))
        assert result.exit_code == 2, result.output
        assert "lost its events" in " ".join(result.output.split())
