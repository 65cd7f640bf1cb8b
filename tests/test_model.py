"""The Mesa model: conservation of avatars, hard caps, reproducibility, logs, Mesa APIs."""

from __future__ import annotations

import mesa
import numpy as np
import pandas as pd
import pytest

from agents import Avatar
from llm.logschema import VISIT_DTYPES
from twin import Levers, Scenario, VenueModel
from twin.crowd import BLOCKED, IN_ZONE, LEAVING, LEFT, PENDING, WALKING
from twin.kpis import all_waits

#: A crowded concert: the main hall is capped well below demand, so avatars get refused.
CAPPED = Scenario(
    venue="concert_hall",
    avatars=1500,
    hours=2.0,
    arrival_window_h=0.5,
    seed=3,
    policy="scripted",
    levers=Levers(capacity_caps={"main_hall": 300, "merch": 20}, servers={"hall_bar": 2}),
)
POLICIES = ["scripted", "gpt", "markov", "random"]


def check_conservation(model: VenueModel) -> None:
    """Every avatar is in exactly one place, and the counters agree with the arrays."""
    crowd = model.crowd
    phase = crowd.phase
    arrived = int((phase != PENDING).sum())
    left = int((phase == LEFT).sum())
    assert crowd.arrived == arrived and crowd.left == left
    assert crowd.arrived == crowd.inside + crowd.left
    in_zone = np.isin(phase, (IN_ZONE, BLOCKED, LEAVING))
    assert (crowd.zone[in_zone] >= 0).all() and (crowd.zone[~in_zone] == -1).all()
    np.testing.assert_array_equal(
        crowd.occupancy, np.bincount(crowd.zone[in_zone], minlength=model.venue.n_zones)
    )
    walking = phase == WALKING
    np.testing.assert_array_equal(
        crowd.on_edge, np.bincount(crowd.edge[walking], minlength=len(crowd.on_edge))
    )
    np.testing.assert_array_equal(
        crowd.inbound,
        np.bincount(crowd.dest[np.isin(phase, (LEAVING, WALKING))], minlength=model.venue.n_zones),
    )
    assert len(model.agents) == crowd.inside  # one Mesa agent per avatar inside


@pytest.mark.parametrize("policy", POLICIES)
def test_no_avatar_is_lost_or_duplicated_and_caps_hold_every_step(policy: str) -> None:
    model = VenueModel(CAPPED.replace(policy=policy))
    capped = model.lever_capacity()
    hard = ~np.isin(np.array(model.venue.kinds), ["entrance", "exit"])
    refused_seen = 0
    while model.running:
        model.step()
        check_conservation(model)
        assert (model.crowd.occupancy[hard] <= capped[hard]).all()
        refused_seen += int((model.crowd.phase == BLOCKED).sum())
    assert refused_seen > 0  # the caps really bit
    if policy in ("scripted", "gpt"):  # visitors who come for the show fill the hall
        hall = model.venue.index["main_hall"]
        most = model.zones_frame().query("zone == 'main_hall'")["occupancy"].max()
        assert most == capped[hall]


@pytest.mark.parametrize("policy", POLICIES)
def test_same_seed_same_run_other_seed_other_run(policy: str) -> None:
    small = CAPPED.replace(avatars=400, policy=policy)
    a, b = VenueModel(small).run(), VenueModel(small).run()
    pd.testing.assert_frame_equal(a.visits(), b.visits())
    pd.testing.assert_frame_equal(a.zones_frame(), b.zones_frame())
    assert a.kpis() == b.kpis()
    c = VenueModel(small.replace(seed=4)).run()
    assert not a.visits()["dwell_s"].equals(c.visits()["dwell_s"])


