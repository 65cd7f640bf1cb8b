"""A venue built from a real place's data: its points of interest and a visit log.

    venuetwin venue from-pois POIS.csv --visits LOGS... --out venue.json

A theme park, museum, campus, fair or city that lists its attractions (an id, a position,
a theme) and logs visits (ticket scans, Wi-Fi pings, photos) gets an ordinary venue JSON:

- **places**: one zone per point of interest, named by its id as the log names it, placed
  by latitude/longitude (projected to metres around the centroid) or by x/y in metres;
- **kinds** from each POI's theme (``KIND_RULES``, overridden by ``--kinds THEME=KIND``):
  rides are booths with a queue (``servers`` riders at a time for ``service_s``), shows and
  stadiums stages, restaurants bars, shops shops, parks and squares halls, museums and
  landmarks booths; an unmapped theme is a booth, and named in a warning;
- **the walking network**: each place has a street corner (a ``corridor`` zone at its
  position, walked through, never visited) joined to it by a short path; the corners are
  joined by a Delaunay triangulation pruned of long edges (its minimum spanning tree kept,
  so the network stays connected) plus a straight street for every move the visits show.
  Visitors walk between places along it (lengths from the coordinates) and may choose any
  place next, as a log's visitors can;
- **entrances and exits**: the POIs that the table's themes make gates, else one entrance
  joined to the corners of the places where trajectories begin most (the fewest that
  cover ``COVER`` of the beginnings, or ``--entrances``) and one exit likewise where they
  end. A log that records places only is read by the model with that entrance before each
  trajectory and that exit after it (``llm.data.encode``);
- **service times** from the duration column (a ride's length) where given, else from the
  visits (``SERVICE_QUANTILE`` of the stays stated there), else ``SERVICE_S``; areas,
  widths and servers from ``AREA_M2``, ``SERVERS`` and the widths below;
- **a scenario** beside it: visitors per day, the opening hours (inferred from the visits'
  times of day, or ``--open HH:MM-HH:MM``), length and arrival profile as the log shows
  them (``twin.log_crowd``), no shows.

Everything that was inferred or defaulted is listed in ``Built.summary`` (printed by the
command line), so the user knows what to edit.

Its length: one command's inference (places, kinds, streets, gates, service times, crowd),
each step a function with its defaults at the top, so a user editing the result reads one
file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from llm.logs import Columns, detect_separator, read_logs
from llm.zones import ZONE_KINDS
from twin.log_crowd import OpenHours, crowd_of_log
from twin.scenario import Scenario
from twin.venue import Venue

#: Theme keywords (matched in lower case, in this order) and the kind they make. "ride" is
#: a booth with a queue. A theme none of them matches is a booth, named in a warning.
KIND_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("entrance", "gate", "turnstile"), "entrance"),
    (("exit",), "exit"),
    (("toilet", "restroom", "wc", "washroom"), "restroom"),
    (
        (
            *("restaurant", "food", "cafe", "café", "bar", "pub", "dining", "drink", "snack"),
            *("cafeteria", "canteen", "coffee", "ice cream", "beer", "wine", "eatery"),
        ),
        "bar",
    ),
    (("shop", "retail", "store", "market", "mall", "boutique", "souvenir", "merch"), "shop"),
    # A city's areas before the rides' words ("Waterfront" is no water ride).
    (("waterfront", "harbour", "harbor", "district", "neighbo", "precinct", "street"), "hall"),
    (
        (
            *("ride", "amusement", "coaster", "zoo", "aquarium", "observation", "wheel", "casino"),
            # theme parks' ride categories
            *("thrill", "family", "kid", "water", "flume", "rapids", "slide", "dark ride"),
            *("simulator", "carousel", "spinner", "drop tower"),
        ),
        "ride",
    ),
    (
        (
            *("show", "theatre", "theater", "stage", "concert", "sport", "stadium", "arena"),
            *("amphitheat", "parade", "firework", "performance"),
        ),
        "stage",
    ),
    (("assembly", "cinema", "film", "auditorium"), "stage"),
    (
        ("park", "garden", "beach", "square", "plaza", "reserve", "leisure", "recreation"),
        "hall",
    ),
    (("transport", "station", "terminal", "pier", "marina"), "hall"),
    (("lawn", "quad", "courtyard", "atrium", "lobby", "foyer", "green", "campus"), "hall"),
    (("lounge", "rest area", "seating"), "lounge"),
    (
        (
            "museum",
            "gallery",
            "cultur",
            "structure",
            "landmark",
            "monument",
            "church",
            "worship",
            "heritage",
            "library",
            "exhibit",
            "education",
            "building",
            # museums, fairs, campuses and cities
            *("art", "science", "planetarium", "collection", "pavilion", "stand", "tent"),
            *("exhibitor", "character", "lecture", "classroom", "lab", "faculty", "department"),
            *("histor", "memorial", "tower", "castle", "palace", "bridge", "lookout"),
            "viewpoint",
        ),
        "booth",
    ),
)
#: The kinds a theme may be mapped to: the venue's zone kinds (corridors excepted: the
#: streets are built) and "ride".
MAPPABLE_KINDS: tuple[str, ...] = (*(k for k in ZONE_KINDS if k != "corridor"), "ride")
#: Default area (m2) of a place of each kind.
AREA_M2: dict[str, float] = {
    "entrance": 400.0,
    "exit": 400.0,
    "hall": 2000.0,
    "stage": 3000.0,
    "booth": 600.0,
    "ride": 600.0,
    "bar": 300.0,
    "restroom": 100.0,
    "lounge": 500.0,
    "shop": 400.0,
}
#: Default servers of the kinds that queue (riders at a time for a ride).
SERVERS: dict[str, int] = {"entrance": 50, "ride": 20, "bar": 6, "shop": 6, "restroom": 8}
#: Default service time (s) where neither a duration column nor the visits give one.
SERVICE_S: dict[str, float] = {
    "entrance": 2.0,
    "ride": 300.0,
    "bar": 120.0,
    "shop": 90.0,
    "restroom": 60.0,
}
#: A place's service time from the visits: this quantile of the stays stated there (the
#: queue's service is within most stays).
SERVICE_QUANTILE = 0.25
#: Visits a place needs for its service time to come from them.
MIN_STAYS = 5
STREET_AREA_M2 = 400.0  # a street corner's area
STREET_WIDTH_M = 6.0  # a street's width
PATH_LENGTH_M = 10.0  # from a place to its street corner
PATH_WIDTH_M = 4.0
ACCESS_LENGTH_M = 20.0  # from the entrance or the exit to a corner it joins
ACCESS_WIDTH_M = 10.0
#: A Delaunay edge longer than this many times the median edge is pruned (unless the
#: network needs it to stay connected).
PRUNE_FACTOR = 3.0
#: The synthetic entrance joins the places where this share of trajectories begin (the
#: most frequent first); the exit likewise where they end.
COVER = 0.95
EARTH_RADIUS_M = 6_371_000.0
ENTRANCE, EXIT = "entrance", "exit"


class PoiError(ValueError):
    """A POI table (or its options) that cannot make a venue; the message names the file
    and the column, row or ids at fault."""


@dataclass(frozen=True)
class PoiColumns:
    """Which columns of the POI table hold what (None: detected, or absent)."""

    poi_id: str | None = None
    lat: str | None = None
    lon: str | None = None
    x: str | None = None
    y: str | None = None
    kind: str | None = None
    duration: str | None = None
    duration_unit: str = "min"
    name: str | None = None
    sep: str | None = None


@dataclass
class Built:
    """The venue, its scenario and what was inferred and defaulted."""

    venue: Venue
    scenario: Scenario
    summary: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- reading
def read_pois(path: str | Path, columns: PoiColumns, log_zone_col: str) -> pd.DataFrame:
    """The POI table as ``poi`` (text ids), ``x``/``y`` (metres), ``theme``, ``duration_s``
    (NaN where not given) and ``name``; refusing what cannot be used, by column and row."""
    path = Path(path)
    if not path.exists():
        raise PoiError(f"{path}: no such POI table")
    try:
        raw = pd.read_csv(
            path, sep=columns.sep or detect_separator(path), dtype=str, skipinitialspace=True
        )
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise PoiError(f"{path}: not a readable CSV table ({exc})") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    have = list(raw.columns)

    def pick(given: str | None, guesses: Sequence[str], what: str, required: bool) -> str | None:
        if given is not None:
            if given not in have:
                raise PoiError(
                    f"{path}: column {given!r} ({what}) is missing; the table has "
                    f"{', '.join(map(repr, have))}"
                )
            return given
        lower = {c.lower(): c for c in have}
        for guess in guesses:
            if guess.lower() in lower:
                return lower[guess.lower()]
        if required:
            raise PoiError(
                f"{path}: no {what} column (tried {', '.join(map(repr, guesses))}); name it "
                f"with its option; the table has {', '.join(map(repr, have))}"
            )
        return None

    id_col = pick(columns.poi_id, [log_zone_col, "poiID", "poi_id", "id"], "POI id", True)
    if (columns.x is None) != (columns.y is None):
        raise PoiError(f"{path}: give both --x-col and --y-col, or neither")
    if columns.x is not None:
        x_col, y_col = pick(columns.x, [], "x", True), pick(columns.y, [], "y", True)
        lat_col = lon_col = None
    else:
        lat_col = pick(columns.lat, ["lat", "latitude"], "latitude", True)
        lon_col = pick(columns.lon, ["lon", "long", "lng", "longitude"], "longitude", True)
    kind_col = pick(columns.kind, ["theme", "kind", "category", "type"], "theme", False)
    name_col = pick(columns.name, ["poiName", "name", "title"], "name", False)
    duration_col = pick(columns.duration, [], "duration", False)
    if len(raw) == 0:
        raise PoiError(f"{path}: the POI table has no rows")

    def row_of(i: int) -> int:
        return int(i) + 2  # the file's line: header first, 1-based

    ids = raw[id_col].fillna("").astype(str).str.strip()
    empty = ids == ""
    if empty.any():
        row = row_of(np.flatnonzero(empty)[0])
        raise PoiError(f"{path}: row {row}, column {id_col!r}: empty id")
    twice = ids[ids.duplicated(keep=False)]
    if len(twice):
        first = twice.index[twice == twice.iloc[0]]
        raise PoiError(
            f"{path}: column {id_col!r}: id {twice.iloc[0]!r} is defined twice (rows "
            f"{', '.join(str(row_of(i)) for i in first)}); {twice.nunique()} id(s) repeat"
        )

    def numbers(col: str, low: float, high: float, unit: str) -> np.ndarray:
        values = pd.to_numeric(raw[col].str.strip(), errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(values) | (values < low) | (values > high)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise PoiError(
                f"{path}: row {row_of(i)}, column {col!r}: {raw[col].iloc[i]!r} is not a "
                f"{unit} in [{low:g}, {high:g}] ({int(bad.sum())} such row(s))"
            )
        return values

    if lat_col is not None and lon_col is not None:
        lat = numbers(lat_col, -90.0, 90.0, "latitude (degrees)")
        lon = numbers(lon_col, -180.0, 180.0, "longitude (degrees)")
        x, y = project(lat, lon)
    else:
        assert x_col is not None and y_col is not None
        x = numbers(x_col, -1e7, 1e7, "position (metres)")
        y = numbers(y_col, -1e7, 1e7, "position (metres)")
    frame = pd.DataFrame({"poi": ids.to_numpy(), "x": x, "y": y})
    frame["theme"] = raw[kind_col].fillna("").astype(str).str.strip() if kind_col else ""
    frame["name"] = raw[name_col].fillna("").astype(str).str.strip() if name_col else ""
    if duration_col is not None:
        if columns.duration_unit not in ("min", "s"):
            raise PoiError(f"--duration-unit: 'min' or 's', got {columns.duration_unit!r}")
        given = raw[duration_col].fillna("").astype(str).str.strip() != ""
        seconds = np.full(len(raw), np.nan)
        scale = 60.0 if columns.duration_unit == "min" else 1.0
        unit = "duration (minutes)" if scale == 60.0 else "duration (seconds)"
        if given.any():
            text = raw[duration_col].astype(str).str.strip()
            values = pd.to_numeric(text, errors="coerce").to_numpy(np.float64)
            bad = given.to_numpy() & (~np.isfinite(values) | (values <= 0) | (values > 86400))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise PoiError(
                    f"{path}: row {row_of(i)}, column {duration_col!r}: "
                    f"{raw[duration_col].iloc[i]!r} is not a positive {unit}"
                )
            seconds = np.where(given, values * scale, np.nan)
        frame["duration_s"] = seconds
    else:
        frame["duration_s"] = np.nan
    return frame


def project(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latitude/longitude (degrees) to metres east and north of their centroid
    (equirectangular: within a few metres over a city)."""
    lat0 = math.radians(float(np.mean(lat)))
    rad = np.radians(lon)
    lon_mid = float(np.degrees(np.arctan2(np.sin(rad).mean(), np.cos(rad).mean())))
    dlon = (lon - lon_mid + 180.0) % 360.0 - 180.0
    x = EARTH_RADIUS_M * np.radians(dlon) * math.cos(lat0)
    y = EARTH_RADIUS_M * np.radians(lat - float(np.mean(lat)))
    return x, y


