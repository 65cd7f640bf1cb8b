"""Walks between places: through corridors only, the same moves the model chooses; the
twin walks a place-choosing avatar there and stays as planned."""

from __future__ import annotations

import numpy as np
import pytest

from twin import Scenario, VenueModel
from twin.crowd import Walks
from twin.venue import BUILTIN_VENUES


@pytest.mark.parametrize("venue", BUILTIN_VENUES)
def test_routes_reach_the_models_destinations_through_passages_only(venue: str) -> None:
    model = VenueModel(Scenario(venue=venue, avatars=10, hours=1.0, policy="scripted"))
    layout, vocab = model.layout, model.venue.vocabulary()
    distance, hop = model.venue.place_routes
    np.testing.assert_array_equal(np.isfinite(distance), vocab.destinations)
    np.testing.assert_array_equal(layout.place_hop, hop)
    for u, v in zip(*np.nonzero(np.isfinite(distance)), strict=True):
        walk, here = [int(u)], int(u)
        while here != v or len(walk) == 1:
            here = int(hop[here, v])
            assert layout.adjacency[walk[-1], here]
            walk.append(here)
            assert len(walk) <= layout.n_zones + 1
        assert layout.passage[walk[1:-1]].all()  # nothing visited on the way
        # No shorter walk than the venue's own shortest path when that one is all passages.
        assert distance[u, v] >= layout.distance[u, v] - 1e-9


def test_the_twin_walks_an_avatar_to_its_place_and_it_stays_as_planned() -> None:
    """An avatar that chose the café from a booth walks the aisles without its policy
    (``walking``, the next step open), passing each in a moment, and gets the planned stay
    on the step into the café; a full aisle on the way stops the walk (the policy is asked
    again), and with nowhere open it stays on, still heading for its place."""
    model = VenueModel(Scenario(venue="expo", avatars=10, hours=1.0, policy="scripted"))
    layout = model.layout
    at = {z: i for i, z in enumerate(layout.zones)}
    walks = Walks(3, layout)
    avatar, legal = np.array([1]), layout.adjacency
    step = walks.head_for(
        avatar, np.array([at["booth_b2"]]), np.array([at["cafe_west"]]), np.array([600.0])
    )
    walked = [layout.zones[int(step.next_zone[0])]]
    while int(step.next_zone[0]) != at["cafe_west"]:
        assert step.dwell_s[0] == pytest.approx(3.0)  # passing through
        zone = step.next_zone
        places, walking = walks.view(avatar, zone, legal[zone])
        assert walking[0] and places[0, at["cafe_west"]]
        step = walks.head_for(avatar, zone, walks.goal[avatar], walks.stay_s[avatar])
        walked.append(layout.zones[int(step.next_zone[0])])
    assert walked == ["aisle_b", "back_aisle_center", "back_aisle_west", "cafe_west"]
    assert step.dwell_s[0] == 600.0  # the planned stay, on the step into the café

    zone = np.array([at["back_aisle_center"]])
    full = legal[zone].copy()
    full[0, at["back_aisle_west"]] = False  # the next aisle is full
    walks.goal[avatar] = at["cafe_west"]
    _, walking = walks.view(avatar, zone, full)
    assert not walking[0]
    stay = walks.head_for(avatar, zone, np.array([-1]), np.array([600.0]))
    assert stay.next_zone[0] == zone[0] and stay.dwell_s[0] == pytest.approx(3.0)
    assert walks.goal[avatar][0] == at["cafe_west"]  # nothing new chosen: still heading there


class AnyOpenPlace:
    """The README's example of a policy of one's own that chooses places: a place drawn
    at random among those open, ten minutes there."""

    name, chooses = "any_open_place", "place"

    def bind(self, layout, needs, rng) -> None:  # noqa: ANN001
        self.rng = rng

    def decide(self, obs):  # noqa: ANN001, ANN201
        from agents.policy import Decision, sample_rows

        place = sample_rows(obs.places.astype(float), self.rng)  # -1 where none is open
        place = np.where(obs.walking, obs.goal, place)  # those on their way walk on
        return Decision(next_zone=place, dwell_s=np.full(len(place), 600.0))


def test_a_policy_of_ones_own_chooses_places_and_the_twin_walks_its_avatars() -> None:
    """A policy that answers places (``chooses = "place"``) is walked through corridors
    by the twin: its avatars pass through corridors in moments, stay about ten minutes at
    every place that serves nobody, and every move is legal (the twin checks each)."""
    model = VenueModel(
        Scenario(venue="expo", avatars=300, hours=2.0, seed=2), policy=AnyOpenPlace()
    )
    model.run()
    visits = model.visits()
    corridor = visits["zone_kind"] == "corridor"
    plain = visits["zone_kind"].isin(["hall", "lounge"])  # no queue, no service
    assert corridor.sum() > 100 and plain.sum() > 100
    assert visits.loc[corridor, "dwell_s"].median() < 30  # walked through
    assert visits.loc[plain, "dwell_s"].median() == pytest.approx(600.0, rel=0.05)
    assert model.kpis()["left"] == 300
