"""The visit-log contract, defined once: one row per zone visit.

The twin writes exactly this table and the trainer reads it, so simulate -> train ->
simulate closes on itself. Real logs enter through the same door (see ``llm.data``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from llm.fileio import atomic_path

#: Columns a visit log must have.
REQUIRED_COLUMNS: tuple[str, ...] = ("avatar_id", "timestamp", "zone")
#: Columns used when present (derived from the log otherwise).
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "dwell_s",
    "occupancy",
    "wait_s",
    "leave_wait_s",
    "run_id",
    "zone_kind",
    "profile",
)
#: Column order and dtypes of the logs the twin writes.
VISIT_DTYPES: dict[str, str] = {
    "avatar_id": "int64",
    "timestamp": "datetime64[ns]",
    "zone": "string",
    "dwell_s": "float64",
    "occupancy": "int32",
    "wait_s": "float64",  # queueing before service (0 where the zone has no queue)
    # The end of the dwell spent waiting to leave, after choosing where to go next (a
    # door's queue, a full zone ahead): the choice was made at dwell_s - leave_wait_s.
    "leave_wait_s": "float64",
    "run_id": "string",
    "zone_kind": "string",
    # What the visitor declared before it came (``llm.features.profile_vectors``): zones
    # of interest and other tags, joined by "|"; read from a trajectory's first row.
    "profile": "string",
}


def visits_frame(columns: dict[str, object]) -> pd.DataFrame:
    """Build a visit log in the canonical column order and dtypes from column arrays."""
    missing = [c for c in VISIT_DTYPES if c not in columns]
    if missing:
        raise ValueError(f"visit log is missing columns: {', '.join(missing)}")
    frame = pd.DataFrame({c: columns[c] for c in VISIT_DTYPES})
    return frame.astype(VISIT_DTYPES)


def visits_csv(frame: pd.DataFrame, target: str | os.PathLike[str] | None = None) -> str | None:
    """A visit log as CSV with ISO-8601 timestamps, into ``target`` (None: returned)."""
    return frame.to_csv(target, index=False, date_format="%Y-%m-%dT%H:%M:%S.%f")


def write_visits(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a visit log atomically: Parquet, or CSV when ``path`` ends in ``.csv``."""
    final = Path(path)
    with atomic_path(final) as tmp:
        if final.suffix == ".csv":
            visits_csv(frame, tmp)
        else:
            frame.to_parquet(tmp, index=False)
    return final


def write_visit_parts(frames: Iterable[pd.DataFrame], path: str | os.PathLike[str]) -> Path:
    """Write a visit log given in parts (each a ``visits_frame``) atomically, a part at a
    time, so that the whole log is never held: Parquet (a row group per part), or CSV when
    ``path`` ends in ``.csv``. No part at all writes an empty log."""
    final = Path(path)
    with atomic_path(final) as tmp:
        writer: pq.ParquetWriter | None = None
        first = True
        for frame in frames:
            if final.suffix == ".csv":
                with open(tmp, "w" if first else "a", encoding="utf-8", newline="") as out:
                    frame.to_csv(out, index=False, header=first, date_format="%Y-%m-%dT%H:%M:%S.%f")
            else:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                writer = writer or pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
            first = False
        if writer is not None:
            writer.close()
        if first:  # no part: the empty log, with its columns
            empty = visits_frame({c: [] for c in VISIT_DTYPES})
            visits_csv(empty, tmp) if final.suffix == ".csv" else empty.to_parquet(tmp, index=False)
    return final
