"""The baseline policy: an order-2 Markov chain of zones fitted on visit logs.

It is what a modeller would fit without a sequence model: the next zone depends on the
current and the previous zone only (smoothed towards order 1 and popularity, restricted
to legal moves), and the dwell on the zone alone. Draws are batch-independent, as for the
GPT.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from agents.needs import Needs
from agents.policy import Decision, Layout, Observation
from agents.sampling import choose, dwell_seconds, uniforms
from llm import checkpoint
from llm.data import check_zones, encode, read_logs
from llm.evaluate import MarkovBaseline
from llm.vocab import ZoneVocab

_ZONE_DRAW, _DWELL_DRAW = 11, 12


class MarkovPolicy:
    """Avatars that move as an order-``order`` Markov chain fitted on logs."""

    name = "markov"
    dwell_from_entry = True  # dwell learnt from logs: the whole stay, queues included

    def __init__(self, chain: MarkovBaseline, vocab: ZoneVocab) -> None:
        self.chain, self.vocab = chain, vocab

    @classmethod
    def from_logs(
        cls, logs: Sequence[str | os.PathLike[str]], vocab: ZoneVocab, order: int = 2
    ) -> MarkovPolicy:
        """Fit the chain on every trajectory of ``logs`` (zones must be the vocabulary's)."""
        frame = read_logs(logs)
        check_zones(frame, vocab, ", ".join(map(str, logs)), vocab.source)
        return cls(MarkovBaseline(encode(frame, vocab), vocab, order=order), vocab)

    def bind(self, layout: Layout, needs: Needs, rng: np.random.Generator) -> None:
        checkpoint.check_vocab(self.vocab, layout.vocabulary(), "Markov chain")
        self.seed = int(rng.integers(2**62))

    def decide(self, obs: Observation) -> Decision:
        visit = obs.visits - 1
        previous = obs.history[:, -2] if obs.history.shape[1] >= 2 else np.full(len(obs), -1)
        previous = np.where(previous >= 0, previous, self.chain.start)
        probs = self.chain.distribution(previous, obs.zone) * obs.legal
        stuck = probs.sum(axis=1) <= 0
        probs[stuck] = obs.legal[stuck]  # a context it never saw: any legal move
        next_zone = choose(probs, uniforms(self.seed, obs.avatar, visit, _ZONE_DRAW))
        next_zone = np.where(obs.legal.any(axis=1), next_zone, obs.zone)
        bucket = choose(
            self.chain.dwell_probs[next_zone], uniforms(self.seed, obs.avatar, visit, _DWELL_DRAW)
        )
        dwell = dwell_seconds(bucket, uniforms(self.seed, obs.avatar, visit, _DWELL_DRAW + 1))
        return Decision(next_zone=next_zone.astype(np.int64), dwell_s=dwell)
