"""The crowd as arrays: every avatar's phase, place and next event, advanced event by event.

Each avatar is a row. Its ``phase`` says what it is doing and ``t_next`` when that ends:

- ``PENDING``  not arrived yet; ``t_next`` is its arrival time.
- ``IN_ZONE``  queueing, being served or dwelling in ``zone``; ``t_next`` ends the visit.
- ``BLOCKED``  wants to move to ``dest`` but it is full; retries every step, re-decides
               after ``patience_s``.
- ``LEAVING``  waiting at the door to ``dest``; ``t_next`` is when it passes.
- ``WALKING``  on the edge to ``dest``; ``t_next`` is when it gets there.
- ``LEFT``     gone.

Event times are exact (continuous); a step only decides which events are handled together.
``process(idx, t_end)`` handles the due events of the given avatars; the model calls it once
per step for all due avatars (arrays), or once per avatar (Mesa's agent-by-agent stepping).
Service zones are FIFO multi-server queues: a visitor's start of service is fixed when it
joins (the earliest free server, never before those ahead of it), so waits are exact.

Its length: the crowd's event loop over arrays (arrive, enter, queue, decide, pass doors,
walk), which must be read in order, and the walks of avatars whose policy chooses places
(``Walks``), so that a decision is read in one file before its policy.
"""

from __future__ import annotations

import heapq

import numpy as np

from agents.avatar import Phase
from agents.needs import Needs
from agents.policy import TRANSIT_DWELL_S, Decision, Layout, Observation, Policy
from llm.causal import last_served_by_zone
from llm.sampling import choose, uniforms
from llm.zones import crowd_level, queue_wait
from twin import physics
from twin.satisfaction import Satisfaction
from twin.visit_log import VisitLog

PENDING, IN_ZONE, BLOCKED, LEAVING, WALKING, LEFT = (int(p) for p in Phase)
GATE_DRAW, SERVICE_DRAW = 101, 102
#: The venue is cleared this long before the end of the event.
CLEARING_S = 900.0
#: Zones remembered per avatar for the policies' observation.
HISTORY = 16


