"""A scenario: which venue, how many visitors arriving when, which shows, which levers.

A ``Scenario`` is a typed config, built in Python or read from a TOML file::

    name = "friday"
    venue = "expo"            # a built-in venue or a venue JSON file
    avatars = 10000
    hours = 4
    seed = 1
    policy = "gpt"            # gpt | markov | scripted | random
    model = "models/expo/model.safetensors"   # GPT checkpoint (default: the shipped one)
    arrival_window_h = 2.0    # arrivals spread over the first 2 hours ...
    arrival_profile = [3, 3, 2, 1]   # ... with these relative rates in equal slices

    [[shows]]
    stage = "main_stage"
    start_h = 1.0
    end_h = 1.75
    draw = 0.5                # share of visitors who came for it
    headline = false

    [levers]
    open_gates = ["gate_north", "gate_south"]
    servers = { bar_1 = 4 }
    capacity_caps = { main_stage = 800 }

    [search]                  # what ``venuetwin optimize`` may change (see twin.optimize)
    staff_budget = 60
    servers = { bar_1 = [2, 12] }

Unknown keys and out-of-range values are refused with a message naming the file and key;
``check(venue)`` also refuses zones the venue lacks.

Its length: the scenario file's schema, with its one validator of types, ranges and levers
(``Levers.zones_for``), and the default programme.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from llm.fileio import write_text_atomic
from twin.venue import Venue, load_venue

POLICIES: tuple[str, ...] = ("gpt", "markov", "scripted", "random")


#: The most servers a lever may give a zone (a scenario's, or an optimiser's range).
MAX_LEVER_SERVERS = 1000


class ScenarioError(ValueError):
    """A scenario that cannot run; the message names the file and the key."""


@dataclass
class Show:
    """A show on a stage between two times (hours after opening)."""

    stage: str
    start_h: float
    end_h: float
    draw: float = 0.5
    headline: bool = False


@dataclass
class Levers:
    """What an operator can change: staff, gates, capacity caps."""

    servers: dict[str, int] = field(default_factory=dict)  # service zone -> servers
    open_gates: list[str] | None = None  # entrances open (None: all)
    capacity_caps: dict[str, int] = field(default_factory=dict)  # zone -> hard cap

    def servers_in(self, venue: Venue) -> np.ndarray:
        """(Z,) servers of every zone of ``venue`` with these levers."""
        servers = venue.servers.copy()
        for zone, count in self.servers.items():
            servers[venue.index[zone]] = count
        return servers

    def capacity_in(self, venue: Venue) -> np.ndarray:
        """(Z,) hard capacity of every zone of ``venue``, capped by these levers."""
        capacity = venue.capacity.copy()
        for zone, cap in self.capacity_caps.items():
            i = venue.index[zone]
            capacity[i] = min(capacity[i], cap)
        return capacity

    @staticmethod
    def zones_for(lever: str, venue: Venue) -> list[str]:
        """The zones of ``venue`` that ``lever`` may name: ``servers`` the zones that serve,
        ``open_gates`` the entrances, ``capacity_caps`` every zone but entrances and exits.
        The one rule of which zone takes which lever (scenarios, search spaces, forms)."""
        pairs = zip(venue.zones, venue.kinds, venue.is_service, strict=True)
        if lever == "servers":
            return [z for z, _, serves in pairs if serves]
        if lever == "open_gates":
            return [z for z, kind, _ in pairs if kind == "entrance"]
        if lever == "capacity_caps":
            return [z for z, kind, _ in pairs if kind not in ("entrance", "exit")]
        raise ValueError(f"unknown lever {lever!r}")

    @staticmethod
    def zone_problem(lever: str, zone: str, venue: Venue) -> str | None:
        """Why ``lever`` cannot name ``zone`` of ``venue`` (None when it can)."""
        if zone not in venue.index:
            return f"unknown zone {zone!r}"
        if zone in Levers.zones_for(lever, venue):
            return None
        kind = venue.kinds[venue.index[zone]]
        return {
            "servers": f"a {kind} has no servers",
            "open_gates": f"{zone!r} is not an entrance of venue {venue.name!r}",
            "capacity_caps": "entrances and exits are not capped",
        }[lever]

    def gates_in(self, venue: Venue) -> np.ndarray:
        """Zone indices of the entrances of ``venue`` open with these levers."""
        if self.open_gates is None:
            return venue.entrances
        return np.array([venue.index[g] for g in self.open_gates], dtype=np.int64)

    def staff_in(self, venue: Venue) -> int:
        """Servers at work: every service zone's, closed gates' excepted."""
        working = venue.is_service.copy()
        working[venue.entrances] = False
        working[self.gates_in(venue)] = True
        return int(self.servers_in(venue)[working].sum())


@dataclass
class Scenario:
    """Everything one run of the twin needs, apart from the policy's model."""

    name: str = "default"
    venue: str | Venue = "expo"
    avatars: int = 2000
    hours: float = 4.0
    step_s: float = 5.0
    seed: int = 0
    policy: str = "gpt"
    model: str | None = None  # GPT checkpoint (default: the venue's shipped model)
    temperature: float = 1.0  # GPT sampling temperature
    markov_logs: list[str] | None = None  # logs to fit the Markov policy on (default: a
    # scripted run of this scenario)
    opening: str = "2026-06-06T18:00:00"
    arrival_window_h: float | None = None  # None: the first half of the event
    arrival_profile: list[float] = field(default_factory=lambda: [3.0, 3.0, 2.0, 1.0])
    shows: list[Show] | None = None  # None: the venue's default programme
    js: float = 1.3  # door flow, persons per metre per second
    patience_s: float = 120.0  # how long a refused avatar waits before rerouting
    record_every_s: float = 60.0  # zone table resolution
    levers: Levers = field(default_factory=Levers)
    search: dict[str, Any] | None = None  # the optimiser's search space (twin.optimize)

    def __post_init__(self) -> None:
        if isinstance(self.opening, datetime):
            self.opening = self.opening.isoformat()
        for f in dataclasses.fields(self):
            expected = _TYPES.get(("Scenario", f.name))
            value = getattr(self, f.name)
            if f.name == "venue" and isinstance(value, Venue):
                continue
            if f.name in ("arrival_window_h", "model", "markov_logs", "search") and value is None:
                continue
            if expected and not _is_type(value, expected):
                raise ScenarioError(f"<memory>: {f.name} must be {expected}, got {value!r}")
        if isinstance(self.levers, dict):
            self.levers = _build(Levers, self.levers, "levers", "<memory>")
        if self.shows is not None:
            self.shows = [
                s if isinstance(s, Show) else _build(Show, s, f"shows[{i}]", "<memory>")
                for i, s in enumerate(self.shows)
            ]
        _check_ranges(self, "<memory>")

    # ------------------------------------------------------------------ venue
    def load_venue(self) -> Venue:
        return self.venue if isinstance(self.venue, Venue) else load_venue(self.venue)

    @property
    def arrival_window_s(self) -> float:
        """Seconds over which visitors arrive (the first half of the event by default)."""
        hours = self.arrival_window_h if self.arrival_window_h is not None else self.hours / 2
        return hours * 3600.0

    @property
    def opening_time(self) -> datetime:
        return datetime.fromisoformat(self.opening)

    def programme(self, venue: Venue) -> list[Show]:
        """The shows of this run: the scenario's own, or the venue's default programme."""
        return (
            list(self.shows)
            if self.shows is not None
            else default_shows(venue, self.hours, self.avatars)
        )

    def check(self, venue: Venue, source: str = "<memory>") -> None:
        """Refuse shows and levers that name zones the venue lacks or misuse them."""
        kinds = dict(zip(venue.zones, venue.kinds, strict=True))
        for i, show in enumerate(self.shows or []):
            if kinds.get(show.stage) != "stage":
                raise ScenarioError(
                    f"{source}: shows[{i}].stage: {show.stage!r} is not a stage of "
                    f"venue {venue.name!r}"
                )
        levers = self.levers
        named = {"servers": levers.servers, "open_gates": levers.open_gates or []}
        lever_zones(named | {"capacity_caps": levers.capacity_caps}, venue, f"{source}: levers")
        for zone, n in self.levers.servers.items():
            if not isinstance(n, int) or n < 1 or n > MAX_LEVER_SERVERS:
                raise ScenarioError(
                    f"{source}: levers.servers.{zone}: must be 1..{MAX_LEVER_SERVERS}, got {n}"
                )
        if self.levers.open_gates is not None and not self.levers.open_gates:
            raise ScenarioError(f"{source}: levers.open_gates: at least one gate must open")
        for zone, cap in self.levers.capacity_caps.items():
            if not isinstance(cap, int) or cap < 0:
                raise ScenarioError(
                    f"{source}: levers.capacity_caps.{zone}: must be a whole number >= 0 "
                    f"(0: closed), got {cap!r}"
                )

    # ------------------------------------------------------------------ files
    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> Scenario:
        source = str(path)
        try:
            data = tomllib.loads(Path(path).read_text("utf-8"))
        except FileNotFoundError:
            raise ScenarioError(f"{source}: no such scenario file") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ScenarioError(f"{source}: not valid TOML ({exc})") from None
        except OSError as exc:
            raise ScenarioError(
                f"{source}: cannot read the scenario file ({exc.strerror})"
            ) from None
        except RecursionError:
            raise ScenarioError(f"{source}: not a scenario (TOML nested too deeply)") from None
        try:
            return cls.from_dict(data, source)
        except RecursionError:
            raise ScenarioError(f"{source}: not a scenario (nested too deeply)") from None

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<memory>") -> Scenario:
        data = dict(data)
        if isinstance(data.get("opening"), datetime):  # a TOML date-time
            data["opening"] = data["opening"].isoformat()
        if "levers" in data:
            data["levers"] = _build(Levers, data["levers"], "levers", source)
        if "shows" in data:
            if not isinstance(data["shows"], list):
                raise ScenarioError(f"{source}: shows must be a list of [[shows]] tables")
            data["shows"] = [
                _build(Show, s, f"shows[{i}]", source) for i, s in enumerate(data["shows"])
            ]
        scenario = _build(cls, data, "", source)
        _check_ranges(scenario, source)
        return scenario

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if isinstance(self.venue, Venue):
            data["venue"] = self.venue.source
        if data["shows"] is None:
            del data["shows"]
        for optional in ("arrival_window_h", "model", "markov_logs", "search"):
            if data[optional] is None:
                del data[optional]
        if data["levers"]["open_gates"] is None:
            del data["levers"]["open_gates"]
        return data

    def to_toml(self, path: str | os.PathLike[str]) -> Path:
        """Write the scenario as TOML, atomically; ``from_toml`` reads it back equal."""
        write_text_atomic(path, tomli_w.dumps(self.to_dict()))
        return Path(path)

    def replace(self, **changes: Any) -> Scenario:
        return dataclasses.replace(self, **changes)


