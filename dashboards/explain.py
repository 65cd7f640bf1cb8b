"""Which decisions of a GPT avatar can be explained, and the model step to ask about.

The explanations themselves come from the twin (``VenueModel.explain(avatar, step=...)``);
this pairs the decisions the twin recorded (``VenueModel.decisions``; the closing
clearance sends everybody out whatever the policy, so a visit may end without one) with
the places of the avatar's visit log: GPT avatars decide where a visit to a place ends and
walk through corridors without deciding, so a decision's ``visit`` counts places only.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from twin import VenueModel


@dataclass(frozen=True)
class Decision:
    """One decision of an avatar: the visit that ended, where it went next, and when."""

    visit: int  # index of the visit that ended among the avatar's visits to places, from 0
    zone: str  # the place it was at
    next_zone: str  # the place it went to next
    time_s: float  # when it decided, seconds after opening
    step: int  # the model step to pass to ``model.explain(avatar, step=step)``


def gpt_avatars(visits: pd.DataFrame) -> list[int]:
    """Avatars who decided at least once: those with a visit after their first."""
    counts = visits.groupby("avatar_id").size()
    return [int(a) for a in counts.index[counts.to_numpy() >= 2]]


def decisions(model: VenueModel, visits: pd.DataFrame, avatar: int) -> list[Decision]:
    """The avatar's decisions that ``model.explain`` can explain, oldest first (those the
    twin recorded: ``model.decisions``), each with a step that names it alone."""
    zones = visits[visits["avatar_id"] == avatar].sort_values("timestamp")["zone"]
    passage = model.venue.vocabulary().passage
    zones = [z for z in zones.astype(str) if not passage[model.venue.index[z]]]
    step_s = model.scenario.step_s
    made = [(v, t, int(t // step_s)) for v, t in model.decisions(avatar) if v + 1 < len(zones)]
    later_steps = [step for _, _, step in made[1:]] + [None]
    return [
        Decision(visit, zones[visit], zones[visit + 1], time_s, step)
        for (visit, time_s, step), later in zip(made, later_steps, strict=True)
        if step != later  # a later decision in the same step would be the one explained
    ]
