"""The crowd physics reproduce queueing theory and door-flow hydraulics."""

from __future__ import annotations

import numpy as np
import pytest

from agents.policy import Decision, Layout, Observation
from tests.helpers import line_venue
from twin import Scenario, VenueModel
from twin.kpis import all_waits
from twin.physics import (
    DEFAULT_JS,
    door_headway,
    erlang_c_wait,
    schedule_doors,
    weidmann_speed,
)


def test_weidmann_speed_matches_the_fundamental_diagram() -> None:
    assert weidmann_speed(0.01) == pytest.approx(1.34, abs=1e-3)  # free walking
    expected = 1.34 * (1 - np.exp(-1.913 * (1 / 2.0 - 1 / 5.4)))
    assert weidmann_speed(2.0) == pytest.approx(expected)
    speeds = weidmann_speed(np.linspace(0.1, 5.0, 50))
    assert np.all(np.diff(speeds) <= 0)  # denser is never faster
    assert weidmann_speed(6.0) > 0  # a jam still drains, slowly


def test_erlang_c_known_values() -> None:
    # M/M/1: Wq = rho / (mu - lambda); rho = 0.5, service 2 s -> 2 s
    assert erlang_c_wait(0.25, 2.0, 1) == pytest.approx(2.0)
    # M/M/2, offered load 1.6 Erlang (rho 0.8), service 3 s: C = 0.7111, Wq = 5.333 s
    assert erlang_c_wait(1.6 / 3.0, 3.0, 2) == pytest.approx(5.3333, rel=1e-3)
    assert erlang_c_wait(1.0, 3.0, 2) == float("inf")


def test_doors_pass_one_person_per_headway_first_come_first_served() -> None:
    edge = np.array([0, 0, 1, 0, 1])
    ready = np.array([0.0, 0.0, 5.0, 10.0, 5.0])
    free = np.zeros(2)
    headway = np.array([1.0, 2.0])
    passed = schedule_doors(edge, ready, free, headway)
    np.testing.assert_allclose(passed, [0.0, 1.0, 5.0, 10.0, 7.0])
    np.testing.assert_allclose(free, [11.0, 9.0])
    # The door remembers: the next person through door 1 comes no sooner than t = 9.
    assert schedule_doors(np.array([1]), np.array([6.0]), free, headway)[0] == 9.0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("utilisation", "avatars", "seeds"),
    [(0.5, 100_000, 1), (0.8, 150_000, 2), (0.9, 300_000, 3)],
)
def test_gate_queue_reproduces_erlang_c(utilisation: float, avatars: int, seeds: int) -> None:
    """A gate with 2 servers, exponential service (mean 3 s) and Poisson arrivals: the
    twin's mean wait matches Erlang C within 5%."""
    servers, service_s = 2, 3.0
    rate = utilisation * servers / service_s
    hours = avatars / rate / 3600
    waits = []
    for seed in range(seeds):
        model = VenueModel(
            Scenario(
                venue=line_venue(servers=servers, service_s=service_s),
                avatars=avatars,
                hours=hours + 0.5,
                arrival_window_h=hours,
                arrival_profile=[1.0],
                step_s=60.0,
                record_every_s=3600.0,
                policy="random",
                seed=seed,
            )
        ).run()
        zone, wait = all_waits(model.crowd)
        waits.append(wait[zone == model.venue.index["gate"]])
    measured = np.concatenate(waits).mean()
    theory = erlang_c_wait(rate, service_s, servers)
    assert measured == pytest.approx(theory, rel=0.05)


class HoldThenLeave:
    """Everybody walks into the room, stays until ``release_s``, then heads for the exit."""

    name = "hold"

    def __init__(self, release_s: float) -> None:
        self.release_s = release_s

    def bind(self, layout: Layout, needs: object, rng: np.random.Generator) -> None:
        self.layout = layout

    def decide(self, obs: Observation) -> Decision:
        room, out = self.layout.zones.index("room"), self.layout.zones.index("out")
        in_room = obs.zone == room
        next_zone = np.where(in_room, out, room)
        dwell = np.where(in_room, 0.0, np.maximum(self.release_s - obs.now_s, 0.0))
        return Decision(next_zone=next_zone, dwell_s=dwell)


@pytest.mark.parametrize(("people", "width"), [(600, 1.0), (1000, 2.0), (2000, 4.0)])
def test_room_empties_through_a_door_at_js_times_width(people: int, width: float) -> None:
    """N people leave a room through one door of width w: the last one is out after
    N / (Js w) plus the walk along the door's corridor."""
    length = 10.0
    release_s = 1800.0
    venue = line_venue(servers=50, service_s=1.0, door_width=width, door_length=length)
    model = VenueModel(
        Scenario(
            venue=venue,
            avatars=people,
            hours=2.0,
            arrival_window_h=0.25,
            arrival_profile=[1.0],
            step_s=1.0,
            record_every_s=60.0,
        ),
        policy=HoldThenLeave(release_s),
    ).run()
    assert model.crowd.left == people
    visits = model.visits()
    opening = np.datetime64(model.scenario.opening_time)
    room = visits[visits["zone"] == "room"]
    passed = (room["timestamp"] - opening).dt.total_seconds() + room["dwell_s"]
    out = (visits.loc[visits["zone"] == "out", "timestamp"] - opening).dt.total_seconds()
    first_ready, last_out = passed.min(), out.max()
    walk = length / 1.34  # the emptying room is sparse: free walking speed
    expected = people / (DEFAULT_JS * width) + walk
    assert last_out - first_ready == pytest.approx(expected, rel=0.01)
    # One person through the door every 1 / (Js w) seconds, no faster.
    gaps = np.diff(np.sort(passed.to_numpy()))
    assert gaps.min() == pytest.approx(float(door_headway(width)), rel=1e-6)
