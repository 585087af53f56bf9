"""Tables from the ledger: Parquet, CSV or JSON Lines, chosen by the output file's extension."""

from __future__ import annotations

from pathlib import Path

from bulkinvoke.states import State

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl"}


class ExportError(ValueError):
    pass


def export_table(run_dir: Path, output: Path, *, states: list[str] | None = None) -> int:
    """Write one row per manifest row (see ``read_ledger``); return how many were written."""
    from bulkinvoke.ledger import read_ledger

    kind = FORMATS.get(output.suffix.lower())
    if kind is None:
        raise ExportError(f"{output}: the file name must end in .parquet, .csv or .jsonl")
    wanted = []
    for name in states or []:
        try:
            wanted.append(State(name.lower()).value)
        except ValueError:
            choices = ", ".join(s.value for s in State)
            raise ExportError(f"unknown state {name!r}: choose from {choices}") from None
    table = read_ledger(run_dir)
    if wanted:
        table = table[table["state"].isin(wanted)]
    output.parent.mkdir(parents=True, exist_ok=True)
    if kind == "parquet":
        table.to_parquet(output, index=False)
    elif kind == "csv":
        table.to_csv(output, index=False)
    else:
        table.to_json(output, orient="records", lines=True, date_format="iso")
    return len(table)