def test_visit_log_follows_the_schema_and_the_venue() -> None:
    model = VenueModel(
        Scenario(venue="expo", avatars=600, hours=3.0, seed=2, policy="scripted")
    ).run()
    visits = model.visits()
    assert list(visits.columns) == list(VISIT_DTYPES)
    assert {c: str(t) for c, t in visits.dtypes.items()} == {
        c: ("string" if t == "string" else t) for c, t in VISIT_DTYPES.items()
    }
    assert (visits["dwell_s"] >= 0).all() and (visits["occupancy"] >= 1).sum() > 0
    adjacency, index = model.venue.adjacency, model.venue.index
    for _, trip in visits.groupby("avatar_id"):
        assert trip["timestamp"].is_monotonic_increasing
        zones = [index[z] for z in trip["zone"]]
        assert model.venue.kinds[zones[0]] == "entrance"
        assert all(adjacency[u, v] for u, v in zip(zones, zones[1:], strict=False))
    left = visits.groupby("avatar_id")["zone_kind"].last()
    assert (left == "exit").sum() == model.crowd.left


def test_kpis_are_consistent_with_the_tables() -> None:
    model = VenueModel(CAPPED.replace(avatars=800)).run()
    kpis = model.kpis()
    zones = model.zones_frame()
    assert kpis["avatars"] == 800 == kpis["left"] + kpis["inside_at_end"]
    assert kpis["peak_density"] >= zones["density"].max() - 1e-4  # KPIs are rounded
    gates = kpis["throughput_per_gate"]
    assert sum(g["admitted"] for g in gates.values()) == 800
    assert 0 <= kpis["mean_wait_s"] <= kpis["p95_wait_s"] or kpis["mean_wait_s"] > 0
    assert kpis["person_minutes_los_ef"] >= 0
    series = model.datacollector.get_model_vars_dataframe()
    assert (series["arrived"] == series["inside"] + series["left"]).all()
    assert series["arrived"].is_monotonic_increasing


