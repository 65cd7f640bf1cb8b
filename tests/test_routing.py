"""Routes between places: walks through corridors only, the same moves the model chooses."""

from __future__ import annotations

import numpy as np
import pytest

from agents.routing import Itinerary, Routes
from twin import Scenario, VenueModel
from twin.venue import BUILTIN_VENUES


@pytest.mark.parametrize("venue", BUILTIN_VENUES)
def test_routes_reach_the_models_destinations_through_passages_only(venue: str) -> None:
    model = VenueModel(Scenario(venue=venue, avatars=10, hours=1.0, policy="scripted"))
    layout, vocab = model.layout, model.venue.vocabulary()
    routes = Routes.of(layout)
    np.testing.assert_array_equal(np.isfinite(routes.distance), vocab.destinations)
    for u, v in zip(*np.nonzero(np.isfinite(routes.distance)), strict=True):
        walk, here = [int(u)], int(u)
        while here != v or len(walk) == 1:
            here = int(routes.hop[here, v])
            assert layout.adjacency[walk[-1], here]
            walk.append(here)
            assert len(walk) <= layout.n_zones + 1
        assert routes.passage[walk[1:-1]].all()  # nothing visited on the way
        # No shorter walk than the venue's own shortest path when that one is all passages.
        assert routes.distance[u, v] >= layout.distance[u, v] - 1e-9


def test_an_itinerary_walks_to_the_place_and_stays_as_planned() -> None:
    model = VenueModel(Scenario(venue="expo", avatars=10, hours=1.0, policy="scripted"))
    layout = model.layout
    at = {z: i for i, z in enumerate(layout.zones)}
    routes = Routes.of(layout)
    trip = Itinerary(3, routes)
    avatar = np.array([1])
    step, dwell = trip.head_for(
        avatar, np.array([at["booth_b2"]]), np.array([at["cafe_west"]]), np.array([600.0])
    )
    walked = [layout.zones[int(step[0])]]
    while int(step[0]) != at["cafe_west"]:
        assert dwell[0] == pytest.approx(3.0)  # passing through
        step, dwell = trip.walk(avatar, step)
        walked.append(layout.zones[int(step[0])])
    assert walked == ["aisle_b", "back_aisle_center", "back_aisle_west", "cafe_west"]
    assert dwell[0] == 600.0  # the planned stay, on the step into the café
