"""Which decisions of a GPT avatar can be explained, and the model step to ask about.

The explanations themselves come from the twin (``VenueModel.explain(avatar, step=...)``);
this only lists an avatar's decisions from its visit log (a decision ends every visit but
the last) and keeps those the twin confirms were the GPT's (the closing clearance sends
everybody out whatever the policy, so a visit may end without a decision).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from twin import VenueModel


@dataclass(frozen=True)
class Decision:
    """One decision of an avatar: the visit that ended, where it went next, and when."""

    visit: int  # index of the visit that ended (the avatar's visits, from 0)
    zone: str  # where it was
    next_zone: str  # where it went
    time_s: float  # when it decided, seconds after opening
    step: int  # the model step to pass to ``model.explain(avatar, step=step)``


def gpt_avatars(visits: pd.DataFrame) -> list[int]:
    """Avatars who decided at least once: those with a visit after their first."""
    counts = visits.groupby("avatar_id").size()
    return [int(a) for a in counts.index[counts.to_numpy() >= 2]]


def decisions(model: VenueModel, visits: pd.DataFrame, avatar: int) -> list[Decision]:
    """The avatar's decisions that ``model.explain`` can explain, oldest first."""
    rows = visits[visits["avatar_id"] == avatar].sort_values("timestamp")
    if len(rows) < 2:
        return []
    opening = pd.Timestamp(model.scenario.opening_time.replace(tzinfo=None))
    ended = (rows["timestamp"] - opening).dt.total_seconds().to_numpy() + rows["dwell_s"].to_numpy()
    zones = rows["zone"].astype(str).tolist()
    step_s = model.scenario.step_s
    found: list[Decision] = []
    for visit in range(len(rows) - 1):
        step = int(ended[visit] // step_s)
        for candidate in (step, step + 1):  # decision times are kept in float32
            try:
                why = model.explain(avatar, step=candidate)
            except ValueError:
                continue
            if why.visit == visit:
                found.append(Decision(visit, zones[visit], zones[visit + 1], why.time_s, candidate))
                break
    return found
