"""The venue: a graph of zones joined by doors and corridors, loaded from and saved as JSON.

A venue is a networkx graph in node-link JSON. Nodes are zones with a ``kind`` (one of
``llm.zones.ZONE_KINDS``), an ``area`` in square metres, a hard ``capacity`` in
persons, ``servers`` and a mean ``service_s`` where the zone serves (gates, bars,
restrooms, shops), and ``x``/``y`` in metres for drawing. Edges are passages with a
``length`` and a ``width`` in metres. ``Venue`` validates all of this once and exposes the
arrays that the simulation engine and the policies work on.

Its length: the venue format, its walks (shortest paths, walks between places), and its
one validator, which names the zone or edge at fault for every way a graph can be unusable.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from llm.fileio import write_text_atomic
from llm.vocab import ZoneVocab
from llm.zones import KIND_INDEX, ZONE_KINDS

#: Kinds of zone that serve visitors through a FIFO multi-server queue.
SERVICE_KINDS: frozenset[str] = frozenset({"entrance", "bar", "restroom", "shop"})
#: Kinds of zones that serve through a queue when they state ``servers`` and ``service_s``
#: (a ride: a booth that takes ``servers`` riders at a time for ``service_s``), and are
#: walked into freely when they do not.
QUEUE_KINDS: frozenset[str] = frozenset({"booth", "stage"})
#: Kinds of zones whose staff (servers) an operator moves around: service zones but gates.
STAFFED_KINDS: tuple[str, ...] = ("bar", "restroom", "shop")
#: Default hard capacity, persons per square metre of area, when a zone gives none.
DEFAULT_CAPACITY_PER_M2 = 2.5
BUILTIN_VENUES: tuple[str, ...] = ("concert_hall", "expo", "festival")


class VenueError(ValueError):
    """A venue file or graph that cannot be used; the message names the zone or edge."""


@dataclass(frozen=True)
class Venue:
    """A validated venue graph and its zone/edge arrays (zones in graph order)."""

    graph: nx.Graph
    source: str = "<memory>"
    zones: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        _validate(self.graph, self.source)
        object.__setattr__(self, "zones", tuple(self.graph.nodes))

    # ---------------------------------------------------------------- identity
    @property
    def name(self) -> str:
        return str(self.graph.graph.get("name", Path(self.source).stem))

    @property
    def n_zones(self) -> int:
        return len(self.zones)

    @cached_property
    def index(self) -> dict[str, int]:
        """Zone name -> index into every per-zone array."""
        return {z: i for i, z in enumerate(self.zones)}

    def _attr(self, key: str, default: float = 0.0) -> np.ndarray:
        return np.array(
            [float(self.graph.nodes[z].get(key, default)) for z in self.zones], dtype=np.float64
        )

    # ---------------------------------------------------------------- zone arrays
    @cached_property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self.graph.nodes[z]["kind"] for z in self.zones)

    @cached_property
    def kind_ids(self) -> np.ndarray:
        return np.array([KIND_INDEX[k] for k in self.kinds], dtype=np.int64)

    @cached_property
    def area(self) -> np.ndarray:
        return self._attr("area")

    @cached_property
    def capacity(self) -> np.ndarray:
        """Hard capacity per zone (persons)."""
        return np.array([zone_capacity(self.graph.nodes[z]) for z in self.zones], dtype=np.int64)

    @cached_property
    def servers(self) -> np.ndarray:
        return np.array(
            [
                int(self.graph.nodes[z].get("servers", 0)) if self.is_service[i] else 0
                for i, z in enumerate(self.zones)
            ],
            dtype=np.int64,
        )

    @cached_property
    def service_s(self) -> np.ndarray:
        return self._attr("service_s") * self.is_service

    @cached_property
    def xy(self) -> np.ndarray:
        return np.stack([self._attr("x"), self._attr("y")], axis=1)

    @cached_property
    def is_service(self) -> np.ndarray:
        """(Z,) bool: zones that serve visitors through a queue (``serves``)."""
        return np.array([serves(self.graph.nodes[z]) for z in self.zones])

    def of_kind(self, *kinds: str) -> np.ndarray:
        """Indices of the zones of the given kinds, in zone order."""
        return np.array([i for i, k in enumerate(self.kinds) if k in kinds], dtype=np.int64)

    @property
    def entrances(self) -> np.ndarray:
        return self.of_kind("entrance")

    @property
    def exits(self) -> np.ndarray:
        return self.of_kind("exit")

    # ---------------------------------------------------------------- edge arrays
    @cached_property
    def edge_list(self) -> tuple[tuple[int, int], ...]:
        """Undirected edges as (u, v) zone-index pairs; edge ``e`` is ``edge_list[e]``."""
        return tuple((self.index[u], self.index[v]) for u, v in self.graph.edges)

    @cached_property
    def edge_length(self) -> np.ndarray:
        return np.array([float(d["length"]) for _, _, d in self.graph.edges(data=True)])

    @cached_property
    def edge_width(self) -> np.ndarray:
        return np.array([float(d["width"]) for _, _, d in self.graph.edges(data=True)])

    @cached_property
    def edge_id(self) -> np.ndarray:
        """``edge_id[u, v]``: index of the edge joining zones u and v, or -1."""
        table = np.full((self.n_zones, self.n_zones), -1, dtype=np.int64)
        for e, (u, v) in enumerate(self.edge_list):
            table[u, v] = table[v, u] = e
        return table

    @cached_property
    def adjacency(self) -> np.ndarray:
        """``adjacency[u, v]``: True where a visitor may walk from u to v in one move.

        Nobody walks back into an entrance (it is the way in) or out of an exit (it is the
        way out).
        """
        adj = self.edge_id >= 0
        adj[:, self.entrances] = False
        adj[self.exits, :] = False
        return adj

    @cached_property
    def distance(self) -> np.ndarray:
        """Shortest walking distance in metres between every pair of zones (legal moves)."""
        n = self.n_zones
        dist = np.full((n, n), np.inf)
        lengths = self.edge_length
        for u in range(n):
            dist[u, u] = 0.0
        weighted = nx.DiGraph()
        weighted.add_nodes_from(range(n))
        for u, v in zip(*np.nonzero(self.adjacency), strict=True):
            weighted.add_edge(int(u), int(v), length=lengths[self.edge_id[u, v]])
        for u, targets in nx.all_pairs_dijkstra_path_length(weighted, weight="length"):
            for v, d in targets.items():
                dist[u, v] = d
        return dist

    @cached_property
    def next_hop(self) -> np.ndarray:
        """``next_hop[u, t]``: the neighbour of u on a shortest path to t (u itself if t == u,
        -1 if t cannot be reached from u)."""
        n = self.n_zones
        hop = np.full((n, n), -1, dtype=np.int64)
        dist = self.distance
        lengths = self.edge_length
        for u in range(n):
            hop[u, u] = u
            nbrs = np.nonzero(self.adjacency[u])[0]
            if len(nbrs) == 0:
                continue
            via = lengths[self.edge_id[u, nbrs]][:, None] + dist[nbrs, :]
            best = np.argmin(via, axis=0)
            reachable = np.isfinite(via[best, np.arange(n)])
            hop[u, reachable] = nbrs[best[reachable]]
            hop[u, u] = u
        return hop

    @cached_property
    def place_routes(self) -> tuple[np.ndarray, np.ndarray]:
        """Walks from every zone to every *place* through passages only (the moves
        ``ZoneVocab.destinations`` allows a model): ``(distance, hop)``, each (Z, Z), the
        walk's metres (inf where none; a passage is no goal) and its first zone (-1).
        Floyd-Warshall over the legal moves, each as long as the shortest walk between its
        two zones, with only passages allowed inside a walk."""
        passage = self.vocabulary().passage
        n = self.n_zones
        distance = np.where(self.adjacency, self.distance, np.inf)
        hop = np.where(np.isfinite(distance), np.arange(n)[None, :], -1)
        for k in np.flatnonzero(passage):
            through = distance[:, [k]] + distance[[k], :]
            shorter = through < distance
            distance = np.where(shorter, through, distance)
            hop = np.where(shorter, hop[:, [k]], hop)
        distance[:, passage] = np.inf
        hop[:, passage] = -1
        return distance, hop

    def vocabulary(self) -> ZoneVocab:
        """The venue's zones as a model vocabulary: names, kinds, areas, legal moves."""
        return ZoneVocab.from_venue(
            self.zones, self.kinds, self.area, self.adjacency, source=f"venue:{self.name}"
        )

    def scaled(self, factor: float) -> Venue:
        """The same layout ``factor`` times as big: areas, capacities, servers and door
        widths multiplied (walking distances unchanged). ``expo.scaled(10)`` holds ten
        times the expo's crowd with the same queues and densities."""
        if not factor > 0:
            raise VenueError(f"{self.source}: scale factor must be positive, got {factor}")
        graph = self.graph.copy()
        graph.graph["name"] = f"{self.name}_x{factor:g}"
        for _, attrs in graph.nodes(data=True):
            attrs["area"] = float(attrs["area"]) * factor
            if attrs.get("capacity") is not None:
                attrs["capacity"] = max(1, round(float(attrs["capacity"]) * factor))
            if attrs.get("servers") is not None:
                attrs["servers"] = max(1, round(float(attrs["servers"]) * factor))
        for _, _, attrs in graph.edges(data=True):
            attrs["width"] = float(attrs["width"]) * factor
        return Venue(graph, source=f"{self.source} x{factor:g}")

    # ---------------------------------------------------------------- i/o
    def to_json(self) -> dict[str, Any]:
        return nx.node_link_data(self.graph, edges="edges")

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the venue as node-link JSON, atomically."""
        write_text_atomic(path, json.dumps(self.to_json(), indent=1) + "\n")
        return Path(path)


def serves(attrs: dict[str, Any]) -> bool:
    """Whether a zone serves through a queue: a service kind always; a booth or a stage
    when it states servers (a ride)."""
    kind = attrs.get("kind")
    return kind in SERVICE_KINDS or (kind in QUEUE_KINDS and attrs.get("servers") is not None)


def zone_capacity(attrs: dict[str, Any]) -> int:
    """A zone's hard capacity: its ``capacity`` attribute, else area x 2.5 persons/m2."""
    if "capacity" in attrs and attrs["capacity"] is not None:
        return int(attrs["capacity"])
    return max(1, int(float(attrs.get("area", 0.0)) * DEFAULT_CAPACITY_PER_M2))


