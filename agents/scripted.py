"""Hand-written visitors: a needs-based ``ScriptedPolicy`` and a ``RandomPolicy``.

The scripted visitor is the behaviour generator for synthetic logs. Its choices depend on
its whole history, not only on where it stands, so a sequence model has something to learn
that a Markov chain cannot: booths already seen are not revisited, thirst and bladder grow
since the last bar or restroom, fatigue grows since arrival (lounges help), it heads to a
stage before a show it came for, avoids zones at Fruin level E or F, weighs a queue's
wait against the walk to another bar or restroom (again at its door, where it sees the
queue), and leaves when tired,
at closing, or after the headline show it came for. Every step works on arrays over the
deciding avatars; nothing loops over avatars in Python.
"""

from __future__ import annotations

import numpy as np

from agents.needs import Needs
from agents.policy import (
    PLANNING_SPEED,
    TRANSIT_DWELL_S,
    Decision,
    Layout,
    Observation,
    sample_rows,
)
from llm.zones import CROWDED_LEVEL

#: Fruin level (0 = A) from which a zone counts as too crowded to head for (4 = E).
#: Interest below which an attraction is not worth a visit.
MIN_INTEREST = 0.3
#: Seconds before a wanted show starts that the visitor heads for its stage.
SHOW_LEAD_S = 900.0
#: Seconds before closing that everybody heads for an exit.
CLOSING_LEAD_S = 900.0
#: A queue this many seconds long makes an attraction e (2.7) times less tempting.
QUEUE_AVERSION_S = 600.0
#: Mean stay (seconds) at a zone that is the visitor's goal, by kind; after service for
#: service zones.
GOAL_DWELL_S: dict[str, float] = {
    "booth": 240.0,
    "shop": 180.0,
    "stage": 150.0,
    "bar": 300.0,
    "restroom": 15.0,
    "lounge": 900.0,
    "hall": 120.0,
    "corridor": 0.0,
    "entrance": 0.0,
    "exit": 0.0,
}


