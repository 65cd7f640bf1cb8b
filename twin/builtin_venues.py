"""The three built-in venues, built in code and written as node-link JSON.

``concert_hall`` (a 2,500-person hall with a foyer, bar, merch stand and one auditorium),
``expo`` (a trade-fair hall with aisles of booths, a talks stage and cafés) and
``festival`` (an open-air site with four stages, bars, food stalls and restroom blocks)
are laid out on a metre grid (``x`` east, ``y`` north) so that a map drawn from them reads
as a floor plan. Edge lengths are the straight-line distances between zone centres.

Run ``python -m twin.builtin_venues`` to (re)write ``twin/venues/*.json``.
"""

from __future__ import annotations

import math
from pathlib import Path

import networkx as nx

from twin.venue import Venue

#: Folder the built-in venue files live in (package data of ``twin``).
VENUES_DIR = Path(__file__).resolve().parent / "venues"

#: Persons per square metre of a standing crowd in front of a stage (explicit capacity).
STAGE_DENSITY = 3.0

# A zone row: name, kind, area (m2), x, y, and extra attributes (servers, service_s,
# capacity). An edge row: zone, zone, width (m).
Zone = tuple[str, str, float, float, float, dict[str, float]]
Edge = tuple[str, str, float]


def _serve(servers: int, service_s: float) -> dict[str, float]:
    """Attributes of a zone that serves through ``servers`` parallel FIFO servers."""
    return {"servers": servers, "service_s": service_s}


def _stage(area: float) -> dict[str, float]:
    """Explicit capacity of a stage field: a dense standing crowd."""
    return {"capacity": int(area * STAGE_DENSITY)}


def build(name: str, description: str, zones: list[Zone], edges: list[Edge]) -> nx.Graph:
    """A venue graph from zone and edge rows; edge lengths are centre-to-centre distances."""
    graph = nx.Graph(name=name, description=description)
    for zone, kind, area, x, y, extra in zones:
        if zone in graph:
            raise ValueError(f"{name}: zone {zone!r} is defined twice")
        graph.add_node(zone, kind=kind, area=float(area), x=float(x), y=float(y), **extra)
    for u, v, width in edges:
        for end in (u, v):
            if end not in graph:
                raise ValueError(f"{name}: edge {u!r}-{v!r} names unknown zone {end!r}")
        if graph.has_edge(u, v):
            raise ValueError(f"{name}: edge {u!r}-{v!r} is defined twice")
        a, b = graph.nodes[u], graph.nodes[v]
        length = max(1.0, round(math.hypot(a["x"] - b["x"], a["y"] - b["y"]), 1))
        graph.add_edge(u, v, length=length, width=float(width))
    return graph


# --------------------------------------------------------------------------- concert hall
def concert_hall() -> nx.Graph:
    """A 2,500-person concert hall: two ticket gates, a foyer, one auditorium (90 x 80 m)."""
    zones: list[Zone] = [
        ("gate_main", "entrance", 200, 30, 2, _serve(4, 8)),
        ("gate_side", "entrance", 120, 70, 18, _serve(3, 10)),
        ("foyer", "hall", 700, 40, 18, {}),
        ("foyer_bar", "bar", 250, 12, 24, _serve(12, 40)),
        ("merch", "shop", 70, 58, 34, _serve(3, 60)),
        ("corridor_west", "corridor", 150, 22, 42, {}),
        ("corridor_east", "corridor", 150, 62, 44, {}),
        ("restrooms_west", "restroom", 110, 6, 44, _serve(14, 75)),
        ("restrooms_east", "restroom", 110, 80, 46, _serve(14, 75)),
        ("main_hall", "stage", 1200, 40, 70, _stage(1200)),
        ("hall_bar", "bar", 150, 8, 72, _serve(8, 40)),
        ("exit_front", "exit", 40, 50, 2, {}),
        ("exit_rear", "exit", 30, 68, 82, {}),
    ]
    edges: list[Edge] = [
        ("gate_main", "foyer", 6),
        ("gate_side", "foyer", 4),
        ("foyer", "foyer_bar", 6),
        ("foyer", "merch", 4),
        ("foyer", "corridor_west", 5),
        ("foyer", "corridor_east", 5),
        ("foyer", "exit_front", 6),
        ("foyer_bar", "corridor_west", 3),
        ("corridor_west", "restrooms_west", 2.5),
        ("corridor_east", "restrooms_east", 2.5),
        ("corridor_west", "main_hall", 4),
        ("corridor_east", "main_hall", 4),
        ("main_hall", "exit_rear", 3),
        ("main_hall", "hall_bar", 5),
        ("corridor_west", "hall_bar", 3),
    ]
    return build(
        "concert_hall",
        "A 2,500-person concert hall: two ticket gates into a foyer with a bar and a merch "
        "stand; two corridors with restrooms lead to a 1,200 m2 standing auditorium with its "
        "own bar.",
        zones,
        edges,
    )


