"""The one sampler: reproducible uniforms, draws from weight tables, stays within buckets.

Every random draw of a decision comes from here:

- ``uniforms``: a counter-based hash of (run seed, avatar, visit number, purpose), not a
  shared stream, so the same seed gives the same choices whether avatars decide 1,000 at a
  time or one by one;
- ``choose``: one column per row of a weight table by inverse CDF at given uniforms (the
  live policies' next places and stays, the scripted visitors' weighted picks, the Markov
  baseline's generated trajectories in ``llm.markov``);
- ``dwell_seconds``: a stay in seconds inside a dwell bucket of ``llm.features``.
"""

from __future__ import annotations

import numpy as np

from llm.features import DWELL_EDGES_S


def choose(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """(B,) one column per row of ``weights`` (B, K) (need not sum to 1), with probability
    proportional to the row's weights, by inverse CDF at the uniforms ``u`` (B,) in
    [0, 1). A row of zeros gets column K - 1."""
    cumulative = np.cumsum(weights, axis=1)
    picked = (cumulative <= (u * cumulative[:, -1])[:, None]).sum(axis=1)
    return np.minimum(picked, weights.shape[1] - 1)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def uniforms(seed: int, avatar: np.ndarray, visit: np.ndarray, purpose: int) -> np.ndarray:
    """Uniform numbers in [0, 1), one per (avatar, visit), fixed by ``seed`` and ``purpose``
    (SplitMix64 of the combined key)."""
    with np.errstate(over="ignore"):
        key = np.uint64(seed % 2**64) ^ (np.asarray(avatar, dtype=np.uint64) * _GOLDEN)
        key = key ^ (np.asarray(visit, dtype=np.uint64) * _MIX_1 + np.uint64(purpose))
        z = key + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX_1
        z = (z ^ (z >> np.uint64(27))) * _MIX_2
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


_EDGES = np.asarray(DWELL_EDGES_S, dtype=np.float64)
#: Bounds of every dwell bucket in seconds (the open last one taken to end at twice its
#: lower bound), and their logarithms.
_LOWER = np.r_[1.0, _EDGES]
_UPPER = np.r_[_EDGES, 2 * _EDGES[-1]]
_LOG_LOWER, _LOG_SPAN = np.log(_LOWER), np.log(_UPPER) - np.log(_LOWER)


def dwell_bounds(bucket: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds in seconds of each dwell bucket (the open last bucket is
    taken to end at twice its lower bound; buckets beyond it count as the last)."""
    bucket = np.clip(bucket, 0, len(_LOWER) - 1)
    return _LOWER[bucket], _UPPER[bucket]


def dwell_seconds(bucket: np.ndarray, u: np.ndarray) -> np.ndarray:
    """A dwell in seconds inside each dwell bucket, log-uniform between its bounds."""
    bucket = np.clip(bucket, 0, len(_LOWER) - 1)
    return np.exp(_LOG_LOWER[bucket] + u * _LOG_SPAN[bucket])