#: What a zone's or an edge's numbers may be: (least, most, unit). Beyond them a venue is a
#: typo, not a place (a zone of 1e-300 m2, a door 1e308 m wide), and the arithmetic of a run
#: overflows or ends with everybody inside; the least zone is a person's footprint.
LIMITS: dict[str, tuple[float, float, str]] = {
    "area": (1.0, 1e8, "m2"),
    "capacity": (1, 10_000_000, "persons"),
    "servers": (1, 100_000, "servers"),
    "service_s": (0.1, 86_400.0, "s"),
    "x": (-1e7, 1e7, "m"),
    "y": (-1e7, 1e7, "m"),
    "length": (0.1, 100_000.0, "m"),
    "width": (0.1, 10_000.0, "m"),
}
#: The most zones a venue may have: its distance and route tables grow as the square.
MAX_ZONES = 5_000


def _number(value: Any, where: str, field_name: str) -> float:
    """A zone's or an edge's number, refused unless finite and within ``LIMITS``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise VenueError(f"{where}: {field_name} must be a number, got {value!r}")
    least, most, unit = LIMITS[field_name]
    if not np.isfinite(value) or not least <= value <= most:
        raise VenueError(f"{where}: {field_name} must be {least:g}..{most:g} {unit}, got {value!r}")
    if isinstance(least, int) and value != int(value):
        raise VenueError(f"{where}: {field_name} must be a whole number, got {value!r}")
    return float(value)


def _validate(graph: nx.Graph, source: str) -> None:
    """Refuse anything the engine cannot simulate, naming the zone or edge at fault."""
    if graph.is_directed() or graph.is_multigraph():
        raise VenueError(f"{source}: a venue is an undirected simple graph")
    if graph.number_of_nodes() == 0:
        raise VenueError(f"{source}: the venue has no zones")
    for zone, attrs in graph.nodes(data=True):
        where = f"{source}: zone {zone!r}"
        kind = attrs.get("kind")
        if not isinstance(kind, str) or kind not in KIND_INDEX:
            raise VenueError(f"{where}: unknown kind {kind!r} (known: {', '.join(ZONE_KINDS)})")
        if "area" not in attrs:
            raise VenueError(f"{where}: area is missing")
        _number(attrs["area"], where, "area")
        if attrs.get("capacity") is not None:
            _number(attrs["capacity"], where, "capacity")
        for coord in ("x", "y"):
            _number(attrs.get(coord, 0.0), where, coord)
        if kind in QUEUE_KINDS and (attrs.get("servers") is None) != (
            attrs.get("service_s") is None
        ):
            raise VenueError(
                f"{where}: a {kind} with a queue needs both servers and service_s "
                "(or neither: walked into freely)"
            )
        if serves(attrs):
            for key, rule in (("servers", "servers >= 1"), ("service_s", "service_s > 0")):
                value = attrs.get(key)
                least = LIMITS[key][0]
                if value is None or (isinstance(value, int | float) and 0 <= value < least):
                    raise VenueError(f"{where}: a {kind} serves, so it needs {rule}")
                _number(value, where, key)
    for u, v, attrs in graph.edges(data=True):
        where = f"{source}: edge {u!r}-{v!r}"
        if u == v:
            raise VenueError(f"{where}: an edge must join two different zones")
        for key in ("length", "width"):
            if key not in attrs:
                raise VenueError(f"{where}: {key} is missing")
            _number(attrs[key], where, key)
    kinds = {z: a["kind"] for z, a in graph.nodes(data=True)}
    if "entrance" not in kinds.values():
        raise VenueError(f"{source}: the venue has no entrance (a zone of kind 'entrance')")
    if "exit" not in kinds.values():
        raise VenueError(f"{source}: the venue has no exit (a zone of kind 'exit')")
    if not nx.is_connected(graph):
        parts = sorted(nx.connected_components(graph), key=len, reverse=True)
        stray = sorted(map(str, parts[1]))
        raise VenueError(
            f"{source}: the venue is disconnected: zone(s) {', '.join(map(repr, stray))} "
            "cannot be reached from the rest"
        )
    for zone, kind in kinds.items():
        if kind == "exit" and not any(kinds[n] != "exit" for n in graph.neighbors(zone)):
            raise VenueError(f"{source}: zone {zone!r}: an exit must adjoin a non-exit zone")
    # Legal moves (see ``Venue.adjacency``): nobody walks into an entrance or out of an exit.
    moves = nx.DiGraph()
    moves.add_nodes_from(graph)
    for u, v in graph.edges:
        for a, b in ((u, v), (v, u)):
            if kinds[b] != "entrance" and kinds[a] != "exit":
                moves.add_edge(a, b)

    def named(zones: list[Any]) -> str:
        return ("zone " if len(zones) == 1 else "zones ") + ", ".join(map(repr, zones))

    entrances = [z for z, k in kinds.items() if k == "entrance"]
    exits = [z for z, k in kinds.items() if k == "exit"]
    reached = set(entrances).union(*(nx.descendants(moves, z) for z in entrances))
    unreached = [z for z, k in kinds.items() if k != "entrance" and z not in reached]
    if unreached:
        raise VenueError(
            f"{source}: {named(unreached)} cannot be reached from any entrance "
            "(nobody walks back into an entrance or out of an exit)"
        )
    leaving = set(exits).union(*(nx.ancestors(moves, z) for z in exits))
    stuck = [z for z, k in kinds.items() if k != "exit" and z not in leaving]
    if stuck:
        raise VenueError(
            f"{source}: {named(stuck)} {'has' if len(stuck) == 1 else 'have'} no way to an exit "
            "(nobody walks back into an entrance or out of an exit)"
        )


def venue_from_json(data: Any, source: str = "<memory>") -> Venue:
    """Build a validated venue from node-link JSON data (``edges`` or ``links`` key)."""
    if not isinstance(data, dict) or "nodes" not in data:
        raise VenueError(f"{source}: not a node-link venue (no 'nodes' list)")
    edges_key = "edges" if "edges" in data else "links"
    if edges_key not in data:
        raise VenueError(f"{source}: not a node-link venue (no 'edges' list)")
    for key in ("nodes", edges_key):
        if not isinstance(data[key], list):
            raise VenueError(f"{source}: {key!r} must be a list, got {type(data[key]).__name__}")
    data = {**data, "directed": False, "multigraph": False}

    def is_id(value: Any) -> bool:  # text or a number: not a list, table, bool or null
        return isinstance(value, str | int | float) and not isinstance(value, bool)

    if len(data["nodes"]) > MAX_ZONES:
        raise VenueError(f"{source}: {len(data['nodes'])} zones; a venue may have {MAX_ZONES:,}")
    ids: set[Any] = set()
    as_text: dict[str, Any] = {}
    for i, node in enumerate(data["nodes"]):
        if not isinstance(node, dict) or "id" not in node:
            raise VenueError(f"{source}: node #{i} has no 'id'")
        if not is_id(node["id"]):
            raise VenueError(
                f"{source}: node #{i}: id must be text or a number, got {node['id']!r}"
            )
        if node["id"] in ids:
            raise VenueError(f"{source}: node #{i}: zone {node['id']!r} is defined twice")
        if str(node["id"]) in as_text:  # 1 and "1": one name in a log, two zones here
            raise VenueError(
                f"{source}: node #{i}: zone id {node['id']!r} reads as zone "
                f"{as_text[str(node['id'])]!r} in a log; zone ids must differ as text"
            )
        ids.add(node["id"])
        as_text[str(node["id"])] = node["id"]
    for i, edge in enumerate(data[edges_key]):
        if not isinstance(edge, dict) or "source" not in edge or "target" not in edge:
            raise VenueError(f"{source}: edge #{i} needs 'source' and 'target'")
        for end in ("source", "target"):
            if not is_id(edge[end]):
                raise VenueError(f"{source}: edge #{i}: {end} must be a zone id, got {edge[end]!r}")
    for edge in data[edges_key]:
        for end in ("source", "target"):
            if edge[end] not in ids:
                raise VenueError(
                    f"{source}: edge {edge['source']!r}-{edge['target']!r}: "
                    f"{end} zone {edge[end]!r} does not exist"
                )
    graph = nx.node_link_graph(data, edges=edges_key)
    return Venue(graph, source=source)


def load_venue(name_or_path: str | os.PathLike[str]) -> Venue:
    """Load a built-in venue by name (``concert_hall``, ``expo``, ``festival``) or a JSON file."""
    name = str(name_or_path)
    if name in BUILTIN_VENUES:
        text = resources.files("twin").joinpath("venues", f"{name}.json").read_text("utf-8")
        # The source is the name, so ``load_venue(venue.source)`` loads it again.
        return venue_from_json(json.loads(text), source=name)
    path = Path(name)
    if not path.exists():
        raise VenueError(
            f"{name}: no such venue file, and not a built-in venue ({', '.join(BUILTIN_VENUES)})"
        )
    try:
        data = json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VenueError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise VenueError(f"{path}: not a venue (JSON nested too deeply)") from None
    except OSError as exc:
        raise VenueError(f"{path}: cannot read the venue file ({exc.strerror or exc})") from None
    return venue_from_json(data, source=str(path))
