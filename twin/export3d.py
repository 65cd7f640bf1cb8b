"""A run as a glTF 2.0 binary scene (``venuetwin export RUN_DIR --format glb``), for 3D and
VR tools: standard glTF viewers, Blender, game engines and WebXR viewers.

The scene is in metres, Y up (glTF's convention: the venue's x is X, its y is -Z):

- each zone a box on its footprint (``dashboards.scene3d.footprints``), one child per
  Fruin level in that level's colour, shown (scale 1) only while the zone is at that level
  and hidden (scale 0) otherwise: STEP scale animations, the crowd level as it changes
  every recorded moment of the zones table;
- each passage a thin grey box between its zones;
- a sample of the avatars (``--avatars``, default 500) as small markers with one
  translation animation each: a keyframe where each visit begins and ends (a fixed spot in
  the zone's footprint, on its roof), walking straight between zones in between (LINEAR),
  and a scale animation that shows it only between its arrival and its departure.

Animation time is seconds since opening. The file is built with ``pygltflib`` (a
maintained glTF library; ``twin.gltf_scene``), its binary chunk holding every accessor.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from twin.provenance import ProvenanceError, find_record, read_record
from twin.scene import footprints
from twin.venue import Venue, load_venue

DEFAULT_AVATARS = 500


class ExportError(ValueError):
    """A run folder that cannot be exported; the message names the file."""


def run_venue(run_dir: Path) -> Venue:
    """The venue of a run folder: its provenance record's venue file, else kpis.json's
    built-in venue name."""
    try:
        record = read_record(find_record(run_dir))
        venue_files = record.get("inputs", {}).get("venue", [])
        if venue_files and Path(venue_files[0]["path"]).is_file():
            return load_venue(venue_files[0]["path"])
    except ProvenanceError:
        pass
    kpis = run_dir / "kpis.json"
    try:
        return load_venue(json.loads(kpis.read_text("utf-8"))["venue"])
    except (OSError, ValueError, KeyError) as exc:
        raise ExportError(f"{run_dir}: not a run folder (no usable kpis.json: {exc})") from None


def export_glb(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    avatars: int = DEFAULT_AVATARS,
    seed: int = 0,
) -> Path:
    """Write ``out`` (a .glb) from the run in ``run_dir``; returns the path."""
    from llm.fileio import atomic_path

    run = Path(run_dir)
    venue = run_venue(run)
    visits = read_table(run, "visits")
    zones = pd.read_parquet(run / "zones.parquet") if (run / "zones.parquet").is_file() else None
    if zones is None:
        raise ExportError(f"{run}: no zones.parquet (write the run with venuetwin simulate)")
    opening = run_opening(run, visits)
    from twin.gltf_scene import Builder  # pygltflib: only when exporting

    builder = Builder()
    centres, side = footprints(venue)
    builder.venue(venue, centres, side, zones)
    builder.avatars(visits, venue, centres, side, opening, avatars, seed)
    final = Path(out)
    with atomic_path(final) as tmp:
        builder.save(tmp)
    return final


def run_opening(run: Path, visits: pd.DataFrame) -> pd.Timestamp:
    """When the event opened (kpis.json's ``opening``; for a run written before it was
    recorded, the first visit's time, which the first arrivals follow within seconds)."""
    try:
        return pd.Timestamp(json.loads((run / "kpis.json").read_text("utf-8"))["opening"])
    except (OSError, ValueError, KeyError):
        return visits["timestamp"].min() if len(visits) else pd.Timestamp(0)


def read_table(run: Path, name: str) -> pd.DataFrame:
    for path in (run / f"{name}.parquet", run / f"{name}.csv"):
        if path.is_file():
            frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
            frame["timestamp"] = pd.to_datetime(frame["timestamp"])
            return frame
    raise ExportError(f"{run}: no {name}.parquet or {name}.csv")
