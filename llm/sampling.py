"""The one sampler: a column per row of a weight table, by inverse CDF at given uniforms.

Every draw from a discrete distribution in the project goes through ``choose``: the live
policies' next places and stays (``agents``), the scripted visitors' weighted picks and
the Markov baseline's generated trajectories (``llm.markov``).
"""

from __future__ import annotations

import numpy as np


def choose(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """(B,) one column per row of ``weights`` (B, K) (need not sum to 1), with probability
    proportional to the row's weights, by inverse CDF at the uniforms ``u`` (B,) in
    [0, 1). A row of zeros gets column K - 1."""
    cumulative = np.cumsum(weights, axis=1)
    picked = (cumulative <= (u * cumulative[:, -1])[:, None]).sum(axis=1)
    return np.minimum(picked, weights.shape[1] - 1)