class Walks:
    """Avatars of a policy that chooses places, walking there through passages.

    The learnt policies choose the next *place*, as their training tokens do: corridors are
    walked through, not visited (``llm.zones.PASSAGE_KINDS``). So heading for the café at
    the far end of the hall is one choice made where the visitor stands, with every queue
    in view, not several hops that must each keep to it. The twin moves avatars one zone at
    a time, so between two places an avatar crosses passages on its own, by the venue's
    walks between places (``Venue.place_routes``, in the ``Layout``): its policy is asked
    again at the place, or on the way if it is refused or, at a door, thinks again."""

    def __init__(self, n_avatars: int, layout: Layout) -> None:
        self.hop, self.passage = layout.place_hop, layout.passage
        self.goal = np.full(n_avatars, -1, dtype=np.int64)  # the place each is heading for
        self.stay_s = np.zeros(n_avatars)  # and the stay it planned there

    def view(
        self, idx: np.ndarray, zone: np.ndarray, legal: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """What the policy sees of avatars ``idx`` in ``zone`` with ``legal`` (B, Z) moves:
        ``places`` (B, Z), those they can head for now (whose first step is open), and
        ``walking`` (B,), those in a passage on their way whose next step is open."""
        hop = self.hop[zone]
        places = np.take_along_axis(legal, np.maximum(hop, 0), axis=1) & (hop >= 0)
        goal = self.goal[idx]
        step = hop[np.arange(len(idx)), np.maximum(goal, 0)]
        walking = (goal >= 0) & self.passage[zone] & (step >= 0)
        walking &= legal[np.arange(len(idx)), np.maximum(step, 0)]
        return places, walking

    def head_for(
        self, idx: np.ndarray, zone: np.ndarray, place: np.ndarray, stay_s: np.ndarray
    ) -> Decision:
        """Avatars ``idx`` head for ``place`` (staying ``stay_s`` there): their next step
        and its stay, the planned one on the step into the place, a passing one in a
        passage. Where ``place`` is -1 (none open), or the avatar's own zone with no walk
        back to it, it stays on."""
        go = place >= 0
        a, z, p = idx[go], zone[go], place[go]
        self.goal[a], self.stay_s[a] = p, stay_s[go]
        step = self.hop[z, p]
        nowhere = step < 0
        self.goal[a[nowhere]] = -1
        next_zone = zone.astype(np.int64)
        dwell = np.full(len(idx), TRANSIT_DWELL_S)
        next_zone[go] = np.where(nowhere, z, step)
        dwell[go] = np.where(nowhere | (step == p), stay_s[go], TRANSIT_DWELL_S)
        return Decision(next_zone=next_zone, dwell_s=dwell)


class Crowd:
    """All avatars of one run as arrays, and the physics that moves them."""

    def __init__(
        self,
        layout: Layout,
        *,
        arrival_s: np.ndarray,
        servers: np.ndarray,
        service_s: np.ndarray,
        capacity: np.ndarray,
        open_gates: np.ndarray,
        edge_id: np.ndarray,
        edge_length: np.ndarray,
        edge_width: np.ndarray,
        js: float,
        patience_s: float,
        needs: Needs,
        policy: Policy,
        rng: np.random.Generator,
        log: VisitLog | None = None,
    ) -> None:
        n, z = len(arrival_s), layout.n_zones
        self.layout, self.needs, self.policy = layout, needs, policy
        # Common random numbers: a visitor's gate and service times depend on (seed,
        # avatar, visit) only, so runs that differ in policy or levers differ for that reason.
        self.seed = int(rng.integers(2**62))
        self.patience_s = patience_s
        self.clearing_s = layout.closing_s - CLEARING_S
        self.dwell_from = getattr(policy, "dwell_from", "service_end")
        self.walks = Walks(n, layout) if getattr(policy, "chooses", "zone") == "place" else None
        self.kinds = np.array(layout.kinds)
        self.is_exit = self.kinds == "exit"
        self.capacity = np.where(self.is_exit, np.iinfo(np.int64).max // 4, capacity)
        self.capacity[self.kinds == "entrance"] = np.iinfo(np.int64).max // 4
        self.service_s = service_s
        self.is_service = servers > 0
        self.servers_free = [[0.0] * int(c) for c in servers]  # heaps of free times
        self.open_gates = open_gates
        self.legal_moves = layout.adjacency.copy()
        self.edge_id, self.edge_length, self.edge_width = edge_id, edge_length, edge_width
        self.headway = physics.door_headway(edge_width, js)
        self.door_free = np.zeros(len(edge_length))
        self.on_edge = np.zeros(len(edge_length), dtype=np.int64)
        # --- per avatar
        self.phase = np.full(n, PENDING, dtype=np.int8)
        self.t_next = arrival_s.astype(np.float64).copy()
        self.zone = np.full(n, -1, dtype=np.int64)
        self.dest = np.full(n, -1, dtype=np.int64)
        self.edge = np.full(n, -1, dtype=np.int64)
        self.entered_s = np.zeros(n)
        self.entry_occupancy = np.zeros(n, dtype=np.int32)
        self.service_start = np.full(n, -np.inf)
        self.planned_dwell = np.zeros(n)
        self.decided_s = np.zeros(n)  # when each avatar last chose where to go next
        self.blocked_since = np.full(n, np.inf)
        self.refused = np.full(n, -1, dtype=np.int64)
        self.waited_s = np.zeros(n)
        self.ring = np.full((n, HISTORY), -1, dtype=np.int16)
        self.visits = np.zeros(n, dtype=np.int64)
        # --- per zone
        self.occupancy = np.zeros(z, dtype=np.int64)
        self.inbound = np.zeros(z, dtype=np.int64)
        #: The latest start of service handed out by each zone (its queue's tail).
        self.last_service_start = np.full(z, -np.inf)
        self.satisfaction = Satisfaction(layout, needs, n)
        self.log = log or VisitLog()  # the completed visits
        #: (zone, start of service, wait) of every visitor who joined a queue, as chunks
        self.waits: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        #: The tails as the current step began, and the first chunk of ``waits`` joined in
        #: it: a decider's wait counts only those who joined strictly before its moment
        #: (``queue_waits``), as a log shows it.
        self.step_s = -np.inf
        self.tail_at_step = self.last_service_start.copy()
        self.step_mark = 0
        self.arrived = 0
        self.left = 0
        self.joined: list[np.ndarray] = []  # arrivals not yet given a Mesa agent
        self.gone: list[np.ndarray] = []  # leavers whose Mesa agent is not yet removed

    # ================================================================== queries
    def due(self, t_end: float) -> np.ndarray:
        """Avatars with an event before ``t_end`` (one pass over the arrays)."""
        return np.flatnonzero(self.t_next < t_end)

    @property
    def inside(self) -> int:
        return self.arrived - self.left

    def density(self) -> np.ndarray:
        return self.occupancy / self.layout.area

    def queue_lengths(self, now: float) -> np.ndarray:
        """Persons waiting (not yet in service) in each service zone at ``now``."""
        waiting = (self.phase == IN_ZONE) & (self.service_start > now)
        return np.bincount(self.zone[waiting], minlength=self.layout.n_zones)

    def queue_waits(self, now: np.ndarray) -> np.ndarray:
        """(B, Z) seconds a visitor joining each zone's queue at each moment ``now`` (B,)
        would wait: behind the last to join strictly before that moment, to the
        millisecond, as ``llm.data.encode`` reads a choice's waits from a log
        (``llm.causal.last_served_by_zone``). Deciders of one step differ: the first to
        choose after a show do not see the queue the others of that step will make."""
        tail = self.tail_at_step[None, :]
        joins = self.waits[self.step_mark :]
        if joins:
            zone, start, wait = (np.concatenate(part) for part in zip(*joins, strict=True))
            served = self.service_tail(start)
            joined = last_served_by_zone(zone, start - wait, served, now, len(self.tail_at_step))
            tail = np.maximum(tail, joined)
        return queue_wait(tail, now[:, None])

    def service_tail(self, start: np.ndarray) -> np.ndarray:
        """Starts of service as a log dates a queue's tail: none after the clearing (a visit
        waiting then ends then, its wait cut short)."""
        return np.minimum(start, self.clearing_s)

    def history(self, idx: np.ndarray) -> np.ndarray:
        """(B, HISTORY) zones visited so far, most recent last, -1 where none."""
        ahead = self.visits[idx, None] - HISTORY + np.arange(HISTORY)[None, :]
        zones = self.ring[idx[:, None], ahead % HISTORY].astype(np.int64)
        return np.where(ahead >= 0, zones, -1)

    def drain_joined(self) -> np.ndarray:
        out = np.concatenate(self.joined) if self.joined else np.empty(0, dtype=np.int64)
        self.joined = []
        return out

    def drain_gone(self) -> np.ndarray:
        out = np.concatenate(self.gone) if self.gone else np.empty(0, dtype=np.int64)
        self.gone = []
        return out

    # ================================================================== events
    def process(self, idx: np.ndarray, t_start: float, t_end: float) -> None:
        """Handle every event of avatars ``idx`` due before ``t_end``."""
        if t_start != self.step_s:  # a new step: its joins so far are none
            self.step_s, self.step_mark = t_start, len(self.waits)
            self.tail_at_step = self.last_service_start.copy()
        if t_start <= self.clearing_s < t_end:
            self.start_clearing()
            idx = np.union1d(idx, self.due(t_end))
        idx = idx[self.t_next[idx] < t_end]
        if len(idx) == 0:
            return
        phase = self.phase[idx]
        self.arrive(idx[phase == PENDING])
        reached = self.reach(idx[phase == WALKING])
        self.pass_doors(idx[phase == LEAVING], t_end)
        deciding = np.concatenate(
            [idx[(phase == IN_ZONE) | (phase == BLOCKED)], reached[self.t_next[reached] < t_end]]
        )
        self.decide(deciding, t_start, t_end)

    def start_clearing(self) -> None:
        """Closing time: service stops and every visit ends now; from here on everybody
        walks to the nearest exit, whatever their policy would choose."""
        staying = np.flatnonzero((self.phase == IN_ZONE) & (self.t_next > self.clearing_s))
        self.t_next[staying] = self.clearing_s

    def way_out(self, zone: np.ndarray) -> np.ndarray:
        """The next zone on the shortest way to the nearest exit."""
        exits = np.flatnonzero(self.is_exit)
        nearest = exits[np.argmin(self.layout.distance[zone][:, exits], axis=1)]
        return self.layout.next_hop[zone, nearest]

    def arrive(self, idx: np.ndarray) -> None:
        """New visitors join the queue of an open entrance gate (the one that will serve
        them soonest, unless it is no sooner than their preferred gate by two minutes)."""
        if len(idx) == 0:
            return
        idx = idx[np.argsort(self.t_next[idx], kind="stable")]
        gates = self.open_gates
        weights = np.array([len(self.servers_free[g]) for g in gates], dtype=np.float64)
        u = uniforms(self.seed, idx, np.zeros(len(idx), dtype=np.int64), GATE_DRAW)
        preferred = gates[choose(np.broadcast_to(weights, (len(idx), len(gates))), u)]
        chosen = np.empty(len(idx), dtype=np.int64)
        for k, (t, pref) in enumerate(zip(self.t_next[idx], preferred, strict=True)):
            best, best_start = pref, max(t, self.servers_free[pref][0])
            for g in gates:
                start = max(t, self.servers_free[g][0])
                if start < best_start - 120.0:
                    best, best_start = g, start
            chosen[k] = best
        self.arrived += len(idx)
        self.joined.append(idx)
        self.needs.arrive(idx, self.t_next[idx])
        self.phase[idx] = IN_ZONE
        self.planned_dwell[idx] = 0.0
        self.enter(idx, chosen, self.t_next[idx])

    def reach(self, idx: np.ndarray) -> np.ndarray:
        """Walkers reach their destination: exits let them out, other zones take them in.
        Returns the avatars that entered a zone."""
        if len(idx) == 0:
            return idx
        np.subtract.at(self.on_edge, self.edge[idx], 1)
        dest, t = self.dest[idx], self.t_next[idx]
        np.subtract.at(self.inbound, dest, 1)
        self.edge[idx] = -1
        out = self.is_exit[dest]
        gone = idx[out]
        if len(gone):
            self.push_history(gone, dest[out])
            self.log.add(
                gone,
                t[out],
                dest[out],
                np.zeros(len(gone)),
                self.occupancy[dest[out]].astype(np.int32),
                np.zeros(len(gone)),
                np.zeros(len(gone)),
            )
            self.phase[gone] = LEFT
            self.t_next[gone] = np.inf
            self.zone[gone] = -1
            self.left += len(gone)
            self.gone.append(gone)
        stay = idx[~out]
        self.phase[stay] = IN_ZONE
        self.enter(stay, dest[~out], t[~out])
        return stay

    def enter(self, idx: np.ndarray, zone: np.ndarray, t: np.ndarray) -> None:
        """Avatars enter zones at times ``t``; service zones queue them first come first
        served on the earliest free server."""
        np.add.at(self.occupancy, zone, 1)
        self.zone[idx] = zone
        self.entered_s[idx] = t
        self.entry_occupancy[idx] = self.occupancy[zone]
        self.satisfaction.enter(idx, zone)
        self.push_history(idx, zone)
        start = t.copy()
        serving = self.is_service[zone] & (t < self.clearing_s)  # service stops at clearing
        if serving.any():
            order = np.flatnonzero(serving)[np.argsort(t[serving], kind="stable")]
            u = uniforms(self.seed, idx[order], self.visits[idx[order]], SERVICE_DRAW)
            service = -self.service_s[zone[order]] * np.log1p(-u)  # exponential
            for k, z, svc in zip(order, zone[order], service, strict=True):
                heap = self.servers_free[z]
                begin = max(t[k], heap[0])
                heapq.heapreplace(heap, begin + svc)
                start[k] = begin
                t[k] = begin + svc  # end of service
            wait = start[order] - self.entered_s[idx[order]]
            self.waits.append((zone[order], start[order], wait))
            np.maximum.at(self.last_service_start, zone[order], self.service_tail(start[order]))
            self.waited_s[idx[order]] += wait
            self.satisfaction.wait(idx[order], wait)
        self.service_start[idx] = np.where(serving, start, -np.inf)
        if self.dwell_from == "entry":  # t is the end of service (or the entry) here
            self.t_next[idx] = np.maximum(t, self.entered_s[idx] + self.planned_dwell[idx])
        elif self.dwell_from == "service_start":  # start: the entry where nobody serves
            self.t_next[idx] = np.maximum(t, start + self.planned_dwell[idx])
        else:
            self.t_next[idx] = t + self.planned_dwell[idx]
        # No visit outlasts the clearing (as ``start_clearing`` ends those under way): one
        # that begins after it, on the way out, ends at once.
        self.t_next[idx] = np.minimum(
            self.t_next[idx], np.maximum(self.clearing_s, self.entered_s[idx])
        )

    def push_history(self, idx: np.ndarray, zone: np.ndarray) -> None:
        self.ring[idx, self.visits[idx] % HISTORY] = zone
        self.visits[idx] += 1

    def decide(self, idx: np.ndarray, t_start: float, t_end: float) -> None:
        """Visits end: the policy picks the next zones of all deciders in one call; full
        zones refuse entry (the avatar waits, and reroutes after ``patience_s``)."""
        if len(idx) == 0:
            return
        now = np.maximum(self.t_next[idx], t_start)
        retry = (self.phase[idx] == BLOCKED) & (now - self.blocked_since[idx] < self.patience_s)
        dest = self.dest[idx].copy()
        clearing = now >= self.clearing_s  # everybody out, refused or not
        fresh = ~retry & ~clearing
        self.decided_s[idx[~retry]] = now[~retry]
        if fresh.any():
            chosen = self.ask_policy(idx[fresh], now[fresh])
            dest[fresh] = chosen.next_zone
            self.planned_dwell[idx[fresh]] = chosen.dwell_s
        if clearing.any():
            dest[clearing] = self.way_out(self.zone[idx[clearing]])
            self.planned_dwell[idx[clearing]] = 0.0
        staying = dest == self.zone[idx]
        if staying.any():  # no legal move: stay on
            s = idx[staying]
            self.phase[s] = IN_ZONE
            self.refused[s] = -1
            self.blocked_since[s] = np.inf
            self.t_next[s] = now[staying] + np.maximum(self.planned_dwell[s], 5.0)
        moving = ~staying
        idx, dest, now = idx[moving], dest[moving], now[moving]
        admitted = self.admit(dest, now)
        self.block(idx[~admitted], dest[~admitted], now[~admitted], t_end)
        go = idx[admitted]
        if len(go):
            was_blocked = np.isfinite(self.blocked_since[go])
            if was_blocked.any():  # time spent refused at a full zone counts as waiting
                held = go[was_blocked]
                waited = now[admitted][was_blocked] - self.blocked_since[held]
                self.waited_s[held] += waited
                self.satisfaction.wait(held, waited)
            self.refused[go] = -1
            self.blocked_since[go] = np.inf
            self.dest[go] = dest[admitted]
            np.add.at(self.inbound, dest[admitted], 1)
            edge = self.edge_id[self.zone[go], dest[admitted]]
            self.edge[go] = edge
            self.phase[go] = LEAVING
            self.t_next[go] = physics.schedule_doors(
                edge, now[admitted], self.door_free, self.headway
            )
            self.pass_doors(go, t_end)

    def ask_policy(self, idx: np.ndarray, now: np.ndarray) -> Decision:
        zone = self.zone[idx]
        legal = self.legal_moves[zone]
        refused = self.refused[idx]
        rows = np.flatnonzero(refused >= 0)
        legal[rows, refused[rows]] = False
        dead_end = rows[~legal[rows].any(axis=1)]  # the full zone is the only way on: wait
        legal[dead_end, refused[dead_end]] = True
        occupancy = self.occupancy.copy()
        area = self.layout.area
        walks, places, walking = self.walks, legal, np.zeros(len(idx), dtype=bool)
        if walks is not None:
            places, walking = walks.view(idx, zone, legal)
        obs = Observation(
            avatar=idx,
            zone=zone,
            now_s=now,
            entered_s=self.entered_s[idx],
            arrived_s=self.needs.arrived_s[idx],
            entry_crowd=crowd_level(self.entry_occupancy[idx] / area[zone]),
            visits=self.visits[idx],
            legal=legal,
            history=self.history(idx),
            occupancy=occupancy,
            crowd=crowd_level(occupancy / area),
            queue_wait_s=self.queue_waits(now),
            places=places,
            goal=np.full(len(idx), -1) if walks is None else walks.goal[idx],
            goal_stay_s=np.zeros(len(idx)) if walks is None else walks.stay_s[idx],
            walking=walking,
            full=occupancy >= self.capacity,
        )
        decision = self.policy.decide(obs)
        if walks is not None:  # a place each: the walk there
            decision = walks.head_for(idx, zone, decision.next_zone, decision.dwell_s)
        nxt = np.asarray(decision.next_zone, dtype=np.int64)
        ok = (nxt == zone) | legal[np.arange(len(idx)), np.clip(nxt, 0, legal.shape[1] - 1)]
        ok &= (nxt >= 0) & (nxt < legal.shape[1])
        if not ok.all():
            bad = np.flatnonzero(~ok)[0]
            raise RuntimeError(
                f"policy {self.policy.name!r} chose an illegal move for avatar {idx[bad]}: "
                f"{self.layout.zones[zone[bad]]} -> zone #{nxt[bad]}"
            )
        dwell = np.maximum(np.asarray(decision.dwell_s, dtype=np.float64), 0.0)
        return Decision(next_zone=nxt, dwell_s=dwell)

    def admit(self, dest: np.ndarray, now: np.ndarray) -> np.ndarray:
        """Which moves fit under the destinations' hard capacities, earliest first."""
        order = np.lexsort((now, dest))
        d = dest[order]
        first = np.r_[True, d[1:] != d[:-1]]
        position = np.arange(len(d))
        rank = position - np.maximum.accumulate(np.where(first, position, 0))
        room = self.capacity[d] - self.occupancy[d] - self.inbound[d]
        admitted = np.empty(len(d), dtype=bool)
        admitted[order] = rank < room
        return admitted

    def block(self, idx: np.ndarray, dest: np.ndarray, now: np.ndarray, t_end: float) -> None:
        if len(idx) == 0:
            return
        newly = self.phase[idx] != BLOCKED
        self.blocked_since[idx[newly]] = now[newly]
        self.phase[idx] = BLOCKED
        self.dest[idx] = dest
        self.t_next[idx] = t_end
        waited = now - self.blocked_since[idx]
        give_up = waited >= self.patience_s
        self.refused[idx[give_up]] = dest[give_up]

    def pass_doors(self, idx: np.ndarray, t_end: float) -> None:
        """Avatars whose turn at the door has come leave their zone and walk to the next at
        the Weidmann speed of the denser of the two zones.

        (Not of the walkers on the edge itself: a passage fed at the door's Js = 1.3 p/(m s)
        would jam, since Weidmann's diagram carries at most about 1.22 p/(m s).)"""
        idx = idx[self.t_next[idx] < t_end]
        if len(idx) == 0:
            return
        zone, t, edge = self.zone[idx], self.t_next[idx], self.edge[idx]
        dwell = t - self.entered_s[idx]
        waited = np.clip(self.service_start[idx] - self.entered_s[idx], 0.0, dwell)
        leave_wait = np.clip(t - self.decided_s[idx], 0.0, dwell)  # at the door, or refused
        self.log.add(
            idx, self.entered_s[idx], zone, dwell, self.entry_occupancy[idx], waited, leave_wait
        )
        self.satisfaction.leave(idx, zone, self.entered_s[idx], t)
        lay = self.layout
        self.needs.end_visits(
            idx,
            zone,
            self.kinds[zone],
            self.entered_s[idx],
            t,
            lay.show_stage,
            lay.show_start_s,
            lay.show_end_s,
        )
        np.subtract.at(self.occupancy, zone, 1)
        np.add.at(self.on_edge, edge, 1)
        density = self.density()
        speed = physics.weidmann_speed(np.maximum(density[zone], density[self.dest[idx]]))
        self.zone[idx] = -1
        self.phase[idx] = WALKING
        self.t_next[idx] = t + self.edge_length[edge] / speed
