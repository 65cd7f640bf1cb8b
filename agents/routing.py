"""Walking to a chosen place: routes through passages, and where each avatar is heading.

The learnt policies (GPT and Markov) choose the next *place*, as their training tokens do:
corridors are walked through, not visited (``llm.zones.PASSAGE_KINDS``). So heading for
the café at the far end of the hall is one choice made where the visitor stands, with every
queue in view, not several hops that must each keep to it. The twin moves avatars one zone
at a time, so between two places an avatar crosses passages without asking the model:

- ``Routes``: the shortest walk between every two zones whose inner zones are all passages
  (exactly the moves ``ZoneVocab.destinations`` allows the model), and its first step;
- ``Itinerary``: each avatar's destination and how long it means to stay there; it answers
  for the avatars on their way, starts the walk of those that chose, and tells a new
  visit to a place from a policy asked again about the same one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.policy import TRANSIT_DWELL_S, Layout, Observation


@dataclass(frozen=True)
class Routes:
    """Walks from every zone to every place through passages only."""

    distance: np.ndarray  # (Z, Z) metres (inf where no such walk; passages are no goal)
    hop: np.ndarray  # (Z, Z) first zone of the walk (-1 where none)
    passage: np.ndarray  # (Z,) bool: zones walked through, not visited

    @classmethod
    def of(cls, layout: Layout) -> Routes:
        """Floyd-Warshall over the legal moves (each as long as the shortest walk between
        its two zones), with only passages allowed inside a walk."""
        passage = layout.vocabulary().passage
        n = layout.n_zones
        distance = np.where(layout.adjacency, layout.distance, np.inf)
        hop = np.where(np.isfinite(distance), np.arange(n)[None, :], -1)
        for k in np.flatnonzero(passage):
            through = distance[:, [k]] + distance[[k], :]
            shorter = through < distance
            distance = np.where(shorter, through, distance)
            hop = np.where(shorter, hop[:, [k]], hop)
        distance[:, passage] = np.inf
        hop[:, passage] = -1
        return cls(distance=distance, hop=hop, passage=passage)

    def open_places(self, zone: np.ndarray, legal: np.ndarray) -> np.ndarray:
        """(B, Z) bool: the places each avatar can head for now, those whose first step
        from its ``zone`` is one of its ``legal`` (B, Z) moves (a full zone refuses)."""
        hop = self.hop[zone]
        first_open = np.take_along_axis(legal, np.maximum(hop, 0), axis=1)
        return first_open & (hop >= 0)


class Itinerary:
    """Where each avatar is heading and how long it means to stay there."""

    def __init__(self, n_avatars: int, routes: Routes) -> None:
        self.routes = routes
        self.goal = np.full(n_avatars, -1, dtype=np.int64)
        self.stay_s = np.zeros(n_avatars)
        #: The visit (the twin's count) of each avatar's latest place.
        self.place_visit = np.full(n_avatars, -1, dtype=np.int64)

    def walk_on(
        self, obs: Observation, walking: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Next zones and dwells with the ``walking`` avatars' filled in (the others stay
        put for a passing dwell until their policy says), and the rows of the others."""
        next_zone = obs.zone.astype(np.int64)
        dwell = np.full(len(obs), TRANSIT_DWELL_S)
        on = np.flatnonzero(walking)
        next_zone[on], dwell[on] = self.walk(obs.avatar[on], obs.zone[on])
        return next_zone, dwell, np.flatnonzero(~walking)

    def is_new(self, obs: Observation) -> np.ndarray:
        """(B,) bool: avatars at a place whose visit there is new (not a policy asked again
        about the same visit after a full zone refused it)."""
        return ~self.routes.passage[obs.zone] & (self.place_visit[obs.avatar] != obs.visits - 1)

    def arrived(self, obs: Observation) -> np.ndarray:
        """``is_new``, and the new visits are remembered."""
        new = self.is_new(obs)
        self.place_visit[obs.avatar[new]] = obs.visits[new] - 1
        return new

    def at_door(self, avatar: np.ndarray, zone: np.ndarray) -> np.ndarray:
        """(B,) bool: avatars in a passage one step from their place."""
        goal = self.goal[avatar]
        hop = self.routes.hop[zone, np.maximum(goal, 0)]
        return (goal >= 0) & (hop == goal) & self.routes.passage[zone]

    def on_the_way(self, obs: Observation) -> np.ndarray:
        """(B,) bool: avatars in a passage on their way to a place, whose next step is
        open: they walk on without a decision."""
        goal = self.goal[obs.avatar]
        hop = self.routes.hop[obs.zone, np.maximum(goal, 0)]
        way = (goal >= 0) & self.routes.passage[obs.zone] & (hop >= 0)
        return way & obs.legal[np.arange(len(obs)), np.maximum(hop, 0)]

    def walk(self, avatar: np.ndarray, zone: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The next step of each avatar towards its place, and the stay there: the planned
        one on the step into the place, a passing one in a passage."""
        goal = self.goal[avatar]
        hop = self.routes.hop[zone, goal]
        return hop, np.where(hop == goal, self.stay_s[avatar], TRANSIT_DWELL_S)

    def head_for(
        self, avatar: np.ndarray, zone: np.ndarray, place: np.ndarray, stay_s: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Start the walks of avatars that chose ``place`` (staying ``stay_s`` there); where
        ``place`` is the avatar's own ``zone`` with no walk back to it, it stays on."""
        self.goal[avatar], self.stay_s[avatar] = place, stay_s
        nowhere = self.routes.hop[zone, place] < 0
        self.goal[avatar[nowhere]] = -1
        hop, dwell = self.walk(avatar, zone)
        return np.where(nowhere, zone, hop), np.where(nowhere, stay_s, dwell)
