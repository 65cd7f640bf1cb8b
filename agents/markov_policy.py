"""The baseline policy: an order-2 Markov chain of places fitted on visit logs.

It is what a modeller would fit without a sequence model: the next place depends on the
current and the previous place only (smoothed towards order 1 and popularity, restricted
to the places that can come next), and the dwell on the place alone. Like the GPT, it
chooses places, and the twin walks its avatars there (``twin.crowd.Walks``); draws are
batch-independent.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from agents.needs import Needs
from agents.policy import Decision, Layout, Observation
from llm import checkpoint
from llm.data import read_sequences
from llm.markov import MarkovBaseline
from llm.sampling import choose, dwell_seconds, uniforms
from llm.vocab import ZoneVocab

_ZONE_DRAW, _DWELL_DRAW = 11, 12


class MarkovPolicy:
    """Avatars that move as an order-``order`` Markov chain fitted on logs."""

    name = "markov"
    chooses = "place"
    dwell_from = "entry"  # dwell learnt from logs: the whole stay, queues included

    def __init__(self, chain: MarkovBaseline, vocab: ZoneVocab) -> None:
        self.chain, self.vocab = chain, vocab

    @classmethod
    def from_logs(
        cls, logs: Sequence[str | os.PathLike[str]], vocab: ZoneVocab, order: int = 2
    ) -> MarkovPolicy:
        """Fit the chain on every trajectory of ``logs`` (zones must be the vocabulary's)."""
        return cls(MarkovBaseline(read_sequences(logs, vocab), vocab, order=order), vocab)

    def bind(self, layout: Layout, needs: Needs, rng: np.random.Generator) -> None:
        checkpoint.check_vocab(self.vocab, layout.vocabulary(), "Markov chain")
        self.seed = int(rng.integers(2**62))
        self.passage = layout.passage
        n = len(needs.arrived_s)
        #: The visit (the twin's count) of each avatar's latest place.
        self.place_visit = np.full(n, -1, dtype=np.int64)
        self.place = np.full(n, self.chain.start, dtype=np.int64)  # the latest place
        self.before = np.full(n, self.chain.start, dtype=np.int64)  # and the one before
        self.places = np.zeros(n, dtype=np.int64)  # places visited so far

    def decide(self, obs: Observation) -> Decision:
        """Avatars walking to their place walk on; the others draw their next place from
        the chain of their last two places, among the places open to them."""
        next_place = np.where(obs.walking, obs.goal, -1)
        stay = np.where(obs.walking, obs.goal_stay_s, 0.0)
        rows = np.flatnonzero(~obs.walking)
        idx, zone, visits = obs.avatar[rows], obs.zone[rows], obs.visits[rows]
        new = ~self.passage[zone] & (self.place_visit[idx] != visits - 1)  # not asked again
        self.place_visit[idx[new]] = visits[new] - 1
        moved = idx[new]
        self.before[moved], self.place[moved] = self.place[moved], zone[new]
        self.places[moved] += 1
        visit = self.places[idx]
        choices = obs.places[rows]
        probs = self.chain.distribution(self.before[idx], self.place[idx]) * choices
        stuck = probs.sum(axis=1) <= 0
        probs[stuck] = choices[stuck]  # a context it never saw: any open place
        drawn = choose(probs, uniforms(self.seed, idx, visit, _ZONE_DRAW))
        bucket = choose(self.chain.dwell_probs[drawn], uniforms(self.seed, idx, visit, _DWELL_DRAW))
        go = choices.any(axis=1)  # nowhere open: stay on, and ask again
        next_place[rows] = np.where(go, drawn, -1)
        stay[rows] = dwell_seconds(bucket, uniforms(self.seed, idx, visit, _DWELL_DRAW + 1))
        return Decision(next_zone=next_place, dwell_s=stay)