def lever_zones(
    named: dict[str, Iterable[str]],
    venue: Venue,
    where: str,
    error: type[Exception] = ScenarioError,
) -> None:
    """Refuse a zone that a lever cannot name (``Levers.zone_problem``), for a scenario's
    levers and a search space's ranges alike. ``named``: the zones each key names, the key
    being a lever (``servers``, ``open_gates``, ``capacity_caps``) or ``gate_order``
    (entrances, as ``open_gates``)."""
    for key, zones in named.items():
        lever = "open_gates" if key == "gate_order" else key
        for zone in zones:
            problem = Levers.zone_problem(lever, zone, venue)
            if problem is None:
                continue
            if problem.startswith("unknown zone") or lever == "open_gates":
                raise error(f"{where}.{key}: {problem}")
            raise error(f"{where}.{key}.{zone}: {problem}")


def default_shows(venue: Venue, hours: float, avatars: int) -> list[Show]:
    """A plausible programme: a support act and a headliner on the biggest stage, talks or
    sets every 75 minutes on the others. Each show draws at most as many visitors as its
    stage holds."""
    if "shows" in venue.graph.graph:  # the venue's own programme (none: a real place's)
        own = venue.graph.graph["shows"]
        if not isinstance(own, list):
            raise ScenarioError(f"{venue.source}: shows must be a list of shows")
        return [_build(Show, s, f"shows[{i}]", venue.source) for i, s in enumerate(own)]
    stages = sorted(venue.of_kind("stage"), key=lambda i: -venue.area[i])
    shows: list[Show] = []
    for rank, zone in enumerate(stages):
        name = venue.zones[zone]
        fits = float(venue.capacity[zone]) / max(avatars, 1)

        def draw(share: float, fits: float = fits) -> float:
            # Round down where the stage limits the draw, so draw x avatars <= capacity.
            return min(round(share, 3), math.floor(fits * 1000) / 1000)

        if rank == 0:
            if hours >= 3.25:  # room for the support act to end before the headliner
                shows.append(Show(name, 0.75, 1.5, draw=draw(0.5)))
                shows.append(Show(name, hours - 1.75, hours - 0.75, draw=draw(0.8), headline=True))
            else:
                shows.append(Show(name, hours * 0.4, hours * 0.75, draw=draw(0.7), headline=True))
            continue
        start = 0.5 + 0.25 * rank
        while start + 0.6 <= hours - 0.5:
            shows.append(Show(name, round(start, 2), round(start + 0.6, 2), draw=draw(0.25)))
            start += 1.25
    return shows


