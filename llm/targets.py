"""Which visits of encoded trajectories are prediction targets, and what may follow a visit.

Shared by the metrics (``llm.evaluate``) and the count baselines (``llm.markov``).
"""

from __future__ import annotations

import numpy as np

from llm.data import Sequences
from llm.vocab import ZoneVocab


def target_positions(seqs: Sequences) -> np.ndarray:
    """Positions of the visits that have a next visit in their trajectory (the targets)."""
    has_next = np.ones(seqs.n_visits, dtype=bool)
    has_next[seqs.offsets[1:] - 1] = False
    return np.flatnonzero(has_next)


def previous_zones(seqs: Sequences, start: int) -> np.ndarray:
    """(N,) zone of each visit's previous visit, ``start`` at a trajectory's first visit."""
    zone = seqs.features["zone"]
    prev = np.r_[start, zone[:-1]].astype(np.int64)
    prev[seqs.offsets[:-1]] = start
    return prev


def allowed_moves(vocab: ZoneVocab) -> np.ndarray:
    """(Z, Z) the next places a visit may be followed by (``ZoneVocab.destinations``), where
    a zone with none (an exit) may go anywhere."""
    allowed = vocab.destinations
    allowed[~allowed.any(axis=1)] = True
    return allowed


def stop_zones(vocab: ZoneVocab) -> np.ndarray:
    """(Z,) zones where a sampled trajectory ends: exits, and zones with no next place."""
    return (np.asarray(vocab.kinds) == "exit") | ~vocab.destinations.any(axis=1)
