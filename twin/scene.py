"""The venue's geometry as drawn in 3D, defined once for the dashboard's view
(``dashboards.scene3d``) and the glTF export (``twin.export3d``): each zone's footprint
and each avatar's fixed spot within a footprint."""

from __future__ import annotations

import numpy as np

from twin.venue import Venue


def spot(avatar: np.ndarray) -> np.ndarray:
    """A fixed place for each avatar within a footprint, from its id."""
    h = (avatar.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(11)
    u = (h % np.uint64(1 << 20)).astype(float) / (1 << 20)
    v = ((h >> np.uint64(20)) % np.uint64(1 << 20)).astype(float) / (1 << 20)
    return np.stack([u - 0.5, v - 0.5], axis=1) * 0.8


def footprints(venue: Venue) -> tuple[np.ndarray, np.ndarray]:
    """(Z, 2) centres in metres and (Z,) sides: the square root of each area, scaled down
    (the same factor for all) where footprints would overlap their nearest neighbours."""
    centres = venue.xy.astype(float)
    side = np.sqrt(venue.area.astype(float))
    if len(centres) > 1:
        gaps = np.linalg.norm(centres[:, None] - centres[None], axis=2)
        np.fill_diagonal(gaps, np.inf)
        nearest = gaps.min(axis=1)
        reach = (side[:, None] + side[None]) / 2
        np.fill_diagonal(reach, 0.0)
        overlap = np.where(np.isfinite(gaps) & (gaps > 0), gaps / np.maximum(reach, 1e-9), np.inf)
        factor = min(1.0, 0.9 * float(np.min(overlap))) if np.isfinite(overlap).any() else 1.0
        side = side * max(factor, 0.05)
        side = np.minimum(side, np.where(np.isfinite(nearest), nearest * 0.9, side))
    return centres, side