def _build(cls: type, data: Any, where: str, source: str) -> Any:
    """Build dataclass ``cls`` from a dict, refusing unknown keys and wrong types by name."""
    prefix = f"{where}." if where else ""
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: {where or 'scenario'} must be a table")
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            raise ScenarioError(
                f"{source}: unknown key '{prefix}{key}' (known: {', '.join(known)})"
            )
    for key, value in data.items():
        expected = _TYPES.get((cls.__name__, key))
        if expected and not _is_type(value, expected):
            raise ScenarioError(f"{source}: {prefix}{key} must be {expected}, got {value!r}")
    try:
        return cls(**data)
    except ScenarioError as exc:
        raise ScenarioError(str(exc).replace("<memory>", source)) from None
    except TypeError as exc:
        raise ScenarioError(f"{source}: {where or 'scenario'}: {exc}") from None


_TYPES: dict[tuple[str, str], str] = {
    ("Scenario", "name"): "text",
    ("Scenario", "venue"): "text",
    ("Scenario", "avatars"): "a whole number",
    ("Scenario", "hours"): "a finite number",
    ("Scenario", "step_s"): "a finite number",
    ("Scenario", "seed"): "a whole number",
    ("Scenario", "policy"): "text",
    ("Scenario", "model"): "text",
    ("Scenario", "temperature"): "a finite number",
    ("Scenario", "markov_logs"): "a list of text",
    ("Scenario", "opening"): "text",
    ("Scenario", "arrival_window_h"): "a finite number",
    ("Scenario", "arrival_profile"): "a list of finite numbers",
    ("Scenario", "js"): "a finite number",
    ("Scenario", "patience_s"): "a finite number",
    ("Scenario", "record_every_s"): "a finite number",
    ("Scenario", "search"): "a table",
    ("Show", "stage"): "text",
    ("Show", "start_h"): "a finite number",
    ("Show", "end_h"): "a finite number",
    ("Show", "draw"): "a finite number",
    ("Show", "headline"): "true or false",
    ("Levers", "servers"): "a table of whole numbers",
    ("Levers", "open_gates"): "a list of text",
    ("Levers", "capacity_caps"): "a table of whole numbers",
}


