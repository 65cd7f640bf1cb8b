"""The zone vocabulary of a model: names, kinds, areas and legal moves.

It comes from a venue (the twin passes the venue's zones as plain data: ``llm`` knows no
venues' physics) or, for a real venue's logs without a venue graph, from the log itself:
zones are what the training visitors visited, any place may follow any other (a log shows
some moves, not which are impossible), kinds come from ``zone_kind`` when present, and
areas are estimated from the occupancy seen. Such a vocabulary ends with ``UNKNOWN_ZONE``:
every zone it has not seen (in held-out logs, say) is that one, and so are zones that too
few training visitors went to, so that the model learns how likely a new place is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from llm.zones import FRUIN_BOUNDS, KIND_INDEX, PASSAGE_KINDS, ZONE_KINDS, passage_moves

#: The zone of a log vocabulary that stands for every zone it has not seen.
UNKNOWN_ZONE = "<unseen>"


@dataclass(frozen=True, eq=False)
class ZoneVocab:
    """Zones a model knows, in index order, with what the features need of them."""

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    area: np.ndarray  # (Z,) square metres (estimated when no venue was given)
    legal: np.ndarray  # (Z, Z) bool: legal[u, v] where a visit to v may follow one to u
    source: str = "log"
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {n: i for i, n in enumerate(self.names)})
        object.__setattr__(self, "area", np.asarray(self.area, dtype=np.float64))
        object.__setattr__(self, "legal", np.asarray(self.legal, dtype=bool))
        if len(self.kinds) != len(self.names) or self.area.shape != (len(self.names),):
            raise ValueError("zone vocabulary: names, kinds and areas differ in length")
        if self.legal.shape != (len(self.names), len(self.names)):
            raise ValueError("zone vocabulary: legal moves are not a Z x Z matrix")
        for name, kind in zip(self.names, self.kinds, strict=True):
            if kind not in KIND_INDEX:
                raise ValueError(f"zone vocabulary: zone {name!r} has unknown kind {kind!r}")

    def __len__(self) -> int:
        return len(self.names)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ZoneVocab)
            and self.names == other.names
            and self.kinds == other.kinds
            and np.allclose(self.area, other.area)
            and np.array_equal(self.legal, other.legal)
        )

    @property
    def kind_ids(self) -> np.ndarray:
        return np.array([KIND_INDEX[k] for k in self.kinds], dtype=np.int64)

    @property
    def unknown(self) -> int | None:
        """Index of ``UNKNOWN_ZONE`` (None in a venue's vocabulary: every zone is known)."""
        return self.index.get(UNKNOWN_ZONE)

    def lookup(self, names: Sequence[str] | pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """(n,) indices of zone names and (n,) whether each is known by name; unknown ones
        get ``unknown`` (or -1 in a venue's vocabulary)."""
        ids = pd.Series(np.asarray(names, dtype=object)).map(self.index)
        known = ids.notna().to_numpy()
        fallback = -1 if self.unknown is None else self.unknown
        return ids.fillna(fallback).to_numpy(np.int64), known

    @property
    def passage(self) -> np.ndarray:
        """(Z,) bool: zones walked through, not visited (``llm.zones.PASSAGE_KINDS``)."""
        return np.array([k in PASSAGE_KINDS for k in self.kinds], dtype=bool)

    @property
    def destinations(self) -> np.ndarray:
        """(Z, Z) bool: the places a visit to u may be followed by (the model's choices):
        a legal move, or a walk through passages only."""
        return passage_moves(self.legal, self.passage)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_venue(
        cls,
        names: Sequence[str],
        kinds: Sequence[str],
        area: Sequence[float],
        adjacency: np.ndarray,
        source: str = "venue",
    ) -> ZoneVocab:
        return cls(tuple(names), tuple(kinds), np.asarray(area), np.asarray(adjacency), source)

    @classmethod
    def from_log(cls, frame: pd.DataFrame, min_visitors: int = 2) -> ZoneVocab:
        """Zones, kinds and areas as a read log shows them (``frame`` has columns
        ``trajectory``, ``visitor``, ``zone``, ``occupancy`` and optionally ``zone_kind``):
        the zones at least ``min_visitors`` visitors went to, then ``UNKNOWN_ZONE``. Any
        zone may follow any other (a zone itself only after leaving it: consecutive rows
        at one zone are one visit), and anything may follow ``UNKNOWN_ZONE``."""
        visitors = frame.groupby("zone")["visitor"].nunique()
        names = tuple(sorted(z for z, n in visitors.items() if n >= min_visitors))
        names = (*names, UNKNOWN_ZONE)
        kinds = (*_kinds_from_log(frame, names[:-1]), "hall")
        peak = frame.groupby("zone")["occupancy"].quantile(0.95).reindex(names).to_numpy(copy=True)
        peak[-1] = np.nanmedian(peak[:-1]) if len(names) > 1 else 1.0
        # The busiest moments (95th percentile) count as the edge of level D/E.
        area = np.maximum(np.nan_to_num(peak, nan=1.0) / FRUIN_BOUNDS[3], 1.0)
        legal = ~np.eye(len(names), dtype=bool)
        legal[-1, -1] = True  # two unseen zones in a row
        return cls(names, kinds, area, legal, "log")

    # ------------------------------------------------------------------ json
    def to_json(self) -> dict:
        return {
            "names": list(self.names),
            "kinds": list(self.kinds),
            "area": [float(a) for a in self.area],
            "legal": [np.flatnonzero(row).tolist() for row in self.legal],
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: dict) -> ZoneVocab:
        n = len(data["names"])
        legal = np.zeros((n, n), dtype=bool)
        for u, targets in enumerate(data["legal"]):
            legal[u, targets] = True
        return cls(
            tuple(data["names"]),
            tuple(data["kinds"]),
            np.asarray(data["area"]),
            legal,
            data.get("source", "log"),
        )

    def dumps(self) -> str:
        return json.dumps(self.to_json())


def _kinds_from_log(frame: pd.DataFrame, names: tuple[str, ...]) -> tuple[str, ...]:
    """Each zone's kind: the log's ``zone_kind`` when present; else entrances are where
    trajectories start, exits where they end, and everything else a hall."""
    if "zone_kind" in frame and frame["zone_kind"].notna().all():
        kinds = frame.groupby("zone")["zone_kind"].agg(lambda s: s.mode().iloc[0])
        return tuple(str(kinds[n]) for n in names)
    first = set(frame.groupby("trajectory")["zone"].first())
    last = set(frame.groupby("trajectory")["zone"].last())
    return tuple(
        "entrance"
        if n in first and n not in last
        else "exit"
        if n in last and n not in first
        else "hall"
        for n in names
    )


__all__ = ["ZONE_KINDS", "ZoneVocab"]
