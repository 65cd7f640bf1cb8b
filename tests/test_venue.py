"""Venues: the built-in venues are walkable, files round-trip, and bad venues are refused
with a message that names the zone or edge at fault."""

from __future__ import annotations

import json
import math
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from twin.builtin_venues import BUILDERS
from twin.venue import (
    BUILTIN_VENUES,
    DEFAULT_CAPACITY_PER_M2,
    SERVICE_KINDS,
    Venue,
    VenueError,
    load_venue,
)

SIZES = {"concert_hall": (8, 14), "expo": (25, 40), "festival": (50, 75)}


@pytest.fixture(scope="module", params=BUILTIN_VENUES)
def builtin(request: pytest.FixtureRequest) -> Venue:
    return load_venue(request.param)


def tiny() -> nx.Graph:
    """A small valid venue: gate -> hall -> {bar, out}."""
    g = nx.Graph(name="tiny")
    g.add_node("gate", kind="entrance", area=20.0, servers=2, service_s=5.0, x=0.0, y=0.0)
    g.add_node("hall", kind="hall", area=100.0, x=10.0, y=0.0)
    g.add_node("bar", kind="bar", area=30.0, servers=2, service_s=40.0, x=10.0, y=10.0)
    g.add_node("out", kind="exit", area=10.0, x=20.0, y=0.0)
    g.add_edge("gate", "hall", length=10.0, width=3.0)
    g.add_edge("hall", "bar", length=10.0, width=2.0)
    g.add_edge("hall", "out", length=10.0, width=3.0)
    return g


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- built-in venues
def test_builtin_venue_size_and_ends(builtin: Venue) -> None:
    low, high = SIZES[builtin.name]
    assert low <= builtin.n_zones <= high
    assert len(builtin.entrances) >= 1
    assert len(builtin.exits) >= 1
    assert nx.is_connected(builtin.graph)
    assert builtin.graph.graph["description"]


def test_builtin_every_zone_reachable_from_every_entrance(builtin: Venue) -> None:
    inside = np.setdiff1d(np.arange(builtin.n_zones), builtin.entrances)
    reach = np.isfinite(builtin.distance[np.ix_(builtin.entrances, inside)])
    unreached = {builtin.zones[inside[j]] for j in np.nonzero(~reach.all(axis=0))[0]}
    assert not unreached


def test_builtin_every_zone_can_reach_an_exit(builtin: Venue) -> None:
    to_exit = builtin.distance[:, builtin.exits].min(axis=1)
    stuck = [z for z, d in zip(builtin.zones, to_exit, strict=True) if not np.isfinite(d)]
    assert not stuck


def test_builtin_next_hop_walks_shortest_legal_paths(builtin: Venue) -> None:
    v = builtin
    for e in v.entrances:
        for t in np.nonzero(np.isfinite(v.distance[e]))[0]:
            here, walked, hops = int(e), 0.0, 0
            while here != t:
                step = int(v.next_hop[here, t])
                assert step >= 0 and v.adjacency[here, step], (v.zones[here], v.zones[t])
                walked += v.edge_length[v.edge_id[here, step]]
                here, hops = step, hops + 1
                assert hops <= v.n_zones
            assert walked == pytest.approx(v.distance[e, t])


def test_builtin_zones_are_plausible(builtin: Venue) -> None:
    v = builtin
    for i, zone in enumerate(v.zones):
        if v.kinds[i] in SERVICE_KINDS:
            assert v.servers[i] >= 1 and v.service_s[i] > 0, zone
        else:
            assert "servers" not in v.graph.nodes[zone], zone
    # Passages are between 1.5 m (a door) and 12 m (a plaza opening) wide, and as long as
    # the straight line between the zone centres, so that a map drawn from x, y is true.
    assert ((v.edge_width >= 1.5) & (v.edge_width <= 12.0)).all()
    for e, (a, b) in enumerate(v.edge_list):
        straight = math.dist(v.xy[a], v.xy[b])
        assert v.edge_length[e] == pytest.approx(max(straight, 1.0), abs=0.1)
    # Stages hold a dense crowd; other zones default to 2.5 persons per m2.
    for i in v.of_kind("stage"):
        assert v.capacity[i] >= 2 * v.area[i]


def test_builtin_files_match_their_builders(builtin: Venue) -> None:
    """The shipped JSON is what ``python -m twin.builtin_venues`` writes today."""
    fresh = Venue(BUILDERS[builtin.name]())
    assert fresh.to_json() == builtin.to_json()


# --------------------------------------------------------------------------- files
def test_save_then_load_round_trips_exactly(tmp_path: Path) -> None:
    original = load_venue("festival")
    path = original.save(tmp_path / "copy.json")
    again = load_venue(path)
    assert again.name == "festival"
    assert again.zones == original.zones
    assert again.kinds == original.kinds
    np.testing.assert_array_equal(again.area, original.area)
    np.testing.assert_array_equal(again.capacity, original.capacity)
    np.testing.assert_array_equal(again.servers, original.servers)
    np.testing.assert_array_equal(again.service_s, original.service_s)
    np.testing.assert_array_equal(again.xy, original.xy)

    def edges(v: Venue) -> dict[frozenset[str], tuple[float, float]]:
        return {
            frozenset((u, w)): (d["length"], d["width"]) for u, w, d in v.graph.edges(data=True)
        }

    assert edges(again) == edges(original)


