"""What the operator reads: the per-zone table and the run's key performance indicators."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from llm.zones import CROWDED_LEVEL, FRUIN_LABELS, crowd_level
from twin.crowd import Crowd

if TYPE_CHECKING:
    from twin.model import VenueModel

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
#: Window (seconds) over which gate throughput is measured at its peak.
THROUGHPUT_WINDOW_S = 900.0


class Totals:
    """Running sums over steps: person-minutes at level E/F, peak density, services."""

    def __init__(self, n_zones: int) -> None:
        self.los_ef_by_zone = np.zeros(n_zones)  # person-minutes at level E/F, per zone
        self.peak_density = 0.0
        self.peak_zone = -1
        self.avatar_steps = 0
        self.waits_mark = 0  # chunks of crowd.waits already seen by the zones table
        self.upcoming = (np.empty(0, dtype=np.int64), np.empty(0))  # services not yet begun
        self.n_zones = n_zones

    @property
    def person_minutes_los_ef(self) -> float:
        """Person-minutes at level E/F so far, over every zone."""
        return float(self.los_ef_by_zone.sum())

    def account(self, crowd: Crowd, dt: float) -> None:
        """Add one step of ``dt`` seconds to the totals (it changes nothing of the run)."""
        density = crowd.density()
        levels = crowd_level(density)
        crowded = levels >= CROWDED_LEVEL
        self.los_ef_by_zone[crowded] += crowd.occupancy[crowded] * dt / 60.0
        z = int(np.argmax(density))
        if density[z] > self.peak_density:
            self.peak_density, self.peak_zone = float(density[z]), z
        self.avatar_steps += crowd.inside

    def take_new_waits(self, crowd: Crowd) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(zone, start, wait) of the visitors who joined a queue since the last call."""
        new = crowd.waits[self.waits_mark :]
        self.waits_mark = len(crowd.waits)
        if not new:
            return np.empty(0, dtype=np.int64), np.empty(0), np.empty(0)
        return tuple(np.concatenate(part) for part in zip(*new, strict=True))  # type: ignore

    def services_begun(self, zone: np.ndarray, start: np.ndarray, now: float) -> np.ndarray:
        """Per zone, how many services began by ``now`` among those not counted yet
        (``zone``/``start`` are the newly joined; earlier ones still to begin are kept)."""
        zone = np.concatenate([self.upcoming[0], zone])
        start = np.concatenate([self.upcoming[1], start])
        begun = start <= now
        self.upcoming = (zone[~begun], start[~begun])
        return np.bincount(zone[begun], minlength=self.n_zones)


def zone_rows(model: VenueModel) -> list[dict[str, Any]]:
    """One row per zone for the zones table, at the model's current time.

    ``served`` counts services begun since the previous row; ``mean_wait_s`` is the mean
    wait of the visitors who joined the queue since then (NaN where nobody did).
    """
    crowd, venue = model.crowd, model.venue
    density = crowd.density()
    levels = crowd_level(density)
    queue = crowd.queue_lengths(model.time_s)
    zone, start, wait = model.totals.take_new_waits(crowd)
    count = np.bincount(zone, minlength=venue.n_zones)
    total = np.bincount(zone, weights=wait, minlength=venue.n_zones)
    joined_wait = np.divide(total, count, out=np.full(venue.n_zones, np.nan), where=count > 0)
    served = model.totals.services_begun(zone, start, model.time_s)
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
            "mean_wait_s": float(joined_wait[z]),
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
    """Per entrance: visitors admitted (service begun by now), and the peak admission rate
    per hour over any 15-minute window."""
    out: dict[str, dict[str, float]] = {}
    if model.crowd.waits:
        zone = np.concatenate([w[0] for w in model.crowd.waits])
        start = np.concatenate([w[1] for w in model.crowd.waits])
    else:
        zone, start = np.empty(0, dtype=np.int64), np.empty(0)
    for g in model.venue.entrances:
        times = np.sort(start[(zone == g) & (start <= model.time_s)])
        in_window = np.searchsorted(times, times + THROUGHPUT_WINDOW_S) - np.arange(len(times))
        peak = float(in_window.max()) * 3600.0 / THROUGHPUT_WINDOW_S if len(times) else 0.0
        out[model.venue.zones[g]] = {"admitted": len(times), "peak_per_hour": round(peak, 1)}
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
        # When the event opened (the venue's wall clock): time 0 of zones.parquet's time_s.
        "opening": model.scenario.opening_time.replace(tzinfo=None).isoformat(),
        "avatars": int(crowd.arrived),
        "left": int(crowd.left),
        "inside_at_end": int(crowd.inside),
        "visits": int(crowd.log.count),
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