def kind_of_theme(theme: str, overrides: dict[str, str]) -> str | None:
    """The kind a theme maps to (``overrides`` first, by exact theme), or None."""
    if theme in overrides:
        return overrides[theme]
    lower = theme.lower()
    for words, kind in KIND_RULES:
        if any(re.search(rf"\b{re.escape(w)}", lower) for w in words):
            return kind
    return None


def parse_kinds(text: str | None) -> dict[str, str]:
    """``--kinds THEME=KIND,...`` as a dict, refusing unknown kinds by name."""
    if not text:
        return {}
    out: dict[str, str] = {}
    for item in text.split(","):
        if "=" not in item:
            raise PoiError(f"--kinds: {item!r} is not THEME=KIND")
        theme, kind = (s.strip() for s in item.split("=", 1))
        if kind not in MAPPABLE_KINDS:
            raise PoiError(
                f"--kinds: {theme}={kind}: unknown kind {kind!r} "
                f"(known: {', '.join(MAPPABLE_KINDS)})"
            )
        out[theme] = kind
    return out


# ----------------------------------------------------------------------------- building
def build_venue(
    pois_path: str | Path,
    logs: Sequence[str | Path],
    *,
    log_columns: Columns = Columns(),
    poi_columns: PoiColumns = PoiColumns(),
    kinds: dict[str, str] | None = None,
    unvisited: str = "error",
    entrances: Sequence[str] | None = None,
    exits: Sequence[str] | None = None,
    name: str | None = None,
    venue_path: str | None = None,
    hours: OpenHours | None = None,
) -> Built:
    """The venue of a POI table and its visit logs (see the module's docstring).

    ``unvisited``: what to do with POIs no visitor of the logs went to: ``"error"`` (refuse,
    naming them), ``"keep"`` (places nobody visited yet) or ``"drop"``. ``entrances`` /
    ``exits``: POI ids whose corners the entrance / exit join (default: where trajectories
    begin / end most). ``venue_path``: where the venue will be written (the scenario names
    it). ``hours``: the place's opening hours (default: inferred from the visits,
    ``twin.log_crowd.open_hours``)."""
    if unvisited not in ("error", "keep", "drop"):
        raise PoiError(f"--unvisited: 'error', 'keep' or 'drop', got {unvisited!r}")
    pois_path = Path(pois_path)
    pois = read_pois(pois_path, poi_columns, log_columns.zone)
    log_names = ", ".join(map(str, logs))
    frame = read_logs(list(logs), log_columns)
    summary: list[str] = []
    warnings: list[str] = []
    known = set(pois["poi"])
    in_log = set(frame["zone"])
    stray = sorted(in_log - known, key=_natural)
    if stray:
        raise PoiError(
            f"{log_names}: column {log_columns.zone!r}: {len(stray)} POI id(s) the visits "
            f"name are not in {pois_path}: {_some(stray)}"
        )
    unseen = sorted(known - in_log, key=_natural)
    if unseen and unvisited == "error":
        raise PoiError(
            f"{pois_path}: {len(unseen)} POI(s) no visitor of {log_names} went to: "
            f"{_some(unseen)}; pass --unvisited drop to leave them out or --unvisited keep "
            "to keep them as places nobody has visited yet"
        )
    if unseen and unvisited == "drop":
        pois = pois[~pois["poi"].isin(unseen)].reset_index(drop=True)
        summary.append(f"left out {len(unseen)} POI(s) nobody visited: {_some(unseen)}")
    elif unseen:
        summary.append(f"kept {len(unseen)} POI(s) nobody visited: {_some(unseen)}")

    overrides = kinds or {}
    pois["kind"] = [kind_of_theme(t, overrides) for t in pois["theme"]]
    unmapped = sorted(set(pois.loc[pois["kind"].isna(), "theme"]))
    if unmapped:
        warnings.append(
            f"{len(unmapped)} theme(s) map to no kind and were made booths: "
            f"{', '.join(repr(t) for t in unmapped)} (map them with --kinds THEME=KIND)"
        )
    pois["kind"] = pois["kind"].fillna("booth")
    counts = pois["kind"].value_counts()
    summary.append(
        f"{len(pois)} places from {pois_path}: "
        + ", ".join(f"{n} {k}" for k, n in counts.items())
        + (" (kinds from the themes)" if pois["theme"].ne("").any() else " (no theme column)")
    )

    places = frame[frame["zone"].isin(set(pois["poi"]))]
    stays = _stated_stays(places)
    graph = nx.Graph(name=name or pois_path.stem)
    graph.graph["description"] = (
        f"Built by venuetwin venue from-pois from {pois_path.name} and {len(frame):,} visits."
    )
    graph.graph["shows"] = []  # a log states no programme
    service_from = {"duration": 0, "visits": 0, "default": 0}
    for row in pois.itertuples(index=False):
        kind = "booth" if row.kind == "ride" else row.kind
        attrs: dict[str, Any] = {
            "kind": kind,
            "area": AREA_M2[row.kind],
            "x": round(float(row.x), 1),
            "y": round(float(row.y), 1),
        }
        if row.name:
            attrs["label"] = row.name
        if row.theme:
            attrs["theme"] = row.theme
        if row.kind in SERVERS:
            attrs["servers"] = SERVERS[row.kind]
            if np.isfinite(row.duration_s):
                attrs["service_s"], source = float(row.duration_s), "duration"
            elif len(stays.get(row.poi, ())) >= MIN_STAYS:
                attrs["service_s"] = max(
                    1.0, round(float(np.quantile(stays[row.poi], SERVICE_QUANTILE)), 1)
                )
                source = "visits"
            else:
                attrs["service_s"], source = SERVICE_S[row.kind], "default"
            service_from[source] += 1
        graph.add_node(row.poi, **attrs)
        graph.add_node(
            corner(row.poi), kind="corridor", area=STREET_AREA_M2, x=attrs["x"], y=attrs["y"]
        )
        graph.add_edge(row.poi, corner(row.poi), length=PATH_LENGTH_M, width=PATH_WIDTH_M)
    queued = sum(service_from.values())
    if queued:
        summary.append(
            f"service times of {queued} queued place(s): {service_from['duration']} from the "
            f"duration column, {service_from['visits']} from the visits (the "
            f"{SERVICE_QUANTILE:.0%} quantile of stays), {service_from['default']} defaulted "
            f"({', '.join(f'{k} {v:g} s' for k, v in SERVICE_S.items())})"
        )
    summary.append(
        "areas, servers and widths defaulted: "
        + ", ".join(f"{k} {v:g} m2" for k, v in AREA_M2.items())
        + f"; servers {', '.join(f'{k} {v}' for k, v in SERVERS.items())}; streets "
        f"{STREET_WIDTH_M:g} m wide"
    )
    summary.extend(_streets(graph, pois, places))
    summary.extend(_gates(graph, pois, places, entrances, exits, pois_path))
    venue = Venue(graph, source=venue_path or f"{pois_path.stem}.json")
    scenario, figures = _scenario(frame, venue, log_names, venue_path, hours)
    summary.append(figures)
    return Built(venue, scenario, summary, warnings)