def test_default_capacity_is_area_times_density(tmp_path: Path) -> None:
    g = tiny()
    g.nodes["bar"]["capacity"] = 12
    v = load_venue(Venue(g).save(tmp_path / "tiny.json"))
    assert v.capacity[v.index["bar"]] == 12
    assert v.capacity[v.index["hall"]] == int(100.0 * DEFAULT_CAPACITY_PER_M2)


def test_save_is_atomic_and_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "venue.json"
    Venue(tiny()).save(target)
    bigger = tiny()
    bigger.nodes["hall"]["area"] = 500.0
    Venue(bigger).save(target)
    assert [p.name for p in tmp_path.iterdir()] == ["venue.json"]
    assert load_venue(target).area[1] == 500.0


def test_loads_node_link_json_with_links_key(tmp_path: Path) -> None:
    data = nx.node_link_data(tiny(), edges="links")
    assert "links" in data and "edges" not in data
    v = load_venue(write_json(tmp_path / "old.json", data))
    assert v.zones == ("gate", "hall", "bar", "out")
    assert v.graph.has_edge("hall", "bar")
    assert v.graph.edges["hall", "bar"]["width"] == 2.0


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(VenueError, match=r"nope\.json: no such venue file"):
        load_venue(tmp_path / "nope.json")
    with pytest.raises(VenueError, match="not a built-in venue"):
        load_venue("stadium")


def test_invalid_json_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(VenueError, match=r"bad\.json: not valid JSON"):
        load_venue(bad)


def test_json_without_nodes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VenueError, match="not a node-link venue"):
        load_venue(write_json(tmp_path / "list.json", [1, 2, 3]))


def test_edge_to_unknown_zone_is_named(tmp_path: Path) -> None:
    data = nx.node_link_data(tiny(), edges="edges")
    data["edges"].append({"source": "hall", "target": "ghost", "length": 5.0, "width": 2.0})
    with pytest.raises(VenueError, match="zone 'ghost' does not exist"):
        load_venue(write_json(tmp_path / "ghost.json", data))


# --------------------------------------------------------------------------- validation
def test_tiny_venue_is_valid() -> None:
    v = Venue(tiny())
    assert v.n_zones == 4
    assert v.zones[v.next_hop[v.index["gate"], v.index["out"]]] == "hall"


def test_disconnected_names_the_stray_zone() -> None:
    g = tiny()
    g.add_node("island", kind="lounge", area=40.0)
    with pytest.raises(VenueError, match=r"disconnected.*'island'"):
        Venue(g)


def test_no_entrance_is_refused() -> None:
    g = tiny()
    g.nodes["gate"]["kind"] = "hall"
    with pytest.raises(VenueError, match="no entrance"):
        Venue(g)


def test_no_exit_is_refused() -> None:
    g = tiny()
    g.nodes["out"]["kind"] = "hall"
    with pytest.raises(VenueError, match="no exit"):
        Venue(g)


def test_exit_must_adjoin_a_non_exit_zone() -> None:
    g = tiny()
    g.add_node("out2", kind="exit", area=10.0)
    g.add_edge("out", "out2", length=3.0, width=2.0)
    with pytest.raises(VenueError, match="'out2': an exit must adjoin a non-exit zone"):
        Venue(g)


def test_negative_area_names_the_zone() -> None:
    g = tiny()
    g.nodes["hall"]["area"] = -5.0
    with pytest.raises(VenueError, match=r"zone 'hall': area must be 1\.\.1e\+08 m2, got -5\.0"):
        Venue(g)


@pytest.mark.parametrize("width", [0.0, -1.5])
def test_bad_width_names_the_edge(width: float) -> None:
    g = tiny()
    g.edges["hall", "bar"]["width"] = width
    with pytest.raises(VenueError, match=r"width must be 0\.1\.\.10000 m") as err:
        Venue(g)
    assert "'hall'" in str(err.value) and "'bar'" in str(err.value)


def test_unknown_kind_names_zone_and_kind() -> None:
    g = tiny()
    g.nodes["hall"]["kind"] = "stadium"
    with pytest.raises(VenueError, match=r"zone 'hall': unknown kind 'stadium'"):
        Venue(g)


@pytest.mark.parametrize("servers", [None, 0])
def test_service_zone_needs_servers(servers: int | None) -> None:
    g = tiny()
    if servers is None:
        del g.nodes["bar"]["servers"]
    else:
        g.nodes["bar"]["servers"] = servers
    with pytest.raises(VenueError, match=r"zone 'bar': a bar serves, so it needs servers"):
        Venue(g)


