"""What the operator reads: the per-zone table and the run's key performance indicators."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from llm.features import FRUIN_LABELS, crowd_level
from twin.crowd import Crowd

if TYPE_CHECKING:
    from twin.model import VenueModel

PHASE_NAMES = ("pending", "in_zone", "blocked", "leaving", "walking", "left")
ZONE_COLUMNS = (
    "time_s",
    "zone",
    "kind",
    "occupancy",
    "density",
    "fruin",
    "queue",
    "served",
    "mean_wait_s",
)
CROWDED_LEVEL = 4  # Fruin E and F
#: Window (seconds) over which gate throughput is measured at its peak.
THROUGHPUT_WINDOW_S = 900.0


class Totals:
    """Running sums over steps: person-minutes at level E/F, peak density."""

    def __init__(self, n_zones: int) -> None:
        self.person_minutes_los_ef = 0.0
        self.peak_density = 0.0
        self.peak_zone = -1
        self.avatar_steps = 0
        self.served_mark = np.zeros(n_zones, dtype=np.int64)
        self.waits_mark = 0

    def account(self, crowd: Crowd, dt: float) -> None:
        density = crowd.density()
        levels = crowd_level(density)
        crowd.satisfaction.tick(levels, dt)
        crowded = levels >= CROWDED_LEVEL
        self.person_minutes_los_ef += float(crowd.occupancy[crowded].sum()) * dt / 60.0
        z = int(np.argmax(density))
        if density[z] > self.peak_density:
            self.peak_density, self.peak_zone = float(density[z]), z
        self.avatar_steps += crowd.inside


def zone_rows(model: VenueModel) -> list[dict[str, Any]]:
    """One row per zone for the zones table, at the model's current time."""
    crowd, venue, totals = model.crowd, model.venue, model.totals
    density = crowd.density()
    levels = crowd_level(density)
    queue = crowd.queue_lengths(model.time_s)
    served = crowd.served - totals.served_mark
    totals.served_mark = crowd.served.copy()
    wait_sum = np.zeros(venue.n_zones)
    wait_n = np.zeros(venue.n_zones)
    for zone, _, wait in crowd.waits[totals.waits_mark :]:
        np.add.at(wait_sum, zone, wait)
        np.add.at(wait_n, zone, 1)
    totals.waits_mark = len(crowd.waits)
    mean_wait = np.divide(wait_sum, wait_n, out=np.full(venue.n_zones, np.nan), where=wait_n > 0)
    return [
        {
            "time_s": model.time_s,
            "zone": venue.zones[z],
            "kind": venue.kinds[z],
            "occupancy": int(crowd.occupancy[z]),
            "density": float(density[z]),
            "fruin": FRUIN_LABELS[levels[z]],
            "queue": int(queue[z]),
            "served": int(served[z]),
            "mean_wait_s": float(mean_wait[z]),
        }
        for z in range(venue.n_zones)
    ]


def all_waits(crowd: Crowd) -> tuple[np.ndarray, np.ndarray]:
    """(zone, wait_s) of every service a visitor queued for."""
    if not crowd.waits:
        return np.empty(0, dtype=np.int64), np.empty(0)
    zone = np.concatenate([w[0] for w in crowd.waits])
    wait = np.concatenate([w[2] for w in crowd.waits])
    return zone, wait


def throughput_per_gate(model: VenueModel) -> dict[str, dict[str, float]]:
    """Per entrance: visitors admitted, and the peak rate (per hour) over 15 minutes."""
    frame = model.zones_frame()
    out: dict[str, dict[str, float]] = {}
    window = max(1, round(THROUGHPUT_WINDOW_S / model.scenario.record_every_s))
    period_h = model.record_every * model.scenario.step_s / 3600.0
    for g in model.venue.entrances:
        name = model.venue.zones[g]
        served = frame.loc[frame["zone"] == name, "served"].to_numpy()
        rolling = np.convolve(served, np.ones(window), mode="valid") if len(served) else served
        peak = float(rolling.max() / (window * period_h)) if len(rolling) else 0.0
        out[name] = {"admitted": int(model.crowd.served[g]), "peak_per_hour": round(peak, 1)}
    return out


def summarise(model: VenueModel) -> dict[str, Any]:
    """The run's KPIs (written to ``kpis.json``)."""
    crowd, totals = model.crowd, model.totals
    zone, wait = all_waits(crowd)
    at_gate = np.isin(zone, model.venue.entrances)
    return {
        "scenario": model.scenario.name,
        "venue": model.venue.name,
        "policy": model.policy.name,
        "seed": model.scenario.seed,
        "avatars": int(crowd.arrived),
        "left": int(crowd.left),
        "inside_at_end": int(crowd.inside),
        "visits": int(sum(len(c[0]) for c in crowd.log.chunks)),
        "mean_wait_s": float(wait.mean()) if len(wait) else 0.0,
        "p95_wait_s": float(np.percentile(wait, 95)) if len(wait) else 0.0,
        "mean_gate_wait_s": float(wait[at_gate].mean()) if at_gate.any() else 0.0,
        "person_minutes_los_ef": round(totals.person_minutes_los_ef, 3),
        "peak_density": round(totals.peak_density, 4),
        "peak_density_zone": model.venue.zones[totals.peak_zone] if totals.peak_zone >= 0 else None,
        "mean_satisfaction": round(model.mean_satisfaction(), 4),
        "throughput_per_gate": throughput_per_gate(model),
        "avatar_steps": int(totals.avatar_steps),
        "simulated_s": model.time_s,
    }
