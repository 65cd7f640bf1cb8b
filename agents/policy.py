"""The policy contract: what an avatar sees when it decides, and what it answers.

A policy decides for a *batch* of avatars at once (every avatar whose visit ends in this
step): ``decide(obs) -> Decision``. Everything in an ``Observation`` is an array over
those avatars, so a policy costs one call per step, never one per avatar.

A policy chooses either the next *zone*, one move at a time (``chooses = "zone"``, the
default: the scripted visitors plan their own routes), or the next *place*, as the
learnt policies' training tokens do (``chooses = "place"``): then the twin walks the
avatar there through the passages between (``twin.crowd.Walks``), and asks its policy
again only at the place, or at the door of a place whose queue has grown (``walking``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

import numpy as np

from agents.needs import Needs
from llm.features import Programme
from llm.sampling import choose
from llm.vocab import ZoneVocab

#: Typical walking speed a visitor assumes when planning (metres per second).
PLANNING_SPEED = 1.2
#: Stay (seconds) at a zone the visitor only passes through.
TRANSIT_DWELL_S = 3.0


@dataclass(frozen=True)
class Layout:
    """What a policy may know of the venue: zones, legal moves, distances and the shows."""

    zones: tuple[str, ...]
    kinds: tuple[str, ...]
    kind_ids: np.ndarray  # (Z,) index into llm.zones.ZONE_KINDS
    adjacency: np.ndarray  # (Z, Z) bool: one legal move from u to v
    distance: np.ndarray  # (Z, Z) shortest walking distance, metres (inf: unreachable)
    next_hop: np.ndarray  # (Z, Z) first zone on a shortest path from u to t
    capacity: np.ndarray  # (Z,) hard capacity, persons
    area: np.ndarray  # (Z,) square metres
    passage: np.ndarray  # (Z,) bool: zones walked through, not visited (no place)
    place_distance: np.ndarray  # (Z, Z) metres of the walk to each place via passages only
    place_hop: np.ndarray  # (Z, Z) first zone of that walk (-1 where none)
    show_stage: np.ndarray  # (S,) zone index of each show's stage
    show_start_s: np.ndarray  # (S,) seconds after opening
    show_end_s: np.ndarray  # (S,)
    show_draw: np.ndarray  # (S,) share of visitors who want to see it
    show_headline: np.ndarray  # (S,) bool
    opening: datetime  # wall-clock time of t = 0
    closing_s: float  # seconds after opening when the event ends

    @property
    def n_zones(self) -> int:
        return len(self.zones)

    def of_kind(self, *kinds: str) -> np.ndarray:
        return np.array([i for i, k in enumerate(self.kinds) if k in kinds], dtype=np.int64)

    @property
    def opening_clock_s(self) -> float:
        """The opening time as seconds since midnight."""
        o = self.opening
        return float(o.hour * 3600 + o.minute * 60 + o.second + o.microsecond / 1e6)

    def programme(self) -> Programme:
        """The shows as a model sees them: stages and clock times (``llm.features``)."""
        clock = self.opening_clock_s
        return Programme(
            tuple(self.zones[z] for z in self.show_stage),
            tuple(float(clock + t) for t in self.show_start_s),
            tuple(float(clock + t) for t in self.show_end_s),
        )

    def vocabulary(self) -> ZoneVocab:
        """This venue's zones as a model vocabulary, to check a model against."""
        return ZoneVocab.from_venue(
            self.zones, self.kinds, self.area, self.adjacency, source="this venue"
        )


@dataclass
class Observation:
    """The avatars that decide this step, as arrays over the batch (B avatars)."""

    avatar: np.ndarray  # (B,) avatar index
    zone: np.ndarray  # (B,) zone each avatar is in
    now_s: np.ndarray  # (B,) time of each decision, seconds after opening
    entered_s: np.ndarray  # (B,) when each avatar entered its zone
    arrived_s: np.ndarray  # (B,) when each avatar arrived at the venue
    entry_crowd: np.ndarray  # (B,) Fruin level of the zone when the avatar entered it
    visits: np.ndarray  # (B,) zones entered so far, the current one included
    legal: np.ndarray  # (B, Z) bool: zones each avatar may move to now
    history: np.ndarray  # (B, H) previous zones, most recent last, -1 where none
    occupancy: np.ndarray  # (Z,) persons in each zone now
    crowd: np.ndarray  # (Z,) Fruin level 0 (A) .. 5 (F) of each zone now
    # (B, Z) seconds a visitor joining each zone's queue at each avatar's moment would wait
    # (behind those who joined strictly before it, as a log shows it: ``llm.causal``)
    queue_wait_s: np.ndarray
    # For a policy that chooses places (the twin walks its avatars there):
    places: np.ndarray  # (B, Z) bool: places each avatar can head for now (first step open)
    goal: np.ndarray  # (B,) the place each avatar is heading for (-1: none)
    goal_stay_s: np.ndarray  # (B,) the stay it planned there
    walking: np.ndarray  # (B,) bool: on its way in a passage, the next step open
    # (Z,) bool: zones that take nobody more now (as many in as their capacity, or closed:
    # what a log read with the day's capacities shows, ``llm.data.encode``); None where the
    # twin does not say.
    full: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.avatar)


@dataclass
class Decision:
    """Each deciding avatar's next zone and how long it means to stay there (seconds).

    By default (a policy's ``dwell_from`` is ``"service_end"``), for a service zone the
    dwell is the time spent after being served (drinking at the bar, say); the queue and
    the service come from the twin. With ``dwell_from = "entry"`` (a policy learnt from
    logs whose dwell includes the queue) it means the whole stay: the avatar leaves at
    ``entry + dwell``; with ``"service_start"`` (learnt from logs that state their queue
    waits) the stay from the start of service, the queue left to the twin. Never before
    it has been served.

    For a policy that chooses places, ``next_zone`` is the place (one of the avatar's
    ``places``; its ``goal`` to walk on; -1 where none is open: it stays on and is asked
    again) and ``dwell_s`` the stay there.
    """

    next_zone: np.ndarray  # (B,) int64
    dwell_s: np.ndarray  # (B,) float64


@runtime_checkable
class Policy(Protocol):
    """Chooses the next zone (or place) for a batch of avatars.

    Two optional attributes: ``chooses``, ``"zone"`` (the default: one move at a time) or
    ``"place"`` (the twin walks there), and ``dwell_from`` (``Decision``)."""

    name: str

    def bind(self, layout: Layout, needs: Needs, rng: np.random.Generator) -> None:
        """Prepare for a run: the venue, the visitors' needs, and the run's seeded generator."""

    def decide(self, obs: Observation) -> Decision:
        """Next zones (legal for each avatar) and dwell times for every avatar in ``obs``."""
        ...


def sample_rows(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one column per row with probability proportional to the row's weights.

    Rows whose weights are all zero get -1.
    """
    picked = choose(weights, rng.random(len(weights)))
    return np.where(weights.sum(axis=1) > 0, picked, -1)
