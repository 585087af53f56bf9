"""Tables derived from the folded ledger: each row's latest attempt, counts, the export table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bulkinvoke.errors import LedgerCorrupt, LedgerError
from bulkinvoke.ledger.schema import EVENT_COLUMNS, run_ends
from bulkinvoke.states import State

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

_STATES = tuple(State)
_STATE_CODES = {state.value: code for code, state in enumerate(_STATES)}
EXPORT_COLUMNS = (
    "row",
    "input_location",
    "inference_id",
    "state",
    "attempts",
    "output_location",
    "failure_location",
    "error",
    "submitted_at",
    "completed_at",
    "latency_s",
    "retries",
    "throttles",
    "output_bytes",
    "duplicate_of",
)


def latest_of(folded: pa.Table, plan: pa.Table, where: Path) -> pa.Table:
    """The plan left-joined with each row's latest attempt (see ``Ledger.latest``)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    # The fold is sorted by (row, attempt), so a row's latest attempt ends its run of rows.
    last = folded.filter(pa.array(run_ends(folded["row"].to_numpy())))
    found, positions = match_plan(plan["row"].to_numpy(), last["row"].to_numpy(), where)
    picked = last.take(pa.array(positions, mask=np.logical_not(found)))
    names = [f"plan_{n}" if n in EVENT_COLUMNS and n != "row" else n for n in plan.column_names]
    columns = list(plan.columns)
    for name in EVENT_COLUMNS[1:]:
        column = picked[name]
        if name == "attempt":
            column = pc.fill_null(column, 0)
        elif name == "state":
            column = pc.fill_null(column, State.PENDING.value)
        elif name == "error":
            # The fold keeps the last error written: for an attempt that expired and then got its
            # output after all, the expiry's, which a success must not carry.
            succeeded = pc.fill_null(pc.equal(picked["state"], State.SUCCEEDED.value), False)
            column = pc.if_else(succeeded, pa.scalar(None, column.type), column)
        names.append(name)
        columns.append(column)
    return pa.Table.from_arrays(columns, names=names)


def count_states(
    tables: list[pa.Table], paths: list[Path], plan_rows: np.ndarray, where: Path
) -> dict[State, int]:
    """Rows per state of their latest attempt, from event tables (row, attempt, and state read
    dictionary-encoded) in ledger order; rows without events are pending."""
    import numpy as np

    rows = np.concatenate([t["row"].to_numpy() for t in tables] or [np.empty(0, np.int64)])
    attempts = np.concatenate([t["attempt"].to_numpy() for t in tables] or [np.empty(0, np.int32)])
    codes = np.concatenate(
        [_state_codes(t["state"], p) for t, p in zip(tables, paths, strict=True)]
        or [np.empty(0, np.int8)]
    )
    # Stable, so a row's last position is the newest event of its latest attempt.
    order = np.lexsort((attempts, rows))
    ends = run_ends(rows[order])
    latest_rows = rows[order][ends]
    match_plan(plan_rows, latest_rows, where)
    tally = np.bincount(codes[order][ends], minlength=len(_STATES))
    result = {state: int(tally[code]) for code, state in enumerate(_STATES)}
    result[State.PENDING] += len(plan_rows) - len(latest_rows)
    return result


def duplicates_table(rows: Sequence[int], first_rows: Sequence[int]) -> pa.Table:
    import pyarrow as pa

    return pa.table(
        {"row": pa.array(rows, pa.int64()), "first_row": pa.array(first_rows, pa.int64())}
    )


def with_duplicates(latest: pa.Table, duplicates: pa.Table) -> pa.Table:
    """``latest_of``'s table with a row for each manifest row that repeats an earlier row's
    input: the earlier row's record under the repeating row's number, and its number in
    ``duplicate_of`` (null for every other row). Sorted by row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    latest = latest.append_column("duplicate_of", pa.nulls(latest.num_rows, pa.int64()))
    if not duplicates.num_rows:
        return latest
    at = pc.index_in(duplicates["first_row"], value_set=latest["row"])
    if at.null_count:
        raise LedgerError("a duplicate row repeats a row the plan does not have")
    copies = latest.take(at)
    copies = copies.set_column(copies.schema.get_field_index("row"), "row", duplicates["row"])
    copies = copies.set_column(
        copies.schema.get_field_index("duplicate_of"), "duplicate_of", duplicates["first_row"]
    )
    return pa.concat_tables([latest, copies]).sort_by("row")


def export_frame(latest: pa.Table) -> pd.DataFrame:
    """The export table (``read_ledger``) from ``with_duplicates``'s table."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    elapsed = pc.subtract(latest["completed_at"], latest["submitted_at"])
    derived = {
        "attempts": latest["attempt"],
        "latency_s": pc.divide(pc.cast(elapsed, pa.int64()), 1000.0),
    }
    table = pa.table(
        {name: derived[name] if name in derived else latest[name] for name in EXPORT_COLUMNS}
    )
    # Nullable integer columns, so that a missing count is <NA> rather than a float NaN.
    nullable = {pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype()}
    return table.to_pandas(types_mapper=nullable.get)


def match_plan(
    plan_rows: np.ndarray, event_rows: np.ndarray, where: Path
) -> tuple[np.ndarray, np.ndarray]:
    """For each plan row, whether the sorted, unique ``event_rows`` has it, and where. Events of
    rows the plan does not have are refused: they would vanish from every count."""
    import numpy as np

    positions = np.searchsorted(event_rows, plan_rows)
    found = positions < len(event_rows)
    found[found] = event_rows[positions[found]] == plan_rows[found]
    positions[~found] = 0
    missing = len(event_rows) - int(found.sum())
    if missing:
        unknown = np.setdiff1d(event_rows, plan_rows)
        raise LedgerCorrupt(
            f"{where} has events of {missing} rows that the plan does not have (first: row "
            f"{unknown[0]}); the events and the plan come from different runs"
        )
    return found, positions


def _state_codes(states: pa.ChunkedArray, path: Path) -> np.ndarray:
    """Positions in ``tuple(State)`` of a dictionary-encoded state column read from ``path``."""
    import numpy as np

    parts = []
    for chunk in states.chunks:
        try:
            lookup = np.array([_STATE_CODES[v] for v in chunk.dictionary.to_pylist()], np.int8)
        except KeyError as exc:
            raise LedgerCorrupt(f"{path} holds an unknown state {exc.args[0]!r}") from None
        parts.append(lookup[chunk.indices.to_numpy(zero_copy_only=False)])
    return np.concatenate(parts) if parts else np.empty(0, np.int8)
