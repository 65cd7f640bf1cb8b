"""Scenarios: files read every key and round-trip, bad keys, types, ranges and zones are
refused with a message naming the file and the key, and the default programme fits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomli_w

from twin import Levers, Scenario, ScenarioError, Show, VenueModel, load_venue
from twin.scenario import default_shows
from twin.venue import BUILTIN_VENUES, Venue

FULL_TOML = """\
name = "friday"
venue = "expo"
avatars = 10000
hours = 6.0
step_s = 2.5
seed = 7
policy = "random"
model = "models/expo/model.safetensors"
temperature = 0.8
markov_logs = ["logs/a.parquet"]
opening = "2026-09-12T09:30:00"
arrival_window_h = 3.0
arrival_profile = [1.0, 4.0, 2.0]
js = 1.1
patience_s = 90.0
record_every_s = 30.0

[[shows]]
stage = "talk_stage"
start_h = 1.0
end_h = 1.75
draw = 0.2
headline = false

[[shows]]
stage = "talk_stage"
start_h = 4.0
end_h = 5.0
draw = 0.3
headline = true

[levers]
servers = { cafe_west = 4, entrance_north = 6 }
open_gates = ["entrance_north", "entrance_west"]
capacity_caps = { talk_stage = 2500, lounge = 800 }
"""

FULL = Scenario(
    name="friday",
    venue="expo",
    avatars=10000,
    hours=6.0,
    step_s=2.5,
    seed=7,
    policy="random",
    model="models/expo/model.safetensors",
    temperature=0.8,
    markov_logs=["logs/a.parquet"],
    opening="2026-09-12T09:30:00",
    arrival_window_h=3.0,
    arrival_profile=[1.0, 4.0, 2.0],
    js=1.1,
    patience_s=90.0,
    record_every_s=30.0,
    shows=[
        Show("talk_stage", 1.0, 1.75, draw=0.2, headline=False),
        Show("talk_stage", 4.0, 5.0, draw=0.3, headline=True),
    ],
    levers=Levers(
        servers={"cafe_west": 4, "entrance_north": 6},
        open_gates=["entrance_north", "entrance_west"],
        capacity_caps={"talk_stage": 2500, "lounge": 800},
    ),
)

#: A tiny run: a few seconds of CPU at most.
TINY = Scenario(venue="concert_hall", avatars=50, hours=0.5)


@pytest.fixture(scope="module")
def expo() -> Venue:
    return load_venue("expo")


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def refused(path: Path, data: dict[str, Any], match: str) -> ScenarioError:
    """``from_toml`` refuses ``data``, naming the file and matching ``match``."""
    with pytest.raises(ScenarioError, match=match) as err:
        Scenario.from_toml(write(path, data))
    assert str(path) in str(err.value)
    return err.value


# --------------------------------------------------------------------------- defaults
def test_defaults_are_valid_and_run_on_their_venue() -> None:
    s = Scenario()
    venue = s.load_venue()
    s.check(venue)
    assert s == Scenario.from_dict({})
    assert s.shows is None and s.programme(venue)  # the venue's default programme
    assert s.levers == Levers() and s.levers.open_gates is None
    assert s.arrival_window_h is None and s.arrival_window_s == s.hours * 3600 / 2
    assert s.opening_time.isoformat() == s.opening


def test_levers_and_shows_may_be_given_as_tables() -> None:
    s = Scenario(
        shows=[{"stage": "talk_stage", "start_h": 1.0, "end_h": 2.0}],
        levers={"servers": {"cafe_west": 3}},
    )
    assert s.shows == [Show("talk_stage", 1.0, 2.0)]
    assert s.levers == Levers(servers={"cafe_west": 3})


# --------------------------------------------------------------------------- files
def test_full_file_reads_every_key(tmp_path: Path, expo: Venue) -> None:
    path = tmp_path / "friday.toml"
    path.write_text(FULL_TOML, encoding="utf-8")
    s = Scenario.from_toml(path)
    assert s == FULL
    # Every field but the venue (expo is the default) was set away from its default.
    default = Scenario()
    unchanged = [k for k in s.to_dict() if getattr(s, k) == getattr(default, k)]
    assert unchanged == ["venue"]
    s.check(expo, source=str(path))
    assert s.programme(expo) == FULL.shows


@pytest.mark.parametrize(
    "scenario",
    [Scenario(), FULL, TINY.replace(shows=[], levers=Levers(open_gates=["gate_main"]))],
    ids=["default", "full", "no-shows"],
)
def test_to_toml_then_from_toml_round_trips(tmp_path: Path, scenario: Scenario) -> None:
    path = scenario.to_toml(tmp_path / "s.toml")
    assert path == tmp_path / "s.toml"
    assert Scenario.from_toml(path) == scenario


def test_to_toml_is_atomic_and_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "run.toml"
    FULL.to_toml(target)
    Scenario(name="second").to_toml(target)
    assert [p.name for p in tmp_path.iterdir()] == ["run.toml"]
    assert Scenario.from_toml(target).name == "second"


def test_loaded_builtin_venue_is_saved_by_name(tmp_path: Path) -> None:
    s = Scenario(venue=load_venue("expo"))
    again = Scenario.from_toml(s.to_toml(tmp_path / "s.toml"))
    assert again.venue == "expo"
    assert again.load_venue().zones == s.load_venue().zones


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"nope\.toml: no such scenario file"):
        Scenario.from_toml(tmp_path / "nope.toml")


@pytest.mark.parametrize("text", [b"avatars = = 3\n", b"[levers\n", b"name = '\xff\xfe'\n"])
def test_invalid_toml_is_named(tmp_path: Path, text: bytes) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_bytes(text)
    with pytest.raises(ScenarioError, match=r"bad\.toml: not valid TOML"):
        Scenario.from_toml(bad)


def test_directory_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "runs.toml"
    folder.mkdir()
    with pytest.raises(ScenarioError, match=r"runs\.toml: cannot read the scenario file"):
        Scenario.from_toml(folder)


# --------------------------------------------------------------------------- unknown keys
@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"avatar": 100}, r"'avatar'"),
        ({"levers": {"staff": 3}}, r"'levers\.staff'"),
        (
            {"shows": [{"stage": "talk_stage", "start_h": 1, "end_h": 2, "colour": "red"}]},
            r"'shows\[0\]\.colour'",
        ),
    ],
    ids=["top", "levers", "shows"],
)
def test_unknown_key_is_named(tmp_path: Path, data: dict[str, Any], key: str) -> None:
    err = refused(tmp_path / "s.toml", data, f"unknown key {key}")
    assert "(known: " in str(err)


# --------------------------------------------------------------------------- wrong types
@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"avatars": "many"}, "avatars must be a whole number, got 'many'"),
        ({"avatars": 100.5}, "avatars must be a whole number"),
        ({"hours": True}, "hours must be a finite number, got True"),
        ({"policy": 3}, "policy must be text"),
        ({"arrival_profile": [1, "two"]}, "arrival_profile must be a list of finite numbers"),
        ({"opening": "x", "seed": "1"}, "seed must be a whole number"),
        ({"levers": {"servers": {"cafe_west": 2.5}}}, "levers.servers must be a table"),
        ({"levers": {"open_gates": "entrance_north"}}, "levers.open_gates must be a list"),
        ({"levers": {"capacity_caps": {"lounge": "big"}}}, "levers.capacity_caps must be"),
        (
            {"shows": [{"stage": "talk_stage", "start_h": "1", "end_h": 2}]},
            r"shows\[0\]\.start_h must be a finite number",
        ),
        (
            {"shows": [{"stage": "talk_stage", "start_h": 1, "end_h": 2, "headline": 1}]},
            r"shows\[0\]\.headline must be true or false",
        ),
        ({"levers": ["servers"]}, "levers must be a table"),
    ],
)
def test_wrong_type_is_named(tmp_path: Path, data: dict[str, Any], match: str) -> None:
    refused(tmp_path / "s.toml", data, match)


def test_shows_must_be_tables(tmp_path: Path) -> None:
    refused(tmp_path / "s.toml", {"shows": "talk_stage"}, "shows must be a list")


# --------------------------------------------------------------------------- ranges
@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"avatars": 0}, "avatars must be 1..10000000, got 0"),
        ({"hours": -1}, "hours must be in"),
        ({"hours": 0}, "hours must be in"),
        ({"step_s": 0}, "step_s must be 0.5..60 seconds, got 0"),
        ({"policy": "gpt2"}, "policy must be one of gpt, markov, scripted, random, got 'gpt2'"),
        ({"hours": 4, "arrival_window_h": 5}, r"arrival_window_h must be in \(0, hours=4"),
        ({"arrival_window_h": 0}, "arrival_window_h must be in"),
        ({"arrival_profile": []}, "arrival_profile must be non-negative rates"),
        ({"arrival_profile": [-1, 2]}, "arrival_profile must be non-negative rates"),
        ({"arrival_profile": [0, 0]}, "arrival_profile must be non-negative rates"),
        ({"seed": -1}, "seed must be >= 0"),
        ({"js": 0}, "js must be"),
        ({"step_s": 10, "record_every_s": 5}, "record_every_s must be"),
        ({"opening": "next friday"}, "opening must be an ISO-8601 date and time"),
        ({"opening": "2026-13-01T18:00:00"}, "opening must be an ISO-8601 date and time"),
        (
            {"shows": [{"stage": "talk_stage", "start_h": 2.0, "end_h": 2.0}]},
            r"shows\[0\] must satisfy 0 <= start_h < end_h",
        ),
        (
            {"shows": [{"stage": "talk_stage", "start_h": 3.0, "end_h": 2.0}]},
            r"shows\[0\] must satisfy",
        ),
        (
            {"hours": 4, "shows": [{"stage": "talk_stage", "start_h": 3.0, "end_h": 4.5}]},
            r"shows\[0\] must satisfy .*hours=4",
        ),
        (
            {"shows": [{"stage": "talk_stage", "start_h": 1.0, "end_h": 2.0, "draw": 1.5}]},
            r"shows\[0\]\.draw must be in \[0, 1\], got 1.5",
        ),
    ],
)
def test_out_of_range_is_named(tmp_path: Path, data: dict[str, Any], match: str) -> None:
    refused(tmp_path / "s.toml", data, match)


def test_out_of_range_in_python_is_refused_too() -> None:
    with pytest.raises(ScenarioError, match="<memory>: avatars must be"):
        Scenario(avatars=0)
    with pytest.raises(ScenarioError, match=r"shows\[0\]\.draw must be in \[0, 1\]"):
        Scenario(shows=[Show("talk_stage", 1.0, 2.0, draw=-0.1)])


# --------------------------------------------------------------------------- zones
@pytest.mark.parametrize(
    ("changes", "match"),
    [
        (
            {"shows": [Show("booth_a1", 1.0, 2.0)]},
            r"shows\[0\]\.stage: 'booth_a1' is not a stage of venue 'expo'",
        ),
        (
            {"shows": [Show("talk_stage", 1.0, 2.0), Show("main_stage", 2.0, 3.0)]},
            r"shows\[1\]\.stage: 'main_stage' is not a stage",
        ),
        ({"levers": Levers(servers={"ghost_bar": 2})}, "levers.servers: unknown zone 'ghost_bar'"),
        ({"levers": Levers(servers={"booth_a1": 2})}, "levers.servers.booth_a1: a booth has no"),
        ({"levers": Levers(servers={"cafe_west": 0})}, "levers.servers.cafe_west: must be 1..1000"),
        (
            {"levers": Levers(open_gates=["entrance_north", "exit_north"])},
            "levers.open_gates: 'exit_north' is not an entrance of venue 'expo'",
        ),
        ({"levers": Levers(open_gates=[])}, "levers.open_gates: at least one gate must open"),
        (
            {"levers": Levers(capacity_caps={"entrance_west": 100})},
            "levers.capacity_caps.entrance_west: entrances and exits are not capped",
        ),
        (
            {"levers": Levers(capacity_caps={"exit_north": 100})},
            "levers.capacity_caps.exit_north: entrances and exits are not capped",
        ),
        (
            {"levers": Levers(capacity_caps={"lounge": -1})},
            r"levers.capacity_caps.lounge: must be a whole number >= 0 \(0: closed\), got -1",
        ),
        (
            {"levers": Levers(capacity_caps={"atrium": 10})},
            "levers.capacity_caps: unknown zone 'atrium'",
        ),
    ],
)
def test_check_names_the_zone(expo: Venue, changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ScenarioError, match=f"friday.toml: {match}"):
        Scenario(**changes).check(expo, source="friday.toml")


def test_check_accepts_every_lever_on_the_right_zones(expo: Venue) -> None:
    kinds = dict(zip(expo.zones, expo.kinds, strict=True))
    gates = [z for z, k in kinds.items() if k == "entrance"]
    serving = [z for z, k in kinds.items() if k in ("entrance", "bar", "restroom", "shop")]
    inside = [z for z, k in kinds.items() if k not in ("entrance", "exit")]
    Scenario(
        levers=Levers(
            servers=dict.fromkeys(serving, 3),
            open_gates=gates[:1],
            capacity_caps=dict.fromkeys(inside, 10),
        )
    ).check(expo)


# --------------------------------------------------------------------------- programme
@pytest.mark.parametrize("avatars", [1, 100, 2000, 7000, 10000, 123_457])
def test_default_shows_fit_expo(expo: Venue, avatars: int) -> None:
    shows = default_shows(expo, 4.0, avatars)
    assert shows
    assert sum(s.headline for s in shows) == 1
    for show in shows:
        zone = expo.index[show.stage]
        assert expo.kinds[zone] == "stage"
        assert 0 <= show.start_h < show.end_h <= 4.0
        assert 0 < show.draw <= 1
        assert show.draw * avatars <= expo.capacity[zone] + 1e-9, show
    # The programme passes the checks a scenario of its own shows would.
    Scenario(avatars=avatars, hours=4.0, shows=shows).check(expo)


@pytest.mark.parametrize("name", BUILTIN_VENUES)
@pytest.mark.parametrize("hours", [0.5, 2.0, 3.0, 3.2, 4.0, 8.0])
def test_default_shows_never_overlap_on_a_stage(name: str, hours: float) -> None:
    venue = load_venue(name)
    shows = default_shows(venue, hours, 5000)
    assert sum(s.headline for s in shows) == 1
    for stage in {s.stage for s in shows}:
        times = sorted((s.start_h, s.end_h) for s in shows if s.stage == stage)
        for (_, end), (start, _) in zip(times, times[1:], strict=False):
            assert end <= start, (stage, times)
        assert all(0 <= a < b <= hours for a, b in times)


def test_own_shows_replace_the_default_programme(expo: Venue) -> None:
    assert Scenario(shows=[]).programme(expo) == []
    assert Scenario().programme(expo) == default_shows(expo, 4.0, 2000)
    assert FULL.programme(expo) == FULL.shows


# --------------------------------------------------------------------------- model
def test_model_keyword_overrides_apply() -> None:
    model = VenueModel(TINY, avatars=20, seed=3, patience_s=30.0).run()
    assert model.scenario == TINY.replace(avatars=20, seed=3, patience_s=30.0)
    assert TINY.avatars == 50 and TINY.seed == 0  # the scenario itself is untouched
    kpis = model.kpis()
    assert (kpis["avatars"], kpis["seed"]) == (20, 3)
    assert model.crowd.arrived == 20


def test_model_refuses_unknown_or_bad_overrides() -> None:
    with pytest.raises(ScenarioError, match="crowd"):
        VenueModel(TINY, crowd=30)
    with pytest.raises(ScenarioError, match="avatars must be"):
        VenueModel(TINY, avatars=0)


def test_model_checks_the_scenario_against_its_venue() -> None:
    with pytest.raises(ScenarioError, match="'bar_9'"):
        VenueModel(TINY.replace(levers=Levers(servers={"bar_9": 2})))