def corner(poi: str) -> str:
    """The street corner of a place: a passage zone at its position."""
    return f"street:{poi}"


def _streets(graph: nx.Graph, pois: pd.DataFrame, places: pd.DataFrame) -> list[str]:
    """Join the corners: a Delaunay triangulation pruned of long edges (its minimum
    spanning tree kept) and a street for every move the visits show."""
    ids = pois["poi"].tolist()
    xy = pois[["x", "y"]].to_numpy()
    candidates = _triangulation(xy)
    if not candidates:
        return ["no streets: a single place"]
    length = {e: float(np.hypot(*(xy[e[0]] - xy[e[1]]))) for e in candidates}
    full = nx.Graph()
    full.add_nodes_from(range(len(ids)))
    full.add_weighted_edges_from((u, v, length[(u, v)]) for u, v in candidates)
    tree = {tuple(sorted(e)) for e in nx.minimum_spanning_edges(full, data=False)}
    limit = PRUNE_FACTOR * float(np.median(list(length.values())))
    kept = {e for e in candidates if length[e] <= limit} | tree
    for u, v in kept:
        graph.add_edge(
            corner(ids[u]), corner(ids[v]), length=max(length[(u, v)], 1.0), width=STREET_WIDTH_M
        )
    moves = _moves(places)
    index = {p: i for i, p in enumerate(ids)}
    added = 0
    for a, b in moves:
        if a in index and b in index and not graph.has_edge(corner(a), corner(b)):
            d = float(np.hypot(*(xy[index[a]] - xy[index[b]])))
            graph.add_edge(corner(a), corner(b), length=max(d, 1.0), width=STREET_WIDTH_M)
            added += 1
    return [
        f"streets: {len(kept)} of {len(candidates)} Delaunay edges kept (longer than "
        f"{limit:,.0f} m pruned unless needed to connect), {added} more for moves the visits "
        f"show; lengths from the coordinates"
    ]