def _is_type(value: Any, expected: str) -> bool:
    def number(v: Any) -> bool:  # NaN and infinities are not numbers a scenario can use
        return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

    def whole(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    return {
        "text": lambda v: isinstance(v, str),
        "a whole number": whole,
        "a finite number": number,
        "true or false": lambda v: isinstance(v, bool),
        "a table": lambda v: isinstance(v, dict),
        "a list of finite numbers": lambda v: isinstance(v, list) and all(map(number, v)),
        "a list of text": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "a table of whole numbers": lambda v: (
            isinstance(v, dict) and all(whole(x) for x in v.values())
        ),
    }[expected](value)


def _check_ranges(s: Scenario, source: str) -> None:
    def bad(key: str, rule: str, value: Any) -> ScenarioError:
        return ScenarioError(f"{source}: {key} must be {rule}, got {value!r}")

    if not 1 <= s.avatars <= 10_000_000:
        raise bad("avatars", "1..10000000", s.avatars)
    if not 0 < s.hours <= 720:
        raise bad("hours", "in (0, 720]", s.hours)
    if not 0.5 <= s.step_s <= 60:
        raise bad("step_s", "0.5..60 seconds", s.step_s)
    if s.policy not in POLICIES:
        raise bad("policy", f"one of {', '.join(POLICIES)}", s.policy)
    if s.arrival_window_h is not None and not 0 < s.arrival_window_h <= s.hours:
        raise bad("arrival_window_h", f"in (0, hours={s.hours}]", s.arrival_window_h)
    profile = s.arrival_profile
    if not profile or any(r < 0 for r in profile) or sum(profile) <= 0:
        raise bad("arrival_profile", "non-negative rates with a positive sum", profile)
    if not 0.1 <= s.js <= 5.0:
        raise bad("js", "0.1..5 persons per metre per second", s.js)
    if not 0 <= s.patience_s <= 3600:
        raise bad("patience_s", "0..3600 seconds", s.patience_s)
    if not s.step_s <= s.record_every_s <= 3600:
        raise bad("record_every_s", f"{s.step_s}..3600 seconds", s.record_every_s)
    if not 0.05 <= s.temperature <= 10:
        raise bad("temperature", "0.05..10", s.temperature)
    if s.seed < 0:
        raise bad("seed", ">= 0", s.seed)
    try:
        datetime.fromisoformat(s.opening)
    except (TypeError, ValueError):
        raise bad("opening", "an ISO-8601 date and time", s.opening) from None
    for i, show in enumerate(s.shows or []):
        if not 0 <= show.start_h < show.end_h <= s.hours:
            raise ScenarioError(
                f"{source}: shows[{i}] must satisfy 0 <= start_h < end_h <= hours={s.hours}, "
                f"got {show.start_h}..{show.end_h}"
            )
        if not 0 <= show.draw <= 1:
            raise bad(f"shows[{i}].draw", "in [0, 1]", show.draw)
