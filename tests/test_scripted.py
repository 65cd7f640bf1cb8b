"""The scripted visitor's behaviour depends on its history, as a sequence model will need."""

from __future__ import annotations

import pandas as pd
import pytest

from twin import Scenario, Show, Venue, VenueModel, load_venue
from twin.scenario import Levers


@pytest.fixture(scope="module")
def expo_run() -> VenueModel:
    return VenueModel(
        Scenario(venue="expo", avatars=3000, hours=4.0, seed=11, policy="scripted")
    ).run()


def goal_visits(visits: pd.DataFrame, kind: str, min_dwell_s: float = 60.0) -> pd.DataFrame:
    return visits[(visits["zone_kind"] == kind) & (visits["dwell_s"] >= min_dwell_s)]


def test_booths_already_seen_are_not_revisited(expo_run: VenueModel) -> None:
    booths = goal_visits(expo_run.visits(), "booth")
    assert len(booths) > 3000  # visitors do see booths
    repeats = booths.duplicated(["avatar_id", "zone"]).mean()
    assert repeats < 0.01


def test_drinks_are_spaced_by_thirst(expo_run: VenueModel) -> None:
    bars = goal_visits(expo_run.visits(), "bar", min_dwell_s=30.0).sort_values("timestamp")
    gaps = bars.groupby("avatar_id")["timestamp"].diff().dropna().dt.total_seconds()
    assert len(bars) > 500
    assert gaps.quantile(0.05) > 30 * 60  # nobody is thirsty again within half an hour


def test_visitors_gather_before_a_show_and_leave_after_the_headline() -> None:
    shows = [
        Show("talk_stage", start_h=1.5, end_h=2.0, draw=0.3),
        Show("talk_stage", start_h=3.0, end_h=3.5, draw=0.5, headline=True),
    ]
    model = VenueModel(
        Scenario(venue="expo", avatars=3000, hours=5.0, seed=3, shows=shows, policy="scripted")
    ).run()
    stage = model.zones_frame().query("zone == 'talk_stage'").set_index("time_s")["occupancy"]
    before, at_start = stage.loc[1.5 * 3600 - 1800], stage.loc[1.5 * 3600]
    assert at_start > 3 * max(before, 1) and at_start > 0.5 * 0.3 * 3000
    series = model.datacollector.get_model_vars_dataframe().set_index("time_s")["left"]
    left_after = series.loc[3.5 * 3600 + 1800] - series.loc[3.5 * 3600]
    left_before = series.loc[3.5 * 3600] - series.loc[3.5 * 3600 - 1800]
    assert left_after > 2 * left_before  # the headline's fans go home after it


def test_crowded_zones_are_avoided_as_goals() -> None:
    """Shrink a booth's floor (keeping room for everybody): once it is at level E or F,
    visitors stop choosing it, so it gets far fewer visits than the same booth at full size."""
    expo = load_venue("expo")
    graph = expo.graph.copy()
    graph.nodes["booth_b1"].update(area=15.0, capacity=2000)
    cramped = Venue(graph, source="cramped expo")
    base = Scenario(venue=expo, avatars=3000, hours=3.0, seed=4, policy="scripted")
    runs = {
        name: VenueModel(base.replace(venue=v)).run()
        for name, v in (("roomy", expo), ("cramped", cramped))
    }

    def goal_share(model: VenueModel) -> float:
        visits = goal_visits(model.visits(), "booth")
        return float((visits["zone"] == "booth_b1").mean())

    levels = runs["cramped"].zones_frame().query("zone == 'booth_b1'")["fruin"]
    assert levels.isin(["E", "F"]).any()  # it did get crowded
    assert goal_share(runs["cramped"]) < 0.7 * goal_share(runs["roomy"])


def test_a_visitor_turned_away_at_a_shut_bar_goes_to_another() -> None:
    """A bar closed for the day (a capacity cap of 0) refuses thirsty visitors at its door;
    each gives it up and drinks elsewhere, instead of walking back to the same door (it
    did: some 20 times each, by way of the lounge beside it, until closing)."""
    levers = Levers(capacity_caps={"cafe_east": 0})
    scenario = Scenario(venue="expo", avatars=1500, hours=3.0, seed=1, policy="scripted")
    shut = VenueModel(scenario.replace(levers=levers)).run().visits()
    plain = VenueModel(scenario).run().visits()
    assert (shut["zone"] == "cafe_east").sum() == 0
    door = shut[shut["zone"] == "back_aisle_east"].groupby("avatar_id").size()
    assert door.max() <= 8  # nobody walks back and forth to the shut door (was 21)
    assert len(shut) == pytest.approx(len(plain), rel=0.01)  # the day is as long as ever
    bars = shut[shut["zone_kind"] == "bar"]
    assert len(bars) >= 0.9 * (plain["zone_kind"] == "bar").sum()  # drinks elsewhere
