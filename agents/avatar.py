"""The ``Avatar``: a Mesa agent that is a view onto one row of the twin's crowd arrays.

The twin advances all avatars together as arrays; an ``Avatar`` reads its own row, so
``model.agents`` works as Mesa users expect (select, group, inspect). With Mesa's plain
agent-by-agent stepping (``VenueModel(stepping="agents")``) each avatar's ``step()``
handles its own events through the same code, one Python call per avatar.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import mesa
import numpy as np


class Phase(IntEnum):
    """Where an avatar is in its visit: the one definition of the phases that the crowd
    arrays hold (``twin.crowd``) and that ``Avatar.phase`` names."""

    PENDING = 0  # not arrived yet
    IN_ZONE = 1  # in a zone: queueing, being served or dwelling
    BLOCKED = 2  # at the door of a full zone
    LEAVING = 3  # waiting at a door to leave
    WALKING = 4  # on a passage between two zones
    LEFT = 5  # gone


PHASES: tuple[str, ...] = tuple(p.name.lower() for p in Phase)


class Avatar(mesa.Agent):
    """One visitor. ``index`` is its row in the crowd arrays and its ``avatar_id`` in logs."""

    def __init__(self, model: Any, index: int) -> None:
        super().__init__(model)
        self.index = int(index)

    @property
    def crowd(self) -> Any:
        return self.model.crowd

    @property
    def zone(self) -> str | None:
        """Name of the zone the avatar is in (None while walking or gone)."""
        z = self.crowd.zone[self.index]
        return self.model.venue.zones[z] if z >= 0 else None

    @property
    def phase(self) -> str:
        return PHASES[self.crowd.phase[self.index]]

    @property
    def satisfaction(self) -> float:
        return float(self.crowd.satisfaction.score[self.index])

    @property
    def waited_s(self) -> float:
        return float(self.crowd.waited_s[self.index])

    def step(self) -> None:
        """Handle this avatar's events due in the current step (agent-by-agent stepping)."""
        self.model.process_avatars(np.array([self.index]))
