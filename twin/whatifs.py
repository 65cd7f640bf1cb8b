"""The what-ifs every twin must answer like its reference (``venuetwin validate``).

Each is a change an operator makes or meets, defined on any venue from its own zones and
programme, so that no one tunes to one venue's cells: staff halved at bars and restrooms,
a gate closed, the biggest stage capped at half, arrivals compressed into half their
window, a crowd of 130%, the headline show an hour later, the busiest-staffed service zone
closed, the bars' staff doubled. A what-if that a venue cannot have (one gate, no stage,
no show) is left out for it.

``WHATIFS`` names them (the keys ``--interventions`` takes); ``interventions(venue,
scenario)`` gives those a venue has, each as the levers and scenario changes to put on the
base scenario (``Intervention.apply``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.scenario import Levers, Scenario, ScenarioError
from twin.venue import Venue

#: The what-ifs, by key, in the order a report lists them.
WHATIFS: dict[str, str] = {
    "staff_halved": "bar and restroom staff halved",
    "gate_closed": "a gate closed",
    "stage_capped": "the biggest stage capped at half",
    "arrivals_compressed": "arrivals within half their window",
    "crowd_130": "a crowd of 130%",
    "headline_later": "the headline show an hour later",
    "service_closed": "a service zone closed",
    "bar_staff_doubled": "bar staff doubled",
}
#: Shows keep this long (hours) before closing: a show moved later makes the day longer.
SHOW_CLOSING_H = 0.75
#: Kinds whose zones may be closed by ``service_closed`` (restrooms and gates stay open).
CLOSABLE_KINDS = ("bar", "shop")


@dataclass(frozen=True)
class Intervention:
    """One what-if on a venue: its key (``WHATIFS``), its name in a report, and what it
    changes: levers put on the scenario's own, and other scenario fields replaced."""

    key: str
    name: str
    levers: Levers = field(default_factory=Levers)
    changes: dict[str, Any] = field(default_factory=dict)

    def apply(self, base: Scenario) -> Scenario:
        """``base`` with this what-if: its levers on top of the base's, its changes."""
        levers = Levers(
            servers={**base.levers.servers, **self.levers.servers},
            open_gates=self.levers.open_gates
            if self.levers.open_gates is not None
            else base.levers.open_gates,
            capacity_caps={**base.levers.capacity_caps, **self.levers.capacity_caps},
        )
        return base.replace(levers=levers, **self.changes)


def select(keys: Sequence[str] | None) -> list[str]:
    """The what-ifs asked for (None: all), checked: an unknown key raises ``ScenarioError``
    naming the known ones."""
    if keys is None:
        return list(WHATIFS)
    unknown = [k for k in keys if k not in WHATIFS]
    if unknown:
        raise ScenarioError(
            f"--interventions: unknown {', '.join(unknown)} (known: {', '.join(WHATIFS)})"
        )
    return [k for k in WHATIFS if k in keys]


def interventions(
    venue: Venue, base: Scenario, keys: Sequence[str] | None = None
) -> list[Intervention]:
    """The what-ifs ``keys`` (default: all) that ``venue`` can have, on scenario ``base``."""
    out = []
    for key in select(keys):
        made = _MAKERS[key](venue, base)
        if made is not None:
            out.append(made)
    return out