# --------------------------------------------------------------------------- legal moves
def test_zone_only_behind_an_exit_cannot_be_reached() -> None:
    g = tiny()
    g.add_node("annex", kind="lounge", area=40.0)
    g.add_edge("out", "annex", length=5.0, width=2.0)  # nobody walks out of an exit
    with pytest.raises(VenueError, match="zone 'annex' cannot be reached from any entrance"):
        Venue(g)


def test_zone_only_beside_an_entrance_has_no_way_out() -> None:
    g = tiny()
    g.add_node("cloakroom", kind="lounge", area=40.0)
    g.add_edge("gate", "cloakroom", length=5.0, width=2.0)  # nobody walks back into a gate
    with pytest.raises(VenueError, match="zone 'cloakroom' has no way to an exit"):
        Venue(g)


def test_every_stuck_zone_is_named() -> None:
    g = tiny()
    g.add_node("gate2", kind="entrance", area=20.0, servers=1, service_s=5.0)
    g.add_node("kiosk", kind="shop", area=20.0, servers=1, service_s=30.0)
    g.add_edge("gate", "gate2", length=5.0, width=2.0)
    g.add_edge("gate2", "kiosk", length=5.0, width=2.0)
    # gate2 is entered only from gate (illegal), kiosk only from gate2; neither gets out.
    with pytest.raises(VenueError, match="zones 'gate2', 'kiosk' have no way to an exit"):
        Venue(g)


def test_entrance_beside_only_an_entrance_is_refused() -> None:
    g = tiny()
    g.add_node("gate2", kind="entrance", area=20.0, servers=1, service_s=5.0)
    g.add_edge("gate", "gate2", length=5.0, width=2.0)
    with pytest.raises(VenueError, match="zone 'gate2' has no way to an exit"):
        Venue(g)


def test_entrances_need_not_be_reached_nor_exits_lead_anywhere() -> None:
    g = tiny()
    # A second gate and a second exit that adjoins only that gate: both legal.
    g.add_node("gate2", kind="entrance", area=20.0, servers=1, service_s=5.0)
    g.add_node("out2", kind="exit", area=10.0)
    g.add_edge("gate2", "hall", length=10.0, width=3.0)
    g.add_edge("gate2", "out2", length=5.0, width=3.0)
    v = Venue(g)
    assert not v.adjacency[:, v.entrances].any()
    assert not v.adjacency[v.exits, :].any()
    assert np.isfinite(v.distance[v.index["gate2"], v.index["out2"]])


def test_builtin_source_loads_the_venue_again(builtin: Venue) -> None:
    """A scenario saved with a loaded built-in venue names it so that it loads again."""
    assert builtin.source == builtin.name
    assert load_venue(builtin.source).zones == builtin.zones


# --------------------------------------------------------------------------- malformed files
def test_directory_is_refused_naming_the_path(tmp_path: Path) -> None:
    folder = tmp_path / "venue.json"
    folder.mkdir()
    with pytest.raises(VenueError, match=r"venue\.json: cannot read the venue file") as err:
        load_venue(folder)
    assert str(folder) in str(err.value)


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"nodes": {"gate": {}}, "edges": []}, "nodes"),
        ({"nodes": "gate", "edges": []}, "nodes"),
        ({"nodes": [], "edges": {"gate": "out"}}, "edges"),
        ({"nodes": [], "links": 3}, "links"),
    ],
)
def test_nodes_and_edges_must_be_lists(tmp_path: Path, data: object, key: str) -> None:
    with pytest.raises(VenueError, match=rf"bad\.json: '{key}' must be a list"):
        load_venue(write_json(tmp_path / "bad.json", data))


def test_duplicate_zone_id_is_refused(tmp_path: Path) -> None:
    data = nx.node_link_data(tiny(), edges="edges")
    data["nodes"].append({**data["nodes"][1], "area": 999.0})
    with pytest.raises(VenueError, match="node #4: zone 'hall' is defined twice"):
        load_venue(write_json(tmp_path / "twice.json", data))


def test_unusable_ids_and_kinds_are_refused(tmp_path: Path) -> None:
    data = nx.node_link_data(tiny(), edges="edges")
    data["nodes"][1]["id"] = ["hall"]
    with pytest.raises(VenueError, match="node #1: id must be text or a number"):
        load_venue(write_json(tmp_path / "a.json", data))
    data = nx.node_link_data(tiny(), edges="edges")
    data["edges"][0]["target"] = {"zone": "hall"}
    with pytest.raises(VenueError, match="edge #0: target must be a zone id"):
        load_venue(write_json(tmp_path / "b.json", data))
    data = nx.node_link_data(tiny(), edges="edges")
    data["nodes"][1]["kind"] = ["hall"]
    with pytest.raises(VenueError, match=r"zone 'hall': unknown kind \['hall'\]"):
        load_venue(write_json(tmp_path / "c.json", data))