def _triangulation(xy: np.ndarray) -> set[tuple[int, int]]:
    """Edges (i < j) of the Delaunay triangulation of the points, coincident points joined,
    and a chain along the main axis when the points are too few or on a line."""
    n = len(xy)
    if n < 2:
        return set()
    edges: set[tuple[int, int]] = set()
    unique, first, inverse = np.unique(xy, axis=0, return_index=True, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    for i in range(n):  # coincident points: joined to the first at their position
        if first[inverse[i]] != i:
            edges.add(tuple(sorted((int(first[inverse[i]]), i))))
    if len(unique) >= 3:
        from scipy.spatial import Delaunay, QhullError

        try:
            tri = Delaunay(unique)
            for simplex in tri.simplices:
                for a, b in ((0, 1), (1, 2), (0, 2)):
                    u, v = int(first[simplex[a]]), int(first[simplex[b]])
                    edges.add((min(u, v), max(u, v)))
            # Points Qhull set aside (nearly coincident) join their nearest neighbour.
            used = {int(first[i]) for i in np.unique(tri.simplices)}
            for i in (int(first[k]) for k in range(len(unique))):
                if i not in used:
                    d = np.hypot(*(xy - xy[i]).T)
                    d[i] = np.inf
                    j = int(np.argmin(d))
                    edges.add((min(i, j), max(i, j)))
            return edges
        except QhullError:
            pass  # all on a line: chain them below
    centred = unique - unique.mean(axis=0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0] if len(unique) > 1 else np.ones(2)
    order = np.argsort(centred @ axis)
    for a, b in zip(order[:-1], order[1:], strict=True):
        u, v = int(first[a]), int(first[b])
        edges.add((min(u, v), max(u, v)))
    return edges


def _moves(places: pd.DataFrame) -> set[tuple[str, str]]:
    """Consecutive places of a trajectory (a move the visits show), both ways."""
    zone = places["zone"].to_numpy()
    same = places["trajectory"].to_numpy()[1:] == places["trajectory"].to_numpy()[:-1]
    pairs = zip(zone[:-1][same], zone[1:][same], strict=True)
    return {(a, b) for a, b in pairs if a != b}


def _gates(
    graph: nx.Graph,
    pois: pd.DataFrame,
    places: pd.DataFrame,
    entrances: Sequence[str] | None,
    exits: Sequence[str] | None,
    pois_path: Path,
) -> list[str]:
    """The entrance and the exit: the table's own gates if its themes name some, else one
    each joined to the corners of the places where trajectories begin / end most."""
    lines = []
    kinds = dict(zip(pois["poi"], pois["kind"], strict=True))
    for kind, given, end in ((ENTRANCE, entrances, "first"), (EXIT, exits, "last")):
        own = [p for p, k in kinds.items() if k == kind]
        if own and not given:
            lines.append(f"{kind}s: the table's {len(own)} ({_some(own)})")
            continue
        share = places.groupby("trajectory")["zone"].agg(end).value_counts(normalize=True)
        if given:
            missing = [p for p in given if p not in kinds]
            if missing:
                raise PoiError(
                    f"--{kind}s: POI id(s) {_some(missing)} are not places of {pois_path}"
                )
            joined = list(dict.fromkeys(given))
            how = "as given"
        else:
            cover = np.cumsum(share.to_numpy())
            count = int(np.searchsorted(cover, COVER - 1e-9) + 1) if len(share) else 0
            joined = list(share.index[: max(count, 1)]) if len(share) else [pois["poi"].iloc[0]]
            verb = "begin" if kind == ENTRANCE else "end"
            how = f"where {share[joined].sum():.0%} of the trajectories {verb}"
        name = kind if kind not in graph else f"{kind}:gate"
        xy = np.array([[graph.nodes[p]["x"], graph.nodes[p]["y"]] for p in joined])
        gate = {"servers": SERVERS[kind], "service_s": SERVICE_S[kind]} if kind in SERVERS else {}
        graph.add_node(
            name,
            kind=kind,
            area=AREA_M2[kind],
            x=round(float(xy[:, 0].mean()), 1),
            y=round(float(xy[:, 1].mean()) + (15.0 if kind == EXIT else 0.0), 1),
            **gate,
        )
        for p in joined:
            graph.add_edge(name, corner(p), length=ACCESS_LENGTH_M, width=ACCESS_WIDTH_M)
        lines.append(
            f"{kind} {name!r} joined to the corners of {len(joined)} place(s) {how}: "
            f"{_some(joined)}"
        )
    return lines


def _stated_stays(places: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each place's stays the visits state (positive dwell), in seconds."""
    dwell = pd.to_numeric(places["dwell_s"], errors="coerce")
    positive = dwell > 0
    return {z: g.to_numpy(np.float64) for z, g in dwell[positive].groupby(places["zone"][positive])}


def _scenario(
    frame: pd.DataFrame,
    venue: Venue,
    log_names: str,
    venue_path: str | None,
    hours: OpenHours | None,
) -> tuple[Scenario, str]:
    """The crowd the log shows, as a scenario on the new venue (no shows)."""
    crowd = crowd_of_log(frame, venue, log_names, hours)
    changes = crowd.changes
    trips = frame.groupby("trajectory")
    span = (trips["timestamp"].max() - trips["timestamp"].min()).dt.total_seconds()
    stay = span + trips["dwell_s"].last()  # from the first visit to the end of the last
    visits = trips.size()
    scenario = Scenario(
        name=f"{venue.name} as its log shows it",
        venue=venue_path or venue,
        shows=[],
        **changes,
    )
    outside = (
        f", {crowd.outside_hours_share:.0%} of the visits outside them"
        if crowd.outside_hours_share >= 0.005
        else ""
    )
    how = "as given" if hours else "inferred from the visits' times of day"
    figures = (
        f"open {crowd.hours.text()} ({how}{outside}; --open HH:MM-HH:MM sets them); "
        "crowd from the visits: "
        f"{changes['avatars']:,} visitor(s) a day, opening {changes['opening'][11:16]}, "
        f"{changes['hours']:g} h, arrivals over the first {changes['arrival_window_h']:.2f} h; "
        f"mean stay {stay.mean() / 60:.0f} min, {visits.mean():.2f} visits per trajectory"
    )
    return scenario, figures


def _natural(text: str) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


def _some(items: Sequence[str], shown: int = 8) -> str:
    items = list(items)
    head = ", ".join(map(repr, items[:shown]))
    return head + (f" and {len(items) - shown} more" if len(items) > shown else "")


__all__ = ["Built", "PoiColumns", "PoiError", "build_venue", "read_pois", "KIND_RULES"]
