"""``read_ledger``: a run's export table as a pandas DataFrame (``bulkinvoke.read_ledger``).

It lives above the ledger because a list of run directories (the shards of one run) is read
through ``bulkinvoke.scale.union``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bulkinvoke.ledger.files import RECORDS_NAME
from bulkinvoke.ledger.store import Ledger
from bulkinvoke.ledger.views import export_frame, with_duplicates

if TYPE_CHECKING:
    import pandas as pd


def read_ledger(
    run_dir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
) -> pd.DataFrame:
    """The export table of a run: one row per manifest row, with the state of its latest attempt;
    times are timezone-aware UTC timestamps. Takes no lock, so it works while a run goes on.
    A list of run directories (the shards of one run) gives the table of their union, sorted
    by row (``bulkinvoke.scale.union.read_ledgers``)."""
    if not isinstance(run_dir, str | os.PathLike):
        from bulkinvoke.scale.union import read_ledgers

        return with_records(read_ledgers(run_dir), [Path(d) for d in run_dir])
    with Ledger.open(Path(run_dir), writable=False) as ledger:
        frame = export_frame(
            with_duplicates(ledger.latest(["input_location"]), ledger.duplicates())
        )
    return with_records(frame, [Path(run_dir)])


def with_records(frame: pd.DataFrame, run_dirs: Sequence[Path]) -> pd.DataFrame:
    """``frame`` with the records' own columns joined by row, for a run of records
    (``submit --stage``; each shard keeps every record's columns, so the first one found
    serves)."""
    import pyarrow.parquet as pq

    path = next((d / RECORDS_NAME for d in run_dirs if (d / RECORDS_NAME).exists()), None)
    if path is None:
        return frame
    records = pq.read_table(path).to_pandas()
    return frame.merge(records, on="row", how="left", validate="many_to_one")
