"""Model inputs computed from visits: the one place that turns a visit into features.

The twin (live) and the log reader (training) both call these functions, so an avatar sees
at decision time exactly what the model saw when it was trained.
"""

from __future__ import annotations

import numpy as np

#: Every kind of zone a venue may have, in vocabulary order.
ZONE_KINDS: tuple[str, ...] = (
    "entrance",
    "exit",
    "hall",
    "corridor",
    "stage",
    "booth",
    "bar",
    "restroom",
    "lounge",
    "shop",
)
KIND_INDEX: dict[str, int] = {kind: i for i, kind in enumerate(ZONE_KINDS)}

#: Upper density bounds (persons per square metre) of Fruin levels of service A..E;
#: above the last bound is level F.
FRUIN_BOUNDS: tuple[float, ...] = (0.31, 0.43, 0.72, 1.08, 2.17)
FRUIN_LABELS: tuple[str, ...] = ("A", "B", "C", "D", "E", "F")


def crowd_level(density: np.ndarray | float) -> np.ndarray:
    """Fruin level of service as an integer 0 (A) .. 5 (F) from persons per square metre."""
    return np.searchsorted(np.asarray(FRUIN_BOUNDS), np.asarray(density), side="left").astype(
        np.int8
    )