# --------------------------------------------------------------------------- expo
def expo() -> nx.Graph:
    """A trade-fair hall (200 x 130 m): registration, a promenade, three aisles of booths."""
    zones: list[Zone] = [
        ("entrance_north", "entrance", 300, 100, 132, _serve(6, 8)),
        ("entrance_west", "entrance", 200, -8, 88, _serve(4, 8)),
        ("entrance_east", "entrance", 200, 208, 88, _serve(4, 8)),
        ("registration", "hall", 1200, 100, 110, {}),
        ("expo_shop", "shop", 180, 142, 112, _serve(20, 40)),
        ("restrooms_west", "restroom", 220, 30, 112, _serve(32, 75)),
        ("restrooms_east", "restroom", 220, 170, 112, _serve(32, 75)),
        ("promenade_west", "corridor", 480, 40, 88, {}),
        ("promenade_center", "corridor", 480, 100, 88, {}),
        ("promenade_east", "corridor", 480, 160, 88, {}),
        ("aisle_a", "corridor", 360, 40, 55, {}),
        ("aisle_b", "corridor", 360, 100, 55, {}),
        ("aisle_c", "corridor", 360, 160, 55, {}),
        ("back_aisle_west", "corridor", 480, 40, 22, {}),
        ("back_aisle_center", "corridor", 480, 100, 22, {}),
        ("back_aisle_east", "corridor", 480, 160, 22, {}),
        ("booth_a1", "booth", 250, 25, 70, {}),
        ("booth_a2", "booth", 200, 55, 70, {}),
        ("booth_a3", "booth", 300, 25, 40, {}),
        ("booth_a4", "booth", 150, 55, 40, {}),
        ("booth_b1", "booth", 375, 85, 70, {}),
        ("booth_b2", "booth", 225, 115, 70, {}),
        ("booth_b3", "booth", 150, 85, 40, {}),
        ("booth_b4", "booth", 275, 115, 40, {}),
        ("booth_c1", "booth", 200, 145, 70, {}),
        ("booth_c2", "booth", 350, 175, 70, {}),
        ("booth_c3", "booth", 175, 145, 40, {}),
        ("booth_c4", "booth", 250, 175, 40, {}),
        ("booth_gallery_west", "booth", 375, 70, 100, {}),
        ("booth_gallery_east", "booth", 375, 130, 100, {}),
        ("talk_stage", "stage", 1000, 100, 4, _stage(1000)),
        ("cafe_west", "bar", 600, 18, 4, _serve(24, 40)),
        ("cafe_east", "bar", 600, 184, 4, _serve(24, 40)),
        ("lounge", "lounge", 600, 145, 2, {}),
        ("exit_north", "exit", 60, 70, 130, {}),
        ("exit_southwest", "exit", 60, -6, 22, {}),
        ("exit_southeast", "exit", 60, 206, 22, {}),
    ]
    edges: list[Edge] = [
        ("entrance_north", "registration", 8),
        ("entrance_west", "promenade_west", 5),
        ("entrance_east", "promenade_east", 5),
        ("registration", "exit_north", 6),
        ("registration", "expo_shop", 4),
        ("registration", "promenade_center", 10),
        ("registration", "booth_gallery_west", 4),
        ("registration", "booth_gallery_east", 4),
        ("promenade_west", "promenade_center", 8),
        ("promenade_center", "promenade_east", 8),
        ("promenade_west", "restrooms_west", 3),
        ("promenade_east", "restrooms_east", 3),
        ("promenade_center", "booth_gallery_west", 4),
        ("promenade_center", "booth_gallery_east", 4),
        ("promenade_west", "aisle_a", 6),
        ("promenade_center", "aisle_b", 6),
        ("promenade_east", "aisle_c", 6),
        ("aisle_a", "back_aisle_west", 6),
        ("aisle_b", "back_aisle_center", 6),
        ("aisle_c", "back_aisle_east", 6),
        ("back_aisle_west", "back_aisle_center", 8),
        ("back_aisle_center", "back_aisle_east", 8),
        ("aisle_a", "booth_a1", 4),
        ("aisle_a", "booth_a2", 3),
        ("aisle_a", "booth_a3", 4),
        ("aisle_a", "booth_a4", 3),
        ("aisle_b", "booth_b1", 5),
        ("aisle_b", "booth_b2", 3),
        ("aisle_b", "booth_b3", 3),
        ("aisle_b", "booth_b4", 4),
        ("aisle_c", "booth_c1", 3),
        ("aisle_c", "booth_c2", 5),
        ("aisle_c", "booth_c3", 3),
        ("aisle_c", "booth_c4", 4),
        ("back_aisle_west", "cafe_west", 5),
        ("back_aisle_center", "talk_stage", 10),
        ("back_aisle_east", "lounge", 6),
        ("back_aisle_east", "cafe_east", 5),
        ("back_aisle_west", "exit_southwest", 4),
        ("back_aisle_east", "exit_southeast", 4),
    ]
    return build(
        "expo",
        "A 200 x 130 m trade-fair hall: three badge-scan entrances, a registration plaza, a "
        "promenade feeding three aisles of booths, a talks stage, two cafés and a lounge.",
        zones,
        edges,
    )


