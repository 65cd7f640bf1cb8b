"""The levers an optimisation may set: the scenario's ``[search]`` table.

The search space is declared in the scenario file's ``[search]`` table (or defaults to one
for the venue), every key a range ``[low, high]``::

    [search]
    staff_budget = 140                       # servers in the whole venue, open gates' included
    servers = { cafe_west = [6, 40], cafe_east = [6, 40] }
    open_gates = [1, 3]                      # how many gates open, in gate_order
    gate_order = ["gate_north", "gate_south", "gate_east"]   # default: the venue's order
    capacity_caps = { main_stage = [800, 2000] }
    show_start_h = { "1" = [2.0, 2.75] }     # show 1 of the programme (it keeps its length)
    arrival_window_h = [1.0, 3.0]            # arrivals spread over this many hours ...
    arrival_profile = [0.0, 1.0]             # ... each slice's relative rate in this range

``SearchSpace`` reads and checks it (which zone takes which lever is the scenario's one
rule, ``twin.scenario.lever_zones``), draws a trial's levers from an Optuna trial and
applies them to a scenario. The study that runs the trials is ``twin.optimize``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import optuna

from twin.scenario import MAX_LEVER_SERVERS, Levers, Scenario, ScenarioError, Show, lever_zones
from twin.venue import LIMITS, STAFFED_KINDS, Venue

MAX_SERVERS = MAX_LEVER_SERVERS
MAX_CAPACITY = int(LIMITS["capacity"][1])

SEARCH_KEYS: tuple[str, ...] = (
    "staff_budget",
    "servers",
    "open_gates",
    "gate_order",
    "capacity_caps",
    "show_start_h",
    "arrival_window_h",
    "arrival_profile",
)


class SearchError(ScenarioError):
    """A search space that cannot be searched; the message names the file and the key."""


Range = tuple[float, float]


# ============================================================================ search space
@dataclass(frozen=True)
class SearchSpace:
    """The levers a study may set, each over an inclusive range, and the staff budget."""

    servers: dict[str, tuple[int, int]] = field(default_factory=dict)
    open_gates: tuple[int, int] | None = None
    gate_order: tuple[str, ...] = ()
    capacity_caps: dict[str, tuple[int, int]] = field(default_factory=dict)
    show_start_h: dict[int, Range] = field(default_factory=dict)
    arrival_window_h: Range | None = None
    arrival_profile: Range | None = None
    staff_budget: int | None = None

    # ------------------------------------------------------------------ building
    @classmethod
    def of(cls, scenario: Scenario, source: str = "<memory>") -> SearchSpace:
        """The scenario's ``[search]`` table, checked, or the venue's default space."""
        venue = scenario.load_venue()
        scenario.check(venue, source)
        if scenario.search is None:
            return cls.default(scenario, venue)
        return cls.from_table(scenario.search, scenario, venue, source)

    @classmethod
    def default(cls, scenario: Scenario, venue: Venue) -> SearchSpace:
        """Move the staff of bars, restrooms and shops between half and one and a half
        times today's, open one gate or more, with today's staff as the budget."""
        today = scenario.levers.servers_in(venue)
        servers = {
            zone: (max(1, math.ceil(int(n) / 2)), max(2, math.ceil(1.5 * int(n))))
            for zone, kind, n in zip(venue.zones, venue.kinds, today, strict=True)
            if kind in STAFFED_KINDS and n > 0
        }
        gates = tuple(venue.zones[i] for i in venue.entrances)
        space = cls(
            servers=servers,
            open_gates=(1, len(gates)) if len(gates) > 1 else None,
            gate_order=gates,
            staff_budget=staff_of(scenario, venue),
        )
        space.check(scenario, venue, "default search space")
        return space

    @classmethod
    def from_table(
        cls, table: dict[str, Any], scenario: Scenario, venue: Venue, source: str
    ) -> SearchSpace:
        for key in table:
            if key not in SEARCH_KEYS:
                raise SearchError(
                    f"{source}: unknown lever 'search.{key}' (known: {', '.join(SEARCH_KEYS)})"
                )

        def whole_range(value: Any, key: str) -> tuple[int, int]:
            low, high = _range(value, key, source)
            if low != int(low) or high != int(high):
                raise SearchError(f"{source}: search.{key} must be whole numbers, got {value!r}")
            return int(low), int(high)

        def table_of(key: str) -> dict[str, Any]:
            value = table.get(key, {})
            if not isinstance(value, dict):
                raise SearchError(f"{source}: search.{key} must be a table of ranges")
            return value

        budget = table.get("staff_budget")
        if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool)):
            raise SearchError(f"{source}: search.staff_budget must be a whole number")
        order = table.get("gate_order")
        if order is not None and not (
            isinstance(order, list) and all(isinstance(g, str) for g in order)
        ):
            raise SearchError(f"{source}: search.gate_order must be a list of entrances")
        shows = {}
        for key, value in table_of("show_start_h").items():
            if not str(key).isdigit():
                raise SearchError(
                    f"{source}: search.show_start_h.{key}: name a show by its place in the "
                    "programme (0, 1, ...)"
                )
            shows[int(key)] = _range(value, f"show_start_h.{key}", source)
        space = cls(
            servers={z: whole_range(v, f"servers.{z}") for z, v in table_of("servers").items()},
            open_gates=(
                whole_range(table["open_gates"], "open_gates") if "open_gates" in table else None
            ),
            gate_order=tuple(order) if order else tuple(venue.zones[i] for i in venue.entrances),
            capacity_caps={
                z: whole_range(v, f"capacity_caps.{z}")
                for z, v in table_of("capacity_caps").items()
            },
            show_start_h=shows,
            arrival_window_h=(
                _range(table["arrival_window_h"], "arrival_window_h", source)
                if "arrival_window_h" in table
                else None
            ),
            arrival_profile=(
                _range(table["arrival_profile"], "arrival_profile", source)
                if "arrival_profile" in table
                else None
            ),
            staff_budget=budget,
        )
        space.check(scenario, venue, source)
        return space

    def check(self, scenario: Scenario, venue: Venue, source: str) -> None:
        """Refuse levers the venue lacks, ranges out of bounds, a budget below the least
        staff the space allows, and a space with nothing to search."""
        named = {"servers": self.servers, "gate_order": self.gate_order}
        named |= {"capacity_caps": self.capacity_caps}
        lever_zones(named, venue, f"{source}: search", SearchError)
        for zone, (low, high) in self.servers.items():
            if low < 1 or high > MAX_SERVERS:
                raise SearchError(
                    f"{source}: search.servers.{zone} must lie in 1..{MAX_SERVERS} servers, "
                    f"got [{low}, {high}]"
                )
        if self.open_gates is not None:
            low, high = self.open_gates
            if low < 1 or high > len(self.gate_order):
                raise SearchError(
                    f"{source}: search.open_gates must lie in 1..{len(self.gate_order)} "
                    f"(the gates of gate_order), got [{low}, {high}]"
                )
        for zone, (low, high) in self.capacity_caps.items():
            if low < 1 or high > MAX_CAPACITY:
                raise SearchError(
                    f"{source}: search.capacity_caps.{zone} must lie in 1..{MAX_CAPACITY:,} "
                    f"persons, got [{low}, {high}]"
                )
        programme = scenario.programme(venue)
        for index, (low, high) in self.show_start_h.items():
            if index >= len(programme):
                raise SearchError(
                    f"{source}: search.show_start_h.{index}: the programme has "
                    f"{len(programme)} shows (0..{len(programme) - 1})"
                )
            length = programme[index].end_h - programme[index].start_h
            if low < 0 or high + length > scenario.hours:
                raise SearchError(
                    f"{source}: search.show_start_h.{index}: a {length:g} h show must start "
                    f"in [0, {scenario.hours - length:g}], got [{low:g}, {high:g}]"
                )
        if self.arrival_window_h is not None:
            low, high = self.arrival_window_h
            if low <= 0 or high > scenario.hours:
                raise SearchError(
                    f"{source}: search.arrival_window_h must lie in (0, {scenario.hours:g}]"
                )
        if self.arrival_profile is not None:
            low, high = self.arrival_profile
            if low < 0 or high <= 0:
                raise SearchError(f"{source}: search.arrival_profile: rates >= 0, high > 0")
        if not self.names():
            raise SearchError(f"{source}: search: no lever to search")
        if self.staff_budget is not None:
            least = staff_of(self.apply(scenario, self.lowest()), venue)
            if self.staff_budget < least:
                raise SearchError(
                    f"{source}: search.staff_budget {self.staff_budget} is below the least "
                    f"staff the search space allows ({least}: every range at its low end)"
                )

    # ------------------------------------------------------------------ trials
    def names(self) -> list[str]:
        """Optuna parameter names, one per lever (``servers.cafe_west``, ...)."""
        names = [f"servers.{z}" for z in self.servers]
        names += ["open_gates"] if self.open_gates is not None else []
        names += [f"capacity_caps.{z}" for z in self.capacity_caps]
        names += [f"show_start_h.{i}" for i in self.show_start_h]
        names += ["arrival_window_h"] if self.arrival_window_h is not None else []
        names += ["arrival_profile"] if self.arrival_profile is not None else []
        return names

    def suggest(self, trial: optuna.Trial, n_slices: int) -> dict[str, Any]:
        """Draw every lever of the space for ``trial``."""
        params: dict[str, Any] = {}
        for zone, (low, high) in self.servers.items():
            params[f"servers.{zone}"] = trial.suggest_int(f"servers.{zone}", low, high)
        if self.open_gates is not None:
            params["open_gates"] = trial.suggest_int("open_gates", *self.open_gates)
        for zone, (low, high) in self.capacity_caps.items():
            params[f"capacity_caps.{zone}"] = trial.suggest_int(f"capacity_caps.{zone}", low, high)
        for index, (low, high) in self.show_start_h.items():
            name = f"show_start_h.{index}"
            params[name] = trial.suggest_float(name, low, high, step=0.25)
        if self.arrival_window_h is not None:
            low, high = self.arrival_window_h
            params["arrival_window_h"] = trial.suggest_float("arrival_window_h", low, high)
        if self.arrival_profile is not None:
            for k in range(n_slices):
                name = f"arrival_profile.{k}"
                params[name] = trial.suggest_float(name, *self.arrival_profile)
        return params

    def lowest(self) -> dict[str, Any]:
        """The parameters with every range at its low end (the least staff)."""
        params: dict[str, Any] = {f"servers.{z}": lo for z, (lo, _) in self.servers.items()}
        if self.open_gates is not None:
            params["open_gates"] = self.open_gates[0]
        return params

    def apply(self, scenario: Scenario, params: dict[str, Any]) -> Scenario:
        """The scenario with a trial's levers set (levers not in ``params`` stay as they are)."""
        levers = scenario.levers
        servers = dict(levers.servers)
        caps = dict(levers.capacity_caps)
        gates = levers.open_gates
        shows = None
        profile = list(scenario.arrival_profile)
        window = scenario.arrival_window_h
        for name, value in params.items():
            kind, _, key = name.partition(".")
            if kind == "servers":
                servers[key] = int(value)
            elif kind == "capacity_caps":
                caps[key] = int(value)
            elif kind == "open_gates":
                gates = list(self.gate_order[: int(value)])
            elif kind == "show_start_h":
                programme = scenario.programme(scenario.load_venue())
                shows = shows or [Show(**vars(s)) for s in programme]
                show = shows[int(key)]
                length = show.end_h - show.start_h
                show.start_h, show.end_h = float(value), float(value) + length
            elif kind == "arrival_window_h":
                window = float(value)
            elif kind == "arrival_profile":
                profile[int(key)] = float(value)
        if sum(profile) <= 0:
            profile = [1.0] * len(profile)
        return scenario.replace(
            levers=Levers(servers=servers, open_gates=gates, capacity_caps=caps),
            shows=shows if shows is not None else scenario.shows,
            arrival_window_h=window,
            arrival_profile=profile,
        )

    def to_table(self) -> dict[str, Any]:
        """The space as a ``[search]`` table (what ``from_table`` reads)."""
        table: dict[str, Any] = {}
        if self.staff_budget is not None:
            table["staff_budget"] = self.staff_budget
        if self.servers:
            table["servers"] = {z: list(r) for z, r in self.servers.items()}
        if self.open_gates is not None:
            table["open_gates"] = list(self.open_gates)
            table["gate_order"] = list(self.gate_order)
        if self.capacity_caps:
            table["capacity_caps"] = {z: list(r) for z, r in self.capacity_caps.items()}
        if self.show_start_h:
            table["show_start_h"] = {str(i): list(r) for i, r in self.show_start_h.items()}
        if self.arrival_window_h is not None:
            table["arrival_window_h"] = list(self.arrival_window_h)
        if self.arrival_profile is not None:
            table["arrival_profile"] = list(self.arrival_profile)
        return table


def _range(value: Any, key: str, source: str) -> Range:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise SearchError(f"{source}: search.{key} must be a range [low, high], got {value!r}")
    low, high = value
    if not all(math.isfinite(v) and abs(v) <= 1e9 for v in value):
        raise SearchError(
            f"{source}: search.{key} must be a range of finite numbers within ±1e9, got {value!r}"
        )
    if low > high:
        raise SearchError(f"{source}: search.{key}: empty range [{low}, {high}] (low > high)")
    return float(low), float(high)


def staff_of(scenario: Scenario, venue: Venue) -> int:
    """Servers at work in the scenario: every service zone's, closed gates' excepted."""
    return scenario.levers.staff_in(venue)