def _staff_halved(venue: Venue, base: Scenario) -> Intervention | None:
    servers = base.levers.servers_in(venue)
    staffed = [
        z for z, kind in enumerate(venue.kinds) if kind in ("bar", "restroom") and servers[z] > 0
    ]
    if not staffed:
        return None
    halved = {venue.zones[z]: max(1, int(servers[z]) // 2) for z in staffed}
    return Intervention("staff_halved", WHATIFS["staff_halved"], Levers(servers=halved))


def _gate_closed(venue: Venue, base: Scenario) -> Intervention | None:
    gates = [venue.zones[g] for g in base.levers.gates_in(venue)]
    if len(gates) < 2:
        return None
    return Intervention("gate_closed", f"gate {gates[0]} closed", Levers(open_gates=gates[1:]))


def _stage_capped(venue: Venue, base: Scenario) -> Intervention | None:
    stages = venue.of_kind("stage")
    if not len(stages):
        return None
    capacity = base.levers.capacity_in(venue)
    big = int(stages[np.argmax(capacity[stages])])
    cap = max(1, int(capacity[big]) // 2)
    return Intervention(
        "stage_capped",
        f"{venue.zones[big]} capped at half ({cap})",
        Levers(capacity_caps={venue.zones[big]: cap}),
    )


def _arrivals_compressed(venue: Venue, base: Scenario) -> Intervention | None:
    window = base.arrival_window_s / 3600.0
    return Intervention(
        "arrivals_compressed",
        f"arrivals within {window / 2:g} h (not {window:g} h)",
        changes={"arrival_window_h": window / 2},
    )


def _crowd_130(venue: Venue, base: Scenario) -> Intervention | None:
    avatars = max(1, round(base.avatars * 1.3))
    return Intervention(
        "crowd_130",
        f"a crowd of 130% ({avatars:,})",
        changes={"avatars": avatars, "arrival_window_h": base.arrival_window_s / 3600.0},
    )


def _headline_later(venue: Venue, base: Scenario) -> Intervention | None:
    shows = base.programme(venue)
    if not shows:
        return None
    headline = next((s for s in shows if s.headline), None)
    if headline is None:  # no headliner named: the last show on the biggest stage
        biggest = max(shows, key=lambda s: venue.capacity[venue.index[s.stage]])
        headline = max((s for s in shows if s.stage == biggest.stage), key=lambda s: s.start_h)
    moved = [
        dataclasses.replace(s, start_h=s.start_h + 1.0, end_h=s.end_h + 1.0)
        if s.stage == headline.stage and s.start_h >= headline.start_h
        else s
        for s in shows
    ]
    hours = max(base.hours, max(s.end_h for s in moved) + SHOW_CLOSING_H)
    when = _clock(base, headline.start_h + 1.0)
    return Intervention(
        "headline_later",
        f"{headline.stage}'s headline an hour later ({when})",
        changes={
            "shows": moved,
            "hours": round(hours, 4),
            "arrival_window_h": base.arrival_window_s / 3600.0,
        },
    )


def _service_closed(venue: Venue, base: Scenario) -> Intervention | None:
    servers = base.levers.servers_in(venue)
    closable = [
        z for z, kind in enumerate(venue.kinds) if kind in CLOSABLE_KINDS and servers[z] > 0
    ]
    if len(closable) < 2:  # the only one of its kind: nowhere else to go
        return None
    # The one that serves most (the first by name among equals): the biggest change.
    zone = min(closable, key=lambda z: (-int(servers[z]), venue.zones[z]))
    name = venue.zones[zone]
    return Intervention("service_closed", f"{name} closed", Levers(capacity_caps={name: 0}))


def _bar_staff_doubled(venue: Venue, base: Scenario) -> Intervention | None:
    servers = base.levers.servers_in(venue)
    bars = [z for z in venue.of_kind("bar") if servers[z] > 0]
    if not bars:
        return None
    doubled = {venue.zones[z]: min(1000, 2 * int(servers[z])) for z in bars}
    return Intervention("bar_staff_doubled", WHATIFS["bar_staff_doubled"], Levers(servers=doubled))


def _clock(base: Scenario, hours_after_opening: float) -> str:
    opening = base.opening_time
    minutes = int(round(opening.hour * 60 + opening.minute + hours_after_opening * 60))
    return f"{minutes // 60 % 24:02d}:{minutes % 60:02d}"


_MAKERS = {
    "staff_halved": _staff_halved,
    "gate_closed": _gate_closed,
    "stage_capped": _stage_capped,
    "arrivals_compressed": _arrivals_compressed,
    "crowd_130": _crowd_130,
    "headline_later": _headline_later,
    "service_closed": _service_closed,
    "bar_staff_doubled": _bar_staff_doubled,
}
