"""The crowd a visit log shows: the hours the place keeps, visitors a day, their arrivals.

    hours = open_hours(seconds_of_day)            # OpenHours(opening_s=36000.0, hours=12.0)
    crowd = crowd_of_log(frame, venue, "visits.csv")   # crowd.changes: Scenario fields

``venuetwin venue from-pois`` writes this crowd as the new venue's scenario, and
``venuetwin validate --reference LOG`` runs the twin with it.

**Opening hours.** A log's clock is not the place's: photos carry camera clocks, a night's
revellers take pictures at 3 a.m., a few scans are mis-stamped. The hours are the stretch
of the day (one window, possibly across midnight) whose visits are denser than the rest's,
found by maximum likelihood: the clock in ``BIN_S`` bins, a density inside the window and
another outside, the window that explains the visits' times best (and is denser inside).
The window then takes in the bins beside it whose visits stand over ``SHOULDER`` times
the stray level (a park's first arrivals, its last stragglers). A log of a crowd whose times
all fall in the day the twin ran gives that day back; photo scatter over the night is left
outside. Where one density explains the times as well (the
gain below ``BIC_WEIGHT * ln(visits)``) the place is open all day. ``--open HH:MM-HH:MM``
states them instead (``parse_open``).

**The crowd.** Visitors a day: trajectories over the days their first visits fall on. The
arrival profile: first visits in half-hour slices of the hours. The twin's sample: a log
that is a sample of its place's crowd (a photo log: a visitor or two a day) would give the
twin as few visitors and figures of pure noise, so ``sample_size`` runs at least as many
visitors as the log has trajectories, up to ``SAMPLE_VISITORS`` (``--avatars`` sets it).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from twin.scenario import ScenarioError
from twin.venue import Venue

DAY_S = 86_400.0
#: The clock's resolution for the opening hours (seconds).
BIN_S = 900.0
#: The shortest opening the inference returns (hours).
MIN_OPEN_H = 0.5
#: A window must raise the log-likelihood by this times ln(visits) over one density (the
#: Bayesian information criterion's price of its three parameters).
BIC_WEIGHT = 1.5
#: A bin next to the window joins it where its visits are over this many times the
#: stray level (the mean count of a bin outside the window).
SHOULDER = 2.0
#: The twin's visitors a day against a log: at least the log's trajectories, up to this.
SAMPLE_VISITORS = 2000
#: Arrival profile slices (seconds).
ARRIVAL_SLICE_S = 1800.0


@dataclass(frozen=True)
class OpenHours:
    """The hours a place keeps: from ``opening_s`` (seconds after midnight) for ``hours``
    (up to 24; a window may run past midnight)."""

    opening_s: float
    hours: float

    @property
    def all_day(self) -> bool:
        return self.hours >= 24.0

    def since_opening(self, seconds_of_day: np.ndarray) -> np.ndarray:
        """Seconds after opening of each time of day (0 .. 24 h)."""
        return np.mod(np.asarray(seconds_of_day, dtype=np.float64) - self.opening_s, DAY_S)

    def holds(self, seconds_of_day: np.ndarray) -> np.ndarray:
        """Which times of day fall within the hours."""
        return self.since_opening(seconds_of_day) < self.hours * 3600.0

    def clock_hours(self) -> list[int]:
        """The hours of the clock (0-23) the window touches."""
        first = int(self.opening_s // 3600)
        span = math.ceil((self.opening_s + self.hours * 3600.0) / 3600.0 - 1e-9) - first
        return sorted({(first + h) % 24 for h in range(min(max(span, 1), 24))})

    def text(self) -> str:
        """'HH:MM-HH:MM' (closing past midnight as the clock reads it)."""

        def hhmm(seconds: float) -> str:
            minutes = round(seconds / 60.0)
            return f"{minutes // 60:02d}:{minutes % 60:02d}"

        closing = self.opening_s + self.hours * 3600.0
        return f"{hhmm(self.opening_s)}-{hhmm(24 * 3600 if self.all_day else closing % DAY_S)}"


def parse_open(text: str, option: str = "--open") -> OpenHours:
    """'HH:MM-HH:MM' -> the hours (a closing at or before the opening runs past midnight;
    '00:00-24:00' is all day)."""
    found = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text or "")
    if not found:
        raise ScenarioError(f"{option}: expected HH:MM-HH:MM (e.g. 09:00-22:00), got {text!r}")
    h1, m1, h2, m2 = map(int, found.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise ScenarioError(f"{option}: {text!r} is not a time of day")
    opening, closing = h1 * 3600 + m1 * 60, h2 * 3600 + m2 * 60
    span = closing - opening if closing > opening else closing + DAY_S - opening
    return OpenHours(float(opening), min(span, DAY_S) / 3600.0)


def open_hours(seconds_of_day: np.ndarray) -> OpenHours:
    """The hours a log's visit times (seconds after midnight) show (see the module's
    docstring): the one window, at ``BIN_S``, inside which the times are densest."""
    times = np.asarray(seconds_of_day, dtype=np.float64)
    times = times[np.isfinite(times)]
    n_bins = int(round(DAY_S / BIN_S))
    n = len(times)
    if n == 0:
        return OpenHours(0.0, 24.0)
    counts = np.bincount(
        np.clip((np.mod(times, DAY_S) // BIN_S).astype(int), 0, n_bins - 1), minlength=n_bins
    )
    cumulative = np.concatenate([[0], np.cumsum(np.concatenate([counts, counts]))])
    shortest = int(round(MIN_OPEN_H * 3600.0 / BIN_S))
    start = np.arange(n_bins)[:, None]
    length = np.arange(shortest, n_bins)[None, :]
    inside = (cumulative[start + length] - cumulative[start]).astype(np.float64)
    outside = n - inside

    def loglik(c: np.ndarray, bins: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(c > 0, c * np.log(c / (n * bins)), 0.0)

    gain = loglik(inside, length) + loglik(outside, n_bins - length) - n * np.log(1.0 / n_bins)
    denser = inside / length > outside / (n_bins - length)
    gain = np.where(denser, gain, -np.inf)
    best = np.unravel_index(int(np.argmax(gain)), gain.shape)
    if not gain[best] > BIC_WEIGHT * math.log(max(n, 2)):
        return OpenHours(0.0, 24.0)
    first, span = int(best[0]), int(length[0, best[1]])
    # The window's quiet edges (the first arrivals, the last stragglers) belong to it where
    # they stand clearly above the stray times' level.
    background = max((n - inside[best]) / (n_bins - span), 1.0)
    while span < n_bins and counts[(first - 1) % n_bins] > SHOULDER * background:
        first, span = first - 1, span + 1
    while span < n_bins and counts[(first + span) % n_bins] > SHOULDER * background:
        span += 1
    return OpenHours(float((first % n_bins) * BIN_S), float(span * BIN_S / 3600.0))


def seconds_of_day(stamps: pd.Series) -> np.ndarray:
    """Seconds after midnight of each time stamp (as ``llm.logs.read_logs`` gives a visit's
    in its ``seconds_of_day`` column)."""
    return (stamps - stamps.dt.normalize()).dt.total_seconds().to_numpy()


def sample_size(crowd_per_day: int, trajectories: int) -> int:
    """The twin's visitors a day against a log (see the module's docstring)."""
    return max(crowd_per_day, min(trajectories, SAMPLE_VISITORS))


@dataclass(frozen=True)
class LogCrowd:
    """What ``crowd_of_log`` reads from a log: the scenario's fields (``changes``), the
    zones it shares with the venue, its days, hours and crowd, and the log itself as the
    comparison reads it (``frame``: dwell NaN where the log states none)."""

    changes: dict[str, Any]
    zones: list[str]
    days: int
    hours: OpenHours
    crowd_per_day: int
    trajectories: int
    outside_hours_share: float
    frame: pd.DataFrame


def crowd_of_log(
    frame: pd.DataFrame, venue: Venue, source: str, hours: OpenHours | None = None
) -> LogCrowd:
    """The crowd a log shows on the zones it shares with ``venue`` (see the module's
    docstring). ``frame``: ``llm.logs.read_logs``; ``hours``: the opening hours (default:
    inferred, ``open_hours``)."""
    zones = sorted(set(frame["zone"]) & set(venue.zones))
    if not zones:
        raise ScenarioError(
            f"{source}: zone: none of the log's zones is a zone of venue {venue.name!r}"
        )
    if not (frame["present_s"] > 0).any():  # no stated dwell (photos): no dwell to compare
        frame = frame.assign(dwell_s=np.nan)
    first = frame.groupby("trajectory")["timestamp"].min()
    days = max(1, first.dt.normalize().nunique())
    times = frame["seconds_of_day"].to_numpy()
    hours = hours or open_hours(times)
    span_s = hours.hours * 3600.0
    arrive = hours.since_opening(seconds_of_day(first))
    arrive = arrive[arrive < span_s]
    if len(arrive) == 0:
        raise ScenarioError(f"{source}: timestamp: no trajectory begins within {hours.text()}")
    # A log open all day starts with its first arrivals; one with hours, at its opening.
    offset = np.floor(np.quantile(arrive, 0.01) / BIN_S) * BIN_S if hours.all_day else 0.0
    inside = hours.holds(times)
    ends = hours.since_opening(times[inside]) + frame["dwell_s"].fillna(0.0).to_numpy()[inside]
    closing = np.ceil(np.quantile(ends, 0.99) / BIN_S) * BIN_S if len(ends) else span_s
    length = float(np.clip((min(closing, span_s) - offset) / 3600.0, 0.5, 24.0))
    window = float(np.clip((np.quantile(arrive, 0.95) - offset) / 3600.0, 0.25, length))
    # Half-hour slices (8 to 48), so the twin's hour-of-day profile can follow the log's.
    bins = int(np.clip(round(window * 3600.0 / ARRIVAL_SLICE_S), 8, 48))
    slices = np.histogram(arrive - offset, bins=bins, range=(0.0, window * 3600.0))[0]
    middle = first.sort_values().iloc[len(first) // 2].normalize()
    day = middle + pd.Timedelta(seconds=float(hours.opening_s + offset))
    crowd = max(1, round(len(first) / days))
    in_zones = frame["zone"].isin(zones).to_numpy()
    changes = {
        "avatars": crowd,
        "hours": length,
        "opening": day.strftime("%Y-%m-%dT%H:%M:%S"),
        "arrival_window_h": window,
        "arrival_profile": [float(c) + 1e-3 * max(1, slices.max()) for c in slices],
    }
    return LogCrowd(
        changes=changes,
        zones=zones,
        days=days,
        hours=hours,
        crowd_per_day=crowd,
        trajectories=len(first),
        outside_hours_share=float(np.mean(~inside[in_zones])) if in_zones.any() else 0.0,
        frame=frame,
    )


__all__ = [
    "LogCrowd",
    "OpenHours",
    "SAMPLE_VISITORS",
    "crowd_of_log",
    "open_hours",
    "parse_open",
    "sample_size",
]
