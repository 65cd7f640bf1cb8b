"""Visitor satisfaction: gains from wanted visits and shows, losses from waiting and crowds.

Scored by the twin from the visitors' needs (``agents.needs``), whatever policy drives the
avatars, so scripted, Markov and GPT avatars are judged alike:

- first visit to an attraction: + interest x min(1, dwell / 5 min);
- a drink: + thirst when served (at most 2); a restroom: + bladder / 2 (at most 1);
- a show: + 2 x share watched if the visitor came for it, + 0.3 x share otherwise;
- waiting in queues or at full zones: -0.05 a minute;
- time in a zone at Fruin level E or F: -0.02 a minute.
"""

from __future__ import annotations

import numpy as np

from agents.needs import ATTRACTION_KINDS, Needs
from agents.policy import Layout
from llm.zones import CROWDED_LEVEL

WAIT_COST_PER_MIN = 0.05
CROWD_COST_PER_MIN = 0.02


class Satisfaction:
    """One score per avatar, updated as visits end."""

    def __init__(self, layout: Layout, needs: Needs, n_avatars: int) -> None:
        self.layout, self.needs = layout, needs
        self.kinds = np.array(layout.kinds)
        self.attraction = np.isin(self.kinds, ATTRACTION_KINDS)
        self.score = np.zeros(n_avatars)
        self.crowded_s = np.zeros(layout.n_zones)  # running seconds each zone was at E/F
        self.crowded_at_entry = np.zeros(n_avatars)

    def tick(self, levels: np.ndarray, dt: float) -> None:
        self.crowded_s += dt * (levels >= CROWDED_LEVEL)

    def enter(self, idx: np.ndarray, zone: np.ndarray) -> None:
        self.crowded_at_entry[idx] = self.crowded_s[zone]

    def wait(self, idx: np.ndarray, wait_s: np.ndarray) -> None:
        np.subtract.at(self.score, idx, WAIT_COST_PER_MIN * wait_s / 60.0)

    def leave(
        self, idx: np.ndarray, zone: np.ndarray, entered: np.ndarray, left: np.ndarray
    ) -> None:
        """Score visits that end now (call before the needs record them as seen)."""
        needs, lay = self.needs, self.layout
        crowded_min = (self.crowded_s[zone] - self.crowded_at_entry[idx]) / 60.0
        kind = self.kinds[zone]
        dwell = left - entered
        first = self.attraction[zone] & ~needs.seen[idx, zone]
        gain = np.where(first, needs.interest[idx, zone] * np.minimum(1.0, dwell / 300.0), 0.0)
        gain += np.where(kind == "bar", np.minimum(needs.thirst(idx, entered), 2.0), 0.0)
        gain += np.where(
            kind == "restroom", 0.5 * np.minimum(needs.bladder(idx, entered), 2.0), 0.0
        )
        if len(lay.show_stage):
            overlap = np.minimum(left[:, None], lay.show_end_s) - np.maximum(
                entered[:, None], lay.show_start_s
            )
            share = np.clip(overlap / (lay.show_end_s - lay.show_start_s), 0.0, 1.0)
            share *= zone[:, None] == lay.show_stage[None, :]
            share = np.maximum(share - needs.show_watched[idx], 0.0)  # no double counting
            weight = np.where(needs.show_wanted[idx], 2.0, 0.3)
            gain += (share * weight).sum(axis=1)
        self.score[idx] += gain - CROWD_COST_PER_MIN * crowded_min
