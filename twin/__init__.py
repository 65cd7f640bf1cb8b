"""The venue twin: venues, scenarios and the Mesa model of visitors moving through them.

from twin import VenueModel, Scenario
model = VenueModel(Scenario(venue="concert_hall", avatars=2000)).run()
print(model.kpis())
"""

from twin.model import VenueModel
from twin.scenario import Levers, Scenario, ScenarioError, Show
from twin.venue import Venue, VenueError, load_venue

__all__ = [
    "Levers",
    "Scenario",
    "ScenarioError",
    "Show",
    "Venue",
    "VenueError",
    "VenueModel",
    "load_venue",
]
