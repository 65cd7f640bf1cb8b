"""Crowd physics at zone level: walking speed, door flow, queues, levels of service.

- Walking speed follows Weidmann's fundamental diagram.
- A door or corridor passes at most ``Js * width`` persons per second.
- Service zones are FIFO multi-server queues (``erlang_c_wait`` is the M/M/c check).
- Crowding is reported as Fruin level of service (``llm.zones.crowd_level``).
"""

from __future__ import annotations

import math

import numpy as np

#: Free walking speed (m/s), jam density (p/m2) and shape constant of Weidmann (1993).
FREE_SPEED = 1.34
JAM_DENSITY = 5.4
WEIDMANN_GAMMA = 1.913
#: Slowest speed used so that a jammed corridor still drains (m/s).
MIN_SPEED = 0.1
#: Specific flow through a door, persons per metre of width per second.
DEFAULT_JS = 1.3


def weidmann_speed(density: np.ndarray | float) -> np.ndarray:
    """Walking speed (m/s) at a density (p/m2): v = 1.34 (1 - exp(-1.913 (1/rho - 1/5.4)))."""
    rho = np.clip(np.asarray(density, dtype=np.float64), 1e-6, JAM_DENSITY)
    speed = FREE_SPEED * (1.0 - np.exp(-WEIDMANN_GAMMA * (1.0 / rho - 1.0 / JAM_DENSITY)))
    return np.clip(speed, MIN_SPEED, FREE_SPEED)


def door_headway(width: np.ndarray | float, js: float = DEFAULT_JS) -> np.ndarray:
    """Seconds between two persons passing a door of ``width`` metres (1 / (Js w))."""
    return 1.0 / (js * np.asarray(width, dtype=np.float64))


def erlang_c_wait(arrival_rate: float, mean_service_s: float, servers: int) -> float:
    """Mean wait in queue (s) of an M/M/c FIFO queue (Erlang C); inf if unstable."""
    offered = arrival_rate * mean_service_s  # in Erlangs
    utilisation = offered / servers
    if utilisation >= 1.0:
        return math.inf
    terms = sum(offered**k / math.factorial(k) for k in range(servers))
    top = offered**servers / math.factorial(servers) / (1.0 - utilisation)
    p_wait = top / (terms + top)
    return p_wait * mean_service_s / (servers * (1.0 - utilisation))


def schedule_doors(
    edge: np.ndarray, ready_s: np.ndarray, door_free_s: np.ndarray, headway_s: np.ndarray
) -> np.ndarray:
    """Times at which persons pass their doors, first come first through.

    ``edge[i]`` is the door person i wants to pass, ``ready_s[i]`` when they reach it.
    Each door lets one person through every ``headway_s[door]`` seconds, and not before
    ``door_free_s[door]``, which is updated in place. Solves t_k = max(r_k, t_{k-1} + h)
    for every door at once: t_k = k h + max(F, cummax_j<=k (r_j - j h)).
    """
    if len(edge) == 0:
        return np.empty(0)
    order = np.lexsort((ready_s, edge))
    door = edge[order]
    ready = ready_s[order]
    first = np.r_[True, door[1:] != door[:-1]]
    position = np.arange(len(door))
    rank = position - np.maximum.accumulate(np.where(first, position, 0))
    gap = headway_s[door]
    slack = ready - rank * gap
    # Grouped running maximum: lift each door's values above all earlier doors'.
    group = np.cumsum(first) - 1
    lift = (np.abs(slack).max() + door_free_s[door].max() + 1.0) * 4.0
    running = np.maximum.accumulate(slack + group * lift) - group * lift
    passed = rank * gap + np.maximum(door_free_s[door], running)
    passed = np.maximum(passed, ready)  # the lift above costs a few ulps; never pass early
    last = np.r_[door[1:] != door[:-1], True]
    door_free_s[door[last]] = passed[last] + gap[last]
    out = np.empty_like(passed)
    out[order] = passed
    return out
