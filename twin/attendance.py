"""Who watched the shows: per stage, the share of the visitors who booked a show there that
attended it, and the share of the others who did, from a visit log and the programme.

A visitor attends a show when its visits to the show's stage cover at least
``ATTENDED_SHARE`` of the show's time. Booked shows are read from each visitor's declared
profile (``show=<stage>@<HH:MM>`` tags, ``llm.features.Programme.wanted``), as the model
reads them; the programme is the run's (``Layout.programme``). Counted over every (visitor,
show) pair of a stage: a stage with three shows counts each visitor three times.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from llm.features import Programme

#: The share of a show's time a visitor must spend at its stage to count as attending.
ATTENDED_SHARE = 0.5


def show_attendance(visits: pd.DataFrame, programme: Programme) -> dict[str, dict[str, Any]]:
    """Per stage: ``booked`` and ``attended_booked`` (visitor-show pairs of those who booked
    a show there, and of those who attended it), ``others`` and ``attended_others`` (the
    visitors present that day who did not book it). ``visits``: a visit log with
    ``avatar_id``, ``timestamp``, ``zone``, ``dwell_s`` and ``profile``; ``programme``:
    start and end on the clock (seconds of the day)."""
    if not len(programme) or not len(visits):
        return {}
    profiles = visits.groupby("avatar_id", sort=True)["profile"].first().fillna("")
    wanted = programme.wanted(profiles.astype(str).tolist())  # (V, S)
    who = pd.Index(profiles.index)
    stamps = pd.to_datetime(visits["timestamp"])
    start = (stamps - stamps.dt.normalize()).dt.total_seconds().to_numpy()
    end = start + pd.to_numeric(visits["dwell_s"], errors="coerce").fillna(0.0).to_numpy()
    row_of = who.get_indexer(visits["avatar_id"])
    zone = visits["zone"].astype(str).to_numpy()
    out: dict[str, dict[str, Any]] = {}
    for s, (stage, show_start, show_end) in enumerate(
        zip(programme.stages, programme.start_s, programme.end_s, strict=True)
    ):
        at = zone == stage
        overlap = np.minimum(end[at], show_end) - np.maximum(start[at], show_start)
        watched = np.bincount(row_of[at], np.clip(overlap, 0.0, None), minlength=len(who))
        attended = watched >= ATTENDED_SHARE * (show_end - show_start)
        counts = out.setdefault(
            stage, {"booked": 0, "attended_booked": 0, "others": 0, "attended_others": 0}
        )
        booked = wanted[:, s]
        counts["booked"] += int(booked.sum())
        counts["attended_booked"] += int((attended & booked).sum())
        counts["others"] += int((~booked).sum())
        counts["attended_others"] += int((attended & ~booked).sum())
    return out


def attendance_shares(counts: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per stage, the shares ``booked`` (attended of booked) and ``others``; NaN where a
    stage had nobody of that kind."""
    return {
        stage: {
            "booked": c["attended_booked"] / c["booked"] if c["booked"] else float("nan"),
            "others": c["attended_others"] / c["others"] if c["others"] else float("nan"),
        }
        for stage, c in counts.items()
    }