# --------------------------------------------------------------------------- festival
def festival() -> nx.Graph:
    """An open-air festival site (about 620 x 440 m) for 30,000 visitors and four stages."""
    zones: list[Zone] = [
        # Gates (bag check and wristband scan) and exits on the fence line.
        ("gate_north", "entrance", 1500, 300, 420, _serve(12, 12)),
        ("gate_west", "entrance", 1200, -15, 210, _serve(10, 12)),
        ("gate_east", "entrance", 1200, 615, 210, _serve(10, 12)),
        ("gate_south", "entrance", 1000, 300, -15, _serve(8, 12)),
        ("exit_north", "exit", 300, 220, 415, {}),
        ("exit_east", "exit", 300, 610, 150, {}),
        ("exit_south", "exit", 300, 360, -12, {}),
        # Plazas and the central square.
        ("plaza_north", "hall", 2400, 300, 375, {}),
        ("plaza_west", "hall", 1800, 30, 210, {}),
        ("plaza_east", "hall", 1800, 570, 210, {}),
        ("plaza_south", "hall", 2000, 300, 30, {}),
        ("central_square", "hall", 3600, 300, 210, {}),
        ("food_court", "hall", 3000, 300, 135, {}),
        # Paths.
        ("path_north", "corridor", 960, 300, 295, {}),
        ("path_south", "corridor", 600, 300, 82, {}),
        ("path_west_inner", "corridor", 900, 215, 210, {}),
        ("path_west_outer", "corridor", 900, 120, 210, {}),
        ("path_east_inner", "corridor", 900, 385, 210, {}),
        ("path_east_outer", "corridor", 900, 480, 210, {}),
        ("path_northwest", "corridor", 800, 190, 375, {}),
        ("path_northeast", "corridor", 800, 410, 375, {}),
        ("path_southwest", "corridor", 800, 190, 35, {}),
        ("path_southeast", "corridor", 800, 410, 35, {}),
        # Stage fields.
        ("main_stage", "stage", 12000, 460, 295, _stage(12000)),
        ("second_stage", "stage", 5000, 140, 295, _stage(5000)),
        ("tent_stage", "stage", 2000, 140, 115, _stage(2000)),
        ("dance_stage", "stage", 3000, 460, 120, _stage(3000)),
        # Bars.
        ("bar_north", "bar", 500, 355, 350, _serve(16, 30)),
        ("bar_main_left", "bar", 900, 385, 275, _serve(30, 30)),
        ("bar_main_right", "bar", 900, 535, 290, _serve(30, 30)),
        ("bar_second", "bar", 600, 200, 290, _serve(20, 30)),
        ("bar_central", "bar", 600, 345, 245, _serve(20, 30)),
        ("bar_tent", "bar", 500, 195, 120, _serve(16, 30)),
        ("bar_dance", "bar", 600, 400, 125, _serve(20, 30)),
        ("bar_west", "bar", 500, 50, 255, _serve(16, 30)),
        # Restroom blocks (cabins and urinal troughs).
        ("restrooms_north", "restroom", 500, 240, 340, _serve(50, 75)),
        ("restrooms_main", "restroom", 800, 530, 235, _serve(80, 75)),
        ("restrooms_west", "restroom", 400, 55, 160, _serve(40, 75)),
        ("restrooms_central", "restroom", 500, 255, 250, _serve(50, 75)),
        ("restrooms_south", "restroom", 400, 250, 65, _serve(40, 75)),
        ("restrooms_dance", "restroom", 400, 530, 150, _serve(40, 75)),
        # Food stalls.
        ("food_burger", "shop", 150, 250, 150, _serve(5, 60)),
        ("food_pizza", "shop", 150, 350, 150, _serve(5, 60)),
        ("food_asian", "shop", 150, 255, 105, _serve(5, 60)),
        ("food_vegan", "shop", 150, 345, 105, _serve(5, 60)),
        ("food_north", "shop", 120, 365, 392, _serve(4, 60)),
        ("food_west", "shop", 120, 85, 250, _serve(4, 60)),
        ("food_main", "shop", 150, 540, 340, _serve(5, 60)),
        ("food_dance", "shop", 120, 505, 175, _serve(4, 60)),
        # Merchandise, lockers, booths and chill-out areas.
        ("merch_north", "shop", 150, 255, 395, _serve(4, 75)),
        ("merch_main", "shop", 150, 395, 345, _serve(4, 75)),
        ("merch_central", "shop", 120, 345, 175, _serve(3, 75)),
        ("lockers", "shop", 150, 250, 20, _serve(4, 45)),
        ("info_point", "booth", 60, 330, 405, {}),
        ("sponsor_village", "booth", 400, 255, 175, {}),
        ("craft_market", "booth", 600, 215, 160, {}),
        ("chill_out", "lounge", 1500, 95, 45, {}),
        ("vip_lounge", "lounge", 800, 520, 385, {}),
        ("shade_garden", "lounge", 1200, 520, 45, {}),
        ("hammock_forest", "lounge", 1000, 80, 385, {}),
    ]
    edges: list[Edge] = [
        # Gates and exits.
        ("gate_north", "plaza_north", 12),
        ("gate_west", "plaza_west", 10),
        ("gate_east", "plaza_east", 10),
        ("gate_south", "plaza_south", 8),
        ("plaza_north", "exit_north", 10),
        ("plaza_east", "exit_east", 10),
        ("plaza_south", "exit_south", 10),
        # The cross of main paths.
        ("plaza_north", "path_north", 12),
        ("path_north", "central_square", 12),
        ("central_square", "food_court", 12),
        ("food_court", "path_south", 10),
        ("path_south", "plaza_south", 10),
        ("central_square", "path_west_inner", 12),
        ("path_west_inner", "path_west_outer", 12),
        ("path_west_outer", "plaza_west", 12),
        ("central_square", "path_east_inner", 12),
        ("path_east_inner", "path_east_outer", 12),
        ("path_east_outer", "plaza_east", 12),
        # Side paths to the stages.
        ("plaza_north", "path_northwest", 8),
        ("plaza_north", "path_northeast", 8),
        ("plaza_south", "path_southwest", 8),
        ("plaza_south", "path_southeast", 8),
        ("path_northwest", "second_stage", 10),
        ("path_west_outer", "second_stage", 12),
        ("path_west_inner", "second_stage", 10),
        ("path_northeast", "main_stage", 12),
        ("path_east_outer", "main_stage", 12),
        ("path_east_inner", "main_stage", 12),
        ("path_west_outer", "tent_stage", 8),
        ("path_southwest", "tent_stage", 8),
        ("path_east_outer", "dance_stage", 10),
        ("path_southeast", "dance_stage", 10),
        # Bars.
        ("plaza_north", "bar_north", 6),
        ("main_stage", "bar_main_left", 10),
        ("path_east_inner", "bar_main_left", 6),
        ("main_stage", "bar_main_right", 10),
        ("second_stage", "bar_second", 8),
        ("path_west_inner", "bar_second", 6),
        ("central_square", "bar_central", 8),
        ("tent_stage", "bar_tent", 6),
        ("dance_stage", "bar_dance", 8),
        ("plaza_west", "bar_west", 6),
        # Restrooms.
        ("plaza_north", "restrooms_north", 6),
        ("path_north", "restrooms_north", 4),
        ("main_stage", "restrooms_main", 8),
        ("path_east_outer", "restrooms_main", 6),
        ("plaza_west", "restrooms_west", 5),
        ("path_west_outer", "restrooms_west", 4),
        ("central_square", "restrooms_central", 6),
        ("path_south", "restrooms_south", 5),
        ("plaza_south", "restrooms_south", 5),
        ("dance_stage", "restrooms_dance", 6),
        ("path_east_outer", "restrooms_dance", 5),
        # Food.
        ("food_court", "food_burger", 5),
        ("food_court", "food_pizza", 5),
        ("food_court", "food_asian", 5),
        ("food_court", "food_vegan", 5),
        ("path_south", "food_asian", 3),
        ("path_south", "food_vegan", 3),
        ("plaza_north", "food_north", 4),
        ("plaza_west", "food_west", 4),
        ("path_west_outer", "food_west", 4),
        ("main_stage", "food_main", 5),
        ("dance_stage", "food_dance", 4),
        ("path_east_outer", "food_dance", 4),
        # Merch, lockers, booths, lounges.
        ("plaza_north", "merch_north", 5),
        ("main_stage", "merch_main", 5),
        ("path_northeast", "merch_main", 5),
        ("central_square", "merch_central", 5),
        ("plaza_south", "lockers", 4),
        ("plaza_north", "info_point", 3),
        ("central_square", "sponsor_village", 8),
        ("food_court", "sponsor_village", 6),
        ("path_west_inner", "craft_market", 8),
        ("food_court", "craft_market", 6),
        ("path_southwest", "chill_out", 6),
        ("tent_stage", "chill_out", 4),
        ("main_stage", "vip_lounge", 4),
        ("path_northeast", "vip_lounge", 4),
        ("path_southeast", "shade_garden", 6),
        ("dance_stage", "shade_garden", 5),
        ("path_northwest", "hammock_forest", 5),
        ("second_stage", "hammock_forest", 4),
    ]
    return build(
        "festival",
        "An open-air festival site for 30,000 visitors: four gates into plazas, a cross of "
        "main paths through a central square and food court, four stages (main field "
        "12,000 m2), eight bars, six restroom blocks, food stalls, merch and chill-out areas.",
        zones,
        edges,
    )


BUILDERS = {"concert_hall": concert_hall, "expo": expo, "festival": festival}


def main(folder: str | Path = VENUES_DIR) -> list[Path]:
    """Validate and write every built-in venue to ``folder``; return the paths written."""
    written = []
    for name, make in BUILDERS.items():
        path = Venue(make(), source=f"{name}.json").save(Path(folder) / f"{name}.json")
        written.append(path)
        print(f"wrote {path}")
    return written


if __name__ == "__main__":
    main()