class ScriptedPolicy:
    """A needs-based visitor that plans a goal zone and walks there hop by hop."""

    name = "scripted"

    def bind(self, layout: Layout, needs: Needs, rng: np.random.Generator) -> None:
        self.layout = layout
        self.needs = needs
        self.rng = rng
        self.goal = np.full(len(needs.arrived_s), -1, dtype=np.int64)
        #: Zones that refused an avatar when it tried to reach them as its goal.
        self.given_up = np.zeros((len(needs.arrived_s), layout.n_zones), dtype=bool)
        self.exits = layout.of_kind("exit")
        self.bars = layout.of_kind("bar")
        self.restrooms = layout.of_kind("restroom")
        self.lounges = layout.of_kind("lounge")
        self.goal_dwell = np.array([GOAL_DWELL_S.get(k, 60.0) for k in layout.kinds])
        self.kinds = np.array(layout.kinds)

    # ------------------------------------------------------------------ decide
    def decide(self, obs: Observation) -> Decision:
        idx, zone, now = obs.avatar, obs.zone, obs.now_s
        crowded = obs.crowd >= CROWDED_LEVEL
        goal = self.goal[idx].copy()
        goal[goal == zone] = -1  # reached: choose anew
        self.give_up_refused(obs, goal)
        goal[self.given_up[idx, np.maximum(goal, 0)]] = -1

        show_goal, show_end, show_soon = self.wanted_show(idx, now)
        self.queue_wait_s = obs.queue_wait_s  # (B, Z): each avatar's own
        goal = self.choose_goal(idx, zone, now, goal, crowded, show_goal, show_soon)
        goal = self.balk(idx, zone, goal, crowded)
        self.goal[idx] = goal

        next_zone = self.layout.next_hop[zone, goal]
        next_zone = self.reroute(obs, next_zone, goal)
        dwell = self.dwell_at(next_zone, goal, idx, zone, now, show_goal, show_end)
        return Decision(next_zone=next_zone, dwell_s=dwell)

    def give_up_refused(self, obs: Observation, goal: np.ndarray) -> None:
        """A goal that just refused entry (full) is given up, not queued for."""
        rows = np.arange(len(goal))
        hop = self.layout.next_hop[obs.zone, np.maximum(goal, 0)]
        refused = (goal >= 0) & (hop == goal) & ~obs.legal[rows, hop]
        refused &= self.layout.adjacency[obs.zone, hop]
        self.given_up[obs.avatar[refused], goal[refused]] = True

    def wanted_show(
        self, idx: np.ndarray, now: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The next wanted show not yet seen: its stage (-1 if none), its end, and whether it
        is about to start or running (within ``SHOW_LEAD_S``)."""
        lay = self.layout
        if len(lay.show_stage) == 0:
            none = np.full(len(idx), -1)
            return none, np.zeros(len(idx)), np.zeros(len(idx), dtype=bool)
        ahead = (
            self.needs.show_wanted[idx]
            & (self.needs.show_watched[idx] < 0.5)
            & ~self.given_up[idx][:, lay.show_stage]
            & (now[:, None] < lay.show_end_s[None, :] - 300.0)
        )
        start = np.where(ahead, lay.show_start_s[None, :], np.inf)
        first = np.argmin(start, axis=1)
        has = np.isfinite(start[np.arange(len(idx)), first])
        soon = has & (now >= lay.show_start_s[first] - SHOW_LEAD_S)
        return (
            np.where(has, lay.show_stage[first], -1),
            np.where(has, lay.show_end_s[first], 0.0),
            soon,
        )

    def choose_goal(
        self,
        idx: np.ndarray,
        zone: np.ndarray,
        now: np.ndarray,
        goal: np.ndarray,
        crowded: np.ndarray,
        show_goal: np.ndarray,
        show_soon: np.ndarray,
    ) -> np.ndarray:
        """The goal zone of each avatar, by priority: leave, show, restroom, bar, lounge,
        the current goal if still worth it, a new attraction drawn by interest, the stage of
        a show still to come, else an exit."""
        needs, lay = self.needs, self.layout
        fatigue = needs.fatigue(idx, now)
        leaving = (
            (fatigue >= 1.0)
            | (now >= lay.closing_s - CLOSING_LEAD_S)
            | self.headline_over(idx, now)
        )
        waits = self.queue_wait_s
        new = np.where(leaving, self.nearest(zone, self.exits, crowded, waits), -1)
        new = np.where((new < 0) & show_soon, show_goal, new)
        here = self.kinds[zone]  # the visit ending here has just met that need
        for wanted, places in (
            ((needs.bladder(idx, now) >= 1.0) & (here != "restroom"), self.restrooms),
            ((needs.thirst(idx, now) >= 1.0) & (here != "bar"), self.bars),
            ((fatigue >= 0.7) & (needs.rested_s[idx] < 600.0), self.lounges),
        ):
            if len(places):
                nearest = self.nearest(zone, places, crowded, waits, idx)
                new = np.where((new < 0) & wanted, nearest, new)
        keep = (new < 0) & (goal >= 0)
        keep[keep] &= ~crowded[goal[keep]] & ~needs.seen[idx[keep], goal[keep]]
        keep[keep] &= ~self.given_up[idx[keep], goal[keep]]
        new = np.where(keep, goal, new)

        explore = new < 0
        if explore.any():
            ex_idx, ex_zone = idx[explore], zone[explore]
            nearness = np.exp(-lay.distance[ex_zone] / 300.0)  # inf distance -> 0
            interest = needs.interest[ex_idx]
            worth = (interest >= MIN_INTEREST) & ~needs.seen[ex_idx] & ~crowded[None, :]
            worth &= ~self.given_up[ex_idx]
            patience = np.exp(-waits[explore] / QUEUE_AVERSION_S)
            weights = interest * worth * nearness * patience
            weights[np.arange(len(ex_zone)), ex_zone] = 0.0
            picked = sample_rows(weights, self.rng)
            # Nothing left worth seeing: wait for a show still to come, or go home.
            picked = np.where(picked < 0, show_goal[explore], picked)
            exits = self.nearest(ex_zone, self.exits, crowded, waits[explore])
            picked = np.where(picked < 0, exits, picked)
            new[explore] = picked
        return new

    def balk(
        self, idx: np.ndarray, zone: np.ndarray, goal: np.ndarray, crowded: np.ndarray
    ) -> np.ndarray:
        """At the door of a bar or restroom, the visitor sees its queue and weighs it again:
        another one is taken if walking there and waiting is quicker (balking)."""
        hop = self.layout.next_hop
        at_door = (goal >= 0) & (hop[zone, np.maximum(goal, 0)] == goal)
        new = goal.copy()
        for places in (self.bars, self.restrooms):
            if len(places) > 1:
                turn = at_door & np.isin(goal, places)
                if turn.any():
                    waits = self.queue_wait_s[turn]
                    new[turn] = self.nearest(zone[turn], places, crowded, waits, idx[turn])
        # Not through the queue it turns away from.
        through = (new >= 0) & (hop[zone, np.maximum(new, 0)] == goal)
        return np.where(through, goal, new)

    def headline_over(self, idx: np.ndarray, now: np.ndarray) -> np.ndarray:
        """True where a headline show the avatar came for has ended."""
        lay = self.layout
        if not lay.show_headline.any():
            return np.zeros(len(idx), dtype=bool)
        over = lay.show_headline[None, :] & (now[:, None] >= lay.show_end_s[None, :])
        return (over & self.needs.show_wanted[idx]).any(axis=1)

    def nearest(
        self,
        zone: np.ndarray,
        places: np.ndarray,
        crowded: np.ndarray,
        waits: np.ndarray,
        idx: np.ndarray | None = None,
    ) -> np.ndarray:
        """The closest of ``places`` from each zone, counting a queue's wait (``waits``
        (B, Z), as each avatar sees it) as the walk it is worth, and avoiding crowded ones
        when possible; for avatars ``idx``, never one that refused them (closed, or full: a
        thirsty visitor turned away at a shut bar goes to another, not back to the same
        door)."""
        if len(places) == 0:
            return np.full(len(zone), -1)
        queue_m = PLANNING_SPEED * waits[:, places]
        cost = self.layout.distance[zone][:, places] + queue_m + 1e5 * crowded[places][None, :]
        if idx is not None:
            cost = np.where(self.given_up[idx][:, places], np.inf, cost)
        best = np.argmin(cost, axis=1)
        return np.where(np.isfinite(cost[np.arange(len(zone)), best]), places[best], -1)

    def reroute(self, obs: Observation, next_zone: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Where the planned hop is not legal now (refused, closed), take the legal neighbour
        closest to the goal, or any legal neighbour."""
        rows = np.arange(len(next_zone))
        bad = (next_zone < 0) | ~obs.legal[rows, np.maximum(next_zone, 0)]
        if not bad.any():
            return next_zone
        legal = obs.legal[bad]
        dist = self.layout.distance[:, np.maximum(goal[bad], 0)].T  # (b, Z): zone -> goal
        cost = np.where(legal, dist, np.inf)
        cost = np.where(legal & ~np.isfinite(cost), 1e9, cost)
        cost += self.rng.random(cost.shape)  # break ties at random
        choice = np.argmin(cost, axis=1)
        stuck = ~legal.any(axis=1)
        next_zone = next_zone.copy()
        next_zone[bad] = np.where(stuck, obs.zone[bad], choice)
        return next_zone

    def dwell_at(
        self,
        next_zone: np.ndarray,
        goal: np.ndarray,
        idx: np.ndarray,
        zone: np.ndarray,
        now: np.ndarray,
        show_goal: np.ndarray,
        show_end: np.ndarray,
    ) -> np.ndarray:
        """Seconds to stay at the next zone: long at a goal (scaled by interest), until the
        end of the show at a show's stage, a few seconds when passing through."""
        at_goal = next_zone == goal
        spread = self.rng.lognormal(0.0, 0.35, len(next_zone))
        appeal = 0.5 + 1.5 * self.needs.interest[idx, next_zone]
        dwell = self.goal_dwell[next_zone] * spread * appeal
        walk = self.layout.distance[zone, next_zone] / PLANNING_SPEED
        watching = at_goal & (show_goal == next_zone)
        dwell = np.where(watching, np.maximum(show_end - now - walk, 60.0), dwell)
        return np.where(at_goal, dwell, TRANSIT_DWELL_S * spread)


class RandomPolicy:
    """Wanders to a uniformly random legal neighbour; heads out at closing time."""

    name = "random"

    def __init__(self, mean_dwell_s: float = 120.0) -> None:
        self.mean_dwell_s = mean_dwell_s

    def bind(self, layout: Layout, needs: Needs, rng: np.random.Generator) -> None:
        self.layout = layout
        self.rng = rng
        self.exits = layout.of_kind("exit")

    def decide(self, obs: Observation) -> Decision:
        lay = self.layout
        picked = sample_rows(obs.legal.astype(np.float64), self.rng)
        closing = obs.now_s >= lay.closing_s - CLOSING_LEAD_S
        if closing.any():
            exit_cost = lay.distance[obs.zone[closing]][:, self.exits]
            home = self.exits[np.argmin(exit_cost, axis=1)]
            hop = lay.next_hop[obs.zone[closing], home]
            legal = obs.legal[np.flatnonzero(closing), np.maximum(hop, 0)] & (hop >= 0)
            picked[closing] = np.where(legal, hop, picked[closing])
        picked = np.where(picked < 0, obs.zone, picked)
        dwell = self.rng.exponential(self.mean_dwell_s, len(picked))
        return Decision(next_zone=picked, dwell_s=dwell)
