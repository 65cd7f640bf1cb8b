"""Writing a run's results: the visit log, the per-zone table and ``kpis.json``.

Every file is written atomically (a temporary file renamed into place), and only after
the run has finished, so an interrupted run leaves no half-written file behind. The visit
log is written a part at a time (``VenueModel.visit_frames``), so a run whose log was
streamed to disk is written without holding it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from llm.fileio import atomic_path, write_text_atomic
from llm.logschema import write_visit_parts

if TYPE_CHECKING:
    from twin.model import VenueModel


def write_run(model: VenueModel, out_dir: str | os.PathLike[str], csv: bool = False) -> dict:
    """Write ``visits.parquet`` (or ``visits.csv``), ``zones.parquet`` and ``kpis.json``.

    Returns the paths written, by name.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    visits = write_visit_parts(
        model.visit_frames(), out / ("visits.csv" if csv else "visits.parquet")
    )
    zones = out / "zones.parquet"
    with atomic_path(zones) as tmp:
        model.zones_frame().to_parquet(tmp, index=False)
    kpis = out / "kpis.json"
    write_text_atomic(kpis, json.dumps(model.kpis(), indent=2) + "\n")
    return {"visits": visits, "zones": zones, "kpis": kpis}


def clear_leftovers(out_dir: str | os.PathLike[str]) -> list[Path]:
    """Remove what a run killed outright (kill -9, a power cut) left in ``out_dir``: its
    hidden temporary files (``.<name>.*.tmp``) and streamed visit parts (``.visits-*``),
    which no run reads. Returns what was removed."""
    out = Path(out_dir)
    if not out.is_dir():
        return []
    removed = [p for p in (*out.glob(".*.tmp"), *out.glob(".visits-*"))]
    for path in removed:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return removed
