"""The run's visit log as it grows: completed visits gathered as array chunks, held in
memory, or streamed to Parquet parts on disk so that a long run of many avatars does not
hold its log (``VenueModel(stream_visits=...)``, ``venuetwin simulate``).

The log's columns are the twin's raw ones (``FIELDS``: avatar row, entry time in seconds,
zone index, ...); ``VenueModel.visits`` turns them into the visit-log schema of
``llm.logschema``. A streamed log keeps its parts in a hidden temporary folder, written a
part of ``PART_ROWS`` visits at a time and removed with the log.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

#: The raw columns of a completed visit, in the order ``VisitLog.add`` takes them.
FIELDS: tuple[str, ...] = (
    "avatar",
    "entered_s",
    "zone",
    "dwell_s",
    "occupancy",
    "wait_s",
    "leave_wait_s",
)
#: A streamed log writes a part once it holds this many visits.
PART_ROWS = 1 << 20

Columns = tuple[np.ndarray, ...]


class VisitLog:
    """Completed visits: held as array chunks, or with ``stream_to`` (a folder) written to
    Parquet parts in a temporary folder inside it as they come."""

    def __init__(self, stream_to: str | os.PathLike[str] | None = None) -> None:
        self.chunks: list[Columns] = []
        self.count = 0  # visits logged, held or written
        self.held = 0  # visits in ``chunks``
        self.parts: list[Path] = []
        self.folder: Path | None = None
        if stream_to is not None:
            parent = Path(stream_to)
            parent.mkdir(parents=True, exist_ok=True)
            self.folder = Path(tempfile.mkdtemp(prefix=".visits-", dir=parent))
            self._remove = weakref.finalize(self, shutil.rmtree, self.folder, True)

    @property
    def streamed(self) -> bool:
        return self.folder is not None

    def add(self, *columns: np.ndarray) -> None:
        """Log visits: one array per field of ``FIELDS``, all of one length."""
        self.chunks.append(columns)
        self.count += len(columns[0])
        self.held += len(columns[0])
        if self.folder is not None and self.held >= PART_ROWS:
            self.spill()

    def spill(self) -> None:
        """Write the visits held to a new part (a streamed log only)."""
        if self.folder is None or not self.chunks:
            return
        joined = _join(self.chunks)
        path = self.folder / f"part-{len(self.parts):05d}.parquet"
        pq.write_table(pa.Table.from_arrays(list(joined), names=list(FIELDS)), path)
        self.parts.append(path)
        self.chunks, self.held = [], 0

    def batches(self) -> Iterator[Columns]:
        """The visits in batches: each part written, then those held (if any)."""
        for path in self.parts:
            table = pq.read_table(path)
            yield tuple(table.column(name).to_numpy() for name in FIELDS)
        if self.chunks:
            yield _join(self.chunks)

    def columns(self) -> Columns:
        """Every visit's ``FIELDS``, in the order logged."""
        batches = list(self.batches())
        if not batches:
            return tuple(np.empty(0) for _ in FIELDS)
        return _join(batches)

    def close(self) -> None:
        """Remove a streamed log's parts (the log is empty after)."""
        if self.folder is not None:
            self._remove()
        self.chunks, self.parts, self.held, self.count = [], [], 0, 0


def _join(chunks: list[Columns]) -> Columns:
    return tuple(np.concatenate(part) for part in zip(*chunks, strict=True))
