"""What a zone is, to every layer: its kinds, passages, Fruin levels and queue wait.

A neutral vocabulary: the venue (``twin.venue``) is built from these kinds and the twin
measures crowds in these levels and queues as a wait sign shows them; the model
(``llm``) embeds the kinds and sees the levels and waits. Defined here, below both, once;
nothing here knows a venue or a model.
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
#: Kinds of zone that visitors walk through on the way to somewhere, not go to: they are
#: not visits of their own. A trajectory is the places visited (every other kind), and the
#: model's next "zone" is the next place, reached through passages (``passage_moves``).
PASSAGE_KINDS: frozenset[str] = frozenset({"corridor"})

#: Upper density bounds (persons per square metre) of Fruin levels of service A..E;
#: above the last bound is level F.
FRUIN_BOUNDS: tuple[float, ...] = (0.31, 0.43, 0.72, 1.08, 2.17)
FRUIN_LABELS: tuple[str, ...] = ("A", "B", "C", "D", "E", "F")
#: The first crowded level: Fruin E (and F), where crowd risk is counted, satisfaction
#: suffers and a scripted visitor avoids a place.
CROWDED_LEVEL = 4


def crowd_level(density: np.ndarray | float) -> np.ndarray:
    """Fruin level of service as an integer 0 (A) .. 5 (F) from persons per square metre."""
    return np.searchsorted(np.asarray(FRUIN_BOUNDS), np.asarray(density), side="left").astype(
        np.int8
    )


def passage_moves(legal: np.ndarray, passage: np.ndarray) -> np.ndarray:
    """(Z, Z) bool: the places (zones not passages) that can be reached from each zone by
    one legal move, or by walking through passages only. ``legal`` (Z, Z) are single moves,
    ``passage`` (Z,) marks the passages. These are the choices of a visitor's next visit."""
    reach = np.asarray(legal, dtype=bool).copy()
    for k in np.flatnonzero(passage):  # Warshall's closure, through passages only
        reach |= reach[:, [k]] & reach[[k], :]
    return reach & ~np.asarray(passage, dtype=bool)[None, :]


def queue_wait(last_service_start_s: np.ndarray, now_s: np.ndarray | float) -> np.ndarray:
    """Seconds a visitor joining each zone's queue now would wait, as a venue's wait sign
    shows it: until the last visitor who joined is served (0 where nobody waits). From a log
    that is the latest ``timestamp + wait_s`` of the zone's visits begun by ``now_s``; live,
    the latest start of service the zone has handed out."""
    return np.maximum(np.asarray(last_service_start_s, dtype=np.float64) - now_s, 0.0)
