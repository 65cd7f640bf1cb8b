"""When visitors arrive: a piecewise-constant arrival profile over the arrival window."""

from __future__ import annotations

import numpy as np


def draw_arrivals(
    n_avatars: int, window_s: float, profile: list[float], rng: np.random.Generator
) -> np.ndarray:
    """Sorted arrival times (seconds after opening) of ``n_avatars`` visitors.

    The window is cut into ``len(profile)`` equal slices; each visitor picks a slice with
    probability proportional to its rate and a uniform time inside it, so arrivals form a
    Poisson process (conditioned on the total) with the profile's rates.
    """
    rates = np.asarray(profile, dtype=np.float64)
    width = window_s / len(rates)
    slices = rng.choice(len(rates), size=n_avatars, p=rates / rates.sum())
    times = (slices + rng.random(n_avatars)) * width
    return np.sort(times)
