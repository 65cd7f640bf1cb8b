"""Small venues built in code for the tests."""

from __future__ import annotations

import networkx as nx

from twin import Venue


def line_venue(
    servers: int = 2,
    service_s: float = 3.0,
    room_area: float = 5000.0,
    door_width: float = 20.0,
    door_length: float = 5.0,
) -> Venue:
    """gate (serving) -> room -> exit: the smallest venue the twin can run."""
    g = nx.Graph(name="line")
    g.add_node("gate", kind="entrance", area=500.0, servers=servers, service_s=service_s, x=0, y=0)
    g.add_node("room", kind="hall", area=room_area, x=20, y=0)
    g.add_node("out", kind="exit", area=50.0, x=40, y=0)
    g.add_edge("gate", "room", length=5.0, width=20.0)
    g.add_edge("room", "out", length=door_length, width=door_width)
    return Venue(g, source="line.json")


def bar_venue(bar_servers: int = 2, service_s: float = 60.0) -> Venue:
    """gate -> bar -> exit: every visitor queues at the one bar on its way out."""
    g = nx.Graph(name="one-bar")
    g.add_node("gate", kind="entrance", area=500.0, servers=20, service_s=1.0, x=0, y=0)
    g.add_node("bar", kind="bar", area=400.0, servers=bar_servers, service_s=service_s, x=20, y=0)
    g.add_node("out", kind="exit", area=50.0, x=40, y=0)
    g.add_edge("gate", "bar", length=5.0, width=20.0)
    g.add_edge("bar", "out", length=5.0, width=20.0)
    return Venue(g, source="one-bar.json")