def test_halving_bar_staff_makes_its_queue_longer() -> None:
    base = Scenario(venue="concert_hall", avatars=2000, hours=3.0, seed=5, policy="scripted")
    full = VenueModel(base).run()
    bar = full.venue.index["hall_bar"]
    halved = VenueModel(
        base.replace(levers=Levers(servers={"hall_bar": int(full.venue.servers[bar]) // 2}))
    ).run()

    def bar_wait(model: VenueModel) -> float:
        """The mean wait ahead of those who joined the bar's queue."""
        zone, wait = all_waits(model.crowd)
        return float(wait[zone == bar].mean())

    assert bar_wait(halved) > 1.2 * bar_wait(full)


def test_avatars_are_mesa_agents() -> None:
    model = VenueModel(
        Scenario(venue="concert_hall", avatars=300, hours=1.0, seed=1, policy="scripted")
    )
    for _ in range(200):
        model.step()
    avatars = model.agents_by_type[Avatar]
    assert len(avatars) == model.crowd.inside > 0
    phases = {a.phase for a in avatars}
    assert phases <= {"in_zone", "blocked", "leaving", "walking"}
    in_zone = avatars.select(lambda a: a.phase == "in_zone")
    assert all(a.zone in model.venue.zones for a in in_zone)
    assert model.steps == 200


def test_agent_by_agent_stepping_runs_the_same_physics() -> None:
    scenario = Scenario(venue="concert_hall", avatars=400, hours=1.5, seed=7, policy="scripted")
    arrays = VenueModel(scenario).run()
    agents = VenueModel(scenario, stepping="agents")
    while agents.running:
        agents.step()
        check_conservation(agents)
    a, b = arrays.kpis(), agents.kpis()
    assert a["avatars"] == b["avatars"] == 400
    assert b["visits"] == pytest.approx(a["visits"], rel=0.15)
    assert b["mean_satisfaction"] == pytest.approx(a["mean_satisfaction"], abs=0.3)


def test_batch_run_sweeps_parameters() -> None:
    results = mesa.batch_run(
        VenueModel,
        parameters={
            "venue": "concert_hall",
            "avatars": [100, 200],
            "hours": 1.0,
            "seed": 1,
            "policy": "scripted",
        },
        max_steps=10_000,
        display_progress=False,
    )
    final = pd.DataFrame(results).groupby("avatars")["arrived"].max()
    assert final.to_dict() == {100: 100, 200: 200}


def test_gate_throughput_is_bounded_by_its_servers() -> None:
    """With everybody arriving at once, each gate admits at its service capacity."""
    model = VenueModel(
        Scenario(
            venue="concert_hall",
            avatars=2500,
            hours=1.5,
            arrival_window_h=0.1,
            seed=2,
            policy="scripted",
        )
    ).run()
    gates = model.kpis()["throughput_per_gate"]
    assert sum(g["admitted"] for g in gates.values()) == 2500
    for name, gate in gates.items():
        z = model.venue.index[name]
        capacity = model.venue.servers[z] * 3600 / model.venue.service_s[z]
        assert 0.8 * capacity <= gate["peak_per_hour"] <= 1.2 * capacity


@pytest.mark.parametrize("csv", [False, True])
def test_a_streamed_visit_log_is_written_whole_without_being_held(
    tmp_path, monkeypatch: pytest.MonkeyPatch, csv: bool
) -> None:
    """``stream_visits``: the log goes to disk in parts as the run goes (never more than a
    part and a step's visits held), and the file written from the parts has the same
    visits as a log held in memory; the parts go with the log."""
    from llm.logs import read_log
    from twin import visit_log
    from twin.output import write_run

    monkeypatch.setattr(visit_log, "PART_ROWS", 500)
    scenario = Scenario(venue="expo", avatars=400, hours=2.0, seed=5, policy="scripted")
    held = VenueModel(scenario).run()
    streamed = VenueModel(scenario, stream_visits=tmp_path / "run")
    most = 0
    while streamed.running:
        streamed.step()
        most = max(most, streamed.crowd.log.held)
    log = streamed.crowd.log
    assert len(log.parts) >= 4 and most < 500 + 400  # a part, and at most a step's visits
    assert log.count == held.crowd.log.count == held.kpis()["visits"]
    path = write_run(streamed, tmp_path / "run", csv=csv)["visits"]
    key = ["avatar_id", "timestamp"]
    written = (pd.read_csv(path) if csv else pd.read_parquet(path)).sort_values(key)
    expected = held.visits().sort_values(key)
    assert len(written) == len(expected) == log.count
    np.testing.assert_array_equal(written["avatar_id"], expected["avatar_id"])
    np.testing.assert_array_equal(written["zone"].astype(str), expected["zone"].astype(str))
    np.testing.assert_allclose(written["dwell_s"], expected["dwell_s"])
    assert len(read_log(path)) == log.count  # and the trainer reads it as a log
    folder = log.folder
    assert folder is not None and folder.parent == tmp_path / "run" and folder.exists()
    log.close()
    assert not folder.exists()


@pytest.mark.parametrize("venue", ["concert_hall", "expo", "festival"])
@pytest.mark.parametrize("policy", ["scripted", "gpt", "markov"])
def test_nobody_is_inside_after_closing(venue: str, policy: str) -> None:
    """Closing clears the venue, however long the queues: with one server at every counter,
    queues run far past the clearing, and every visitor still leaves by the end (the
    festival kept some in its queues until 2026-11-30)."""
    from twin import load_venue

    built = load_venue(venue)
    one_each = {z: 1 for z, s in zip(built.zones, built.is_service, strict=True) if s}
    one_each.update({z: 4 for z in np.array(built.zones)[built.entrances]})
    scenario = Scenario(
        venue=venue,
        avatars=900,
        hours=1.0,
        arrival_window_h=0.4,
        seed=1,
        policy=policy,
        levers=Levers(servers=one_each),
    )
    model = VenueModel(scenario).run()
    kpis = model.kpis()
    assert kpis["inside_at_end"] == 0 and kpis["left"] == kpis["avatars"] == 900
    served_late = model.crowd.service_start[np.isfinite(model.crowd.service_start)]
    assert (served_late <= model.crowd.clearing_s + 1e-9).all()  # service stops then
