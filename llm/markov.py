"""Count baselines of visitors' next places: popularity and Markov chains of order 1 and 2.

What a modeller would fit without a sequence model, fitted on training ``Sequences``: the
next place given the last ``order`` places (0: none), smoothed towards the next lower
order (Witten-Bell) and restricted to the places that can follow the current one; the
dwell the most frequent bucket at the place. ``llm.evaluate`` scores the GPT beside them,
``llm.train`` takes order 1 as the model's move prior, and the Markov avatars
(``agents.markov_policy``) walk by order 2. They share ``llm.evaluate.Predictor``'s
``predict`` and ``sample``.
"""

from __future__ import annotations

import numpy as np

from llm.data import Sequences
from llm.features import N_DWELL
from llm.sampling import choose
from llm.targets import allowed_moves, previous_zones, stop_zones, target_positions
from llm.vocab import ZoneVocab


class _CountBaseline:
    """Counts of next zones given the last ``order`` zones (0: none), fitted on training
    sequences; probabilities are smoothed towards the next lower order (Witten-Bell) and
    restricted to the places that can follow the current zone."""

    def __init__(self, train: Sequences, vocab: ZoneVocab, order: int, k: float = 0.1) -> None:
        if order not in (0, 1, 2):
            raise ValueError(f"order must be 0, 1 or 2, got {order}")
        z = len(vocab)
        self.order, self.k, self.n_zones = order, k, z
        self.allowed = allowed_moves(vocab)
        self.stop = stop_zones(vocab)
        self.start = z  # the "previous zone" of a first visit
        zone = train.features["zone"]
        pos = target_positions(train)
        cur, nxt = zone[pos], zone[pos + 1]
        # Order 0: how often each zone is the next one, among the current zone's moves.
        popular = self.allowed * (np.bincount(nxt, minlength=z) + k)[None, :]
        self.table = popular / popular.sum(axis=1, keepdims=True)
        if order >= 1:
            counts = np.zeros((z, z))
            np.add.at(counts, (cur, nxt), 1.0)
            counts *= self.allowed
            alpha = self.weight_of_lower(counts)
            self.table = (counts + alpha[:, None] * self.table) / (counts.sum(axis=1) + alpha)[
                :, None
            ]
        if order == 2:
            prev = previous_zones(train, self.start)[pos]
            self.contexts, inverse = np.unique(prev * z + cur, return_inverse=True)
            self.context_counts = np.zeros((len(self.contexts), z))
            np.add.at(self.context_counts, (inverse.ravel(), nxt), 1.0)
            self.context_counts *= self.allowed[self.contexts % z]
        # Dwell at each zone: the most frequent bucket there (else overall), and its spread.
        dwell = np.zeros((z, N_DWELL))
        np.add.at(dwell, (zone, train.features["dwell"]), 1.0)
        overall = int(np.argmax(dwell.sum(axis=0)))
        self.dwell_mode = np.where(dwell.sum(axis=1) > 0, dwell.argmax(axis=1), overall)
        spread = dwell + 0.01
        self.dwell_probs = spread / spread.sum(axis=1, keepdims=True)

    def weight_of_lower(self, counts: np.ndarray) -> np.ndarray:
        """Witten-Bell: a context's counts are mixed with the next lower order with the
        weight of the number of different next zones seen after it (``k`` if none), so a
        context seen often with few outcomes trusts itself, a sparse one backs off."""
        return np.maximum((counts > 0).sum(axis=1), self.k).astype(np.float64)

    def distribution(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        """(n, Z) probabilities of the next zone after ``prev`` then ``cur``."""
        probs = self.table[cur]
        if self.order < 2:
            return probs
        codes = prev * self.n_zones + cur
        rows = np.searchsorted(self.contexts, codes).clip(max=len(self.contexts) - 1)
        seen = self.contexts[rows] == codes
        counts = np.where(seen[:, None], self.context_counts[rows], 0.0)
        alpha = self.weight_of_lower(counts)
        return (counts + alpha[:, None] * probs) / (counts.sum(axis=1) + alpha)[:, None]

    def predict(self, seqs: Sequences) -> tuple[np.ndarray, np.ndarray]:
        pos = target_positions(seqs)
        probs = self.distribution(previous_zones(seqs, self.start)[pos], seqs.features["zone"][pos])
        with np.errstate(divide="ignore"):
            log_probs = np.log(probs)
        return log_probs, self.dwell_mode[probs.argmax(axis=1)]

    def sample(
        self, seqs: Sequences, which: np.ndarray, max_len: int, seed: int
    ) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        first = seqs.features["zone"][seqs.offsets[np.asarray(which)]]
        paths = [[int(z)] for z in first]
        prev = np.full(len(paths), self.start, dtype=np.int64)
        cur = first.astype(np.int64)
        active = ~self.stop[cur]
        for _ in range(1, max_len):
            if not active.any():
                break
            idx = np.flatnonzero(active)
            nxt = choose(self.distribution(prev[idx], cur[idx]), rng.random(len(idx)))
            for i, z in zip(idx, nxt, strict=True):
                paths[i].append(int(z))
            prev[idx], cur[idx] = cur[idx], nxt
            active[idx] = ~self.stop[nxt]
        return [np.array(p, dtype=np.int64) for p in paths]


class PopularBaseline(_CountBaseline):
    """The next zone is drawn by how often each zone was a next zone in training, among the
    places that can follow the current zone; the dwell is the next zone's most frequent
    bucket."""

    def __init__(self, train: Sequences, vocab: ZoneVocab, k: float = 0.1) -> None:
        super().__init__(train, vocab, order=0, k=k)


class MarkovBaseline(_CountBaseline):
    """P(next zone | last ``order`` zones), smoothed towards order ``order - 1`` (order 1
    towards the popularity), among the places that can follow the current zone. A first
    visit's previous zone is a start marker, so order 2 knows where a trajectory began."""

    def __init__(self, train: Sequences, vocab: ZoneVocab, order: int = 1, k: float = 0.1) -> None:
        if order not in (1, 2):
            raise ValueError(f"a Markov baseline has order 1 or 2, got {order}")
        super().__init__(train, vocab, order=order, k=k)
