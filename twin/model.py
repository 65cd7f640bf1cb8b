"""``VenueModel``: the Mesa model of a venue, its visitors, and what is recorded of them.

    from twin import VenueModel, Scenario
    model = VenueModel(Scenario(venue="expo", avatars=2000, seed=1))
    model.run()
    model.kpis()["mean_wait_s"]

Each ``step()`` advances the clock by ``scenario.step_s`` seconds: every avatar with an
event in that window is handled at once as arrays (arrivals at the gates, doors, walking,
queues, the policy's batched decision), then KPIs are accounted and, every
``record_every_s``, the ``DataCollector`` records the venue. ``stepping="agents"`` runs the
same events with Mesa's plain one-Python-call-per-agent stepping, for comparison.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import mesa
import numpy as np
import pandas as pd

from agents import Avatar, Layout, Needs, Policy, RandomPolicy, ScriptedPolicy
from agents.explain import Explanation
from agents.gpt_policy import GPTPolicy
from agents.markov_policy import MarkovPolicy
from agents.needs import declared_profiles
from llm import checkpoint
from llm.decoder import one_thread
from llm.fileio import atomic_path
from llm.logschema import visits_frame
from llm.zones import crowd_level
from twin import kpis as kpi
from twin.arrivals import draw_arrivals
from twin.catalog import model_for
from twin.crowd import PENDING, Crowd
from twin.scenario import Scenario, ScenarioError, Show
from twin.venue import Venue
from twin.visit_log import VisitLog

Stepping = Literal["arrays", "agents"]


def make_policy(
    scenario: Scenario,
    venue: Venue,
    load: Callable[[str | os.PathLike[str]], checkpoint.Checkpoint] = checkpoint.load,
) -> Policy:
    """The policy the scenario names: GPT avatars with the scenario's (or the venue's
    shipped) model, a Markov chain fitted on logs, the scripted visitor, or random walks.
    ``load`` reads a checkpoint (a dashboard passes its cached loader)."""
    name = scenario.policy
    if name == "scripted":
        return ScriptedPolicy()
    if name == "random":
        return RandomPolicy()
    if name == "gpt":
        path = model_for(scenario.model, venue.name)
        if path is None:
            raise ScenarioError(
                f"policy gpt: no model for venue {venue.name!r}; train one "
                "(venuetwin train LOGS --venue ...) and set model = 'DIR/model.safetensors'"
            )
        return GPTPolicy(load(path), temperature=scenario.temperature)
    if name == "markov":
        return MarkovPolicy.from_logs(
            scenario.markov_logs or scripted_logs(scenario), venue.vocabulary()
        )
    raise ScenarioError(f"policy: unknown policy {name!r}")


def scripted_logs(scenario: Scenario) -> list[Path]:
    """A scripted run of the scenario (another seed) to fit a Markov policy on, cached."""
    venue = scenario.load_venue()
    recipe = json.dumps(
        [scenario.replace(venue=venue.name).to_dict(), venue.to_json()], sort_keys=True, default=str
    )
    key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / "venuetwin-markov" / f"{venue.name}-{key}.parquet"
    if not path.exists():
        run = VenueModel(scenario.replace(policy="scripted", seed=scenario.seed + 10_007)).run()
        with atomic_path(path) as tmp:
            run.visits().to_parquet(tmp)
    return [path]


def build_layout(venue: Venue, scenario: Scenario, shows: list[Show]) -> Layout:
    """What the policies may know of this venue and this scenario's programme."""
    idx = venue.index
    return Layout(
        zones=venue.zones,
        kinds=venue.kinds,
        kind_ids=venue.kind_ids,
        adjacency=venue.adjacency,
        distance=venue.distance,
        next_hop=venue.next_hop,
        capacity=venue.capacity,
        area=venue.area,
        passage=venue.vocabulary().passage,
        place_distance=venue.place_routes[0],
        place_hop=venue.place_routes[1],
        show_stage=np.array([idx[s.stage] for s in shows], dtype=np.int64),
        show_start_s=np.array([s.start_h * 3600 for s in shows], dtype=np.float64),
        show_end_s=np.array([s.end_h * 3600 for s in shows], dtype=np.float64),
        show_draw=np.array([s.draw for s in shows], dtype=np.float64),
        show_headline=np.array([s.headline for s in shows], dtype=bool),
        opening=scenario.opening_time,
        closing_s=scenario.hours * 3600.0,
    )


class VenueModel(mesa.Model):
    """A venue and its visitors. ``model.agents`` holds the ``Avatar``s inside right now."""

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        policy: Policy | str | None = None,
        stepping: Stepping = "arrays",
        stream_visits: str | os.PathLike[str] | None = None,
        **overrides: Any,
    ) -> None:
        """``stream_visits``: a folder where the visit log is written as the run goes (in
        Parquet parts in a temporary folder inside it, removed with the model) rather than
        held in memory; for runs of many avatars (``visit_frames``, ``twin.output``)."""
        scenario = scenario or Scenario()
        if isinstance(policy, str):  # a scenario override, not a policy object
            overrides["policy"], policy = policy, None
        if overrides:
            try:
                scenario = dataclasses.replace(scenario, **overrides)
            except TypeError as exc:
                raise ScenarioError(f"VenueModel: {exc}") from None
        super().__init__(rng=scenario.seed)
        venue = scenario.load_venue()
        scenario.check(venue)
        self.scenario, self.venue, self.stepping = scenario, venue, stepping
        self.shows = scenario.programme(venue)
        self.layout = build_layout(venue, scenario, self.shows)
        n = scenario.avatars
        arrival_s = draw_arrivals(n, scenario.arrival_window_s, scenario.arrival_profile, self.rng)
        self.needs = Needs.draw(n, venue.kinds, self.layout.show_draw, self.rng)
        self.policy = policy or make_policy(scenario, venue)
        self.policy.bind(self.layout, self.needs, np.random.default_rng(self.rng.integers(2**63)))
        self.crowd = Crowd(
            self.layout,
            arrival_s=arrival_s,
            servers=self.lever_servers(),
            service_s=venue.service_s,
            capacity=self.lever_capacity(),
            open_gates=self.lever_gates(),
            edge_id=venue.edge_id,
            edge_length=venue.edge_length,
            edge_width=venue.edge_width,
            js=scenario.js,
            patience_s=scenario.patience_s,
            needs=self.needs,
            policy=self.policy,
            rng=np.random.default_rng(self.rng.integers(2**63)),
            log=VisitLog(stream_visits),
        )
        self.avatar_of = np.full(n, None, dtype=object)
        self._profiles: list[str] | None = None
        self.time_s = 0.0
        self.end_s = scenario.hours * 3600.0
        self.record_every = max(1, round(scenario.record_every_s / scenario.step_s))
        self.totals = kpi.Totals(venue.n_zones)
        self.datacollector = mesa.DataCollector(
            model_reporters={
                "time_s": "time_s",
                "inside": lambda m: m.crowd.inside,
                "arrived": lambda m: m.crowd.arrived,
                "left": lambda m: m.crowd.left,
                "queueing": lambda m: int(m.crowd.queue_lengths(m.time_s).sum()),
                "mean_satisfaction": lambda m: m.mean_satisfaction(),
                "person_minutes_los_ef": lambda m: m.totals.person_minutes_los_ef,
            },
            tables={"zones": list(kpi.ZONE_COLUMNS)},
        )
        self.datacollector.collect(self)
        self.record_zones()
        self.running = True

    # ------------------------------------------------------------------ levers
    def lever_servers(self) -> np.ndarray:
        return self.scenario.levers.servers_in(self.venue)

    def lever_capacity(self) -> np.ndarray:
        return self.scenario.levers.capacity_in(self.venue)

    def lever_gates(self) -> np.ndarray:
        return self.scenario.levers.gates_in(self.venue)

    # ------------------------------------------------------------------ stepping
    def step(self) -> None:
        """Advance the venue by one step of ``scenario.step_s`` seconds, on one thread
        (``llm.decoder.one_thread``): a step's arrays are small, and threads would wait on
        each other, and on every other process of a busy machine."""
        with one_thread():
            self.advance()

    def advance(self) -> None:
        t_end = self.time_s + self.scenario.step_s
        if self.stepping == "arrays":
            self.crowd.process(self.crowd.due(t_end), self.time_s, t_end)
            self.sync_agents()
        else:
            due = self.crowd.due(t_end)
            self.crowd.process(due[self.crowd.phase[due] == PENDING], self.time_s, t_end)
            self.sync_agents()
            self._window = (self.time_s, t_end)
            self.agents.shuffle_do("step")
            self.sync_agents()
        self.time_s = t_end
        self.crowd.satisfaction.tick(crowd_level(self.crowd.density()), self.scenario.step_s)
        self.totals.account(self.crowd, self.scenario.step_s)
        self.datacollector.collect(self)  # every step, as mesa.batch_run expects
        if self.steps % self.record_every == 0:
            self.record_zones()
        if self.time_s >= self.end_s - 1e-9:
            self.running = False

    def process_avatars(self, idx: np.ndarray) -> None:
        """Handle the due events of some avatars now (used by ``Avatar.step``)."""
        self.crowd.process(idx, *self._window)

    def sync_agents(self) -> None:
        """Give arrived avatars a Mesa agent and remove the agents of those who left."""
        for i in self.crowd.drain_joined():
            self.avatar_of[i] = Avatar(self, i)
        for i in self.crowd.drain_gone():
            self.avatar_of[i].remove()
            self.avatar_of[i] = None

    def run(self, progress: bool = False) -> VenueModel:
        """Step until closing time; ``progress`` shows a progress bar."""
        from tqdm import tqdm

        total = int(round((self.end_s - self.time_s) / self.scenario.step_s))
        with tqdm(total=total, disable=not progress, unit="step", leave=False) as bar:
            while self.running:
                self.step()
                bar.update()
        return self

    # ------------------------------------------------------------------ records
    def record_zones(self) -> None:
        """Add the venue's zones, as they are now, to the DataCollector's zones table."""
        for row in kpi.zone_rows(self):
            self.datacollector.add_table_row("zones", row)

    def mean_satisfaction(self) -> float:
        arrived = self.crowd.phase != PENDING
        return float(self.crowd.satisfaction.score[arrived].mean()) if arrived.any() else 0.0

    def visits(self) -> pd.DataFrame:
        """The visit log of completed visits, in the schema of ``llm.logschema``, sorted by
        visitor and time."""
        return self._visits_frame(self.crowd.log.columns())

    def visit_frames(self) -> Iterator[pd.DataFrame]:
        """The visit log in parts, each in the schema and sorted by visitor and time: one
        part for a log held in memory, a part per ``PART_ROWS`` visits (in the order they
        ended) for a streamed one, so a large log is written without being held."""
        for batch in self.crowd.log.batches():
            yield self._visits_frame(batch)

    def _visits_frame(self, columns: tuple[np.ndarray, ...]) -> pd.DataFrame:
        avatar, entered, zone, dwell, occupancy, wait, leave_wait = columns
        zone = zone.astype(np.int64)
        order = np.lexsort((entered, avatar))
        names = np.array(self.venue.zones, dtype=object)
        kinds = np.array(self.venue.kinds, dtype=object)
        opening = np.datetime64(self.scenario.opening_time.replace(tzinfo=None), "ns")
        stamps = opening + (entered[order] * 1e9).astype("timedelta64[ns]")
        return visits_frame(
            {
                "avatar_id": avatar[order].astype(np.int64),
                "timestamp": stamps,
                "zone": names[zone[order]],
                "dwell_s": dwell[order],
                "occupancy": occupancy[order].astype(np.int32),
                "wait_s": wait[order],
                "leave_wait_s": leave_wait[order],
                "run_id": f"{self.scenario.name}-s{self.scenario.seed}",
                "zone_kind": kinds[zone[order]],
                "profile": np.array(self.declared_profiles(), dtype=object)[
                    avatar[order].astype(np.int64)
                ]
                if len(order)
                else np.empty(0, dtype=object),
            }
        )

    def declared_profiles(self) -> list[str]:
        """What each visitor declared before it came (``agents.needs.declared_profiles``):
        the visit log's ``profile`` column, and all GPT avatars know of their visitor."""
        if self._profiles is None:
            lay = self.layout
            self._profiles = declared_profiles(self.needs, lay.zones, lay.programme())
        return self._profiles

    def zones_frame(self) -> pd.DataFrame:
        """The per-zone table recorded every ``record_every_s`` seconds."""
        return self.datacollector.get_table_dataframe("zones")

    def kpis(self) -> dict[str, Any]:
        return kpi.summarise(self)

    def decisions(self, avatar_id: int) -> list[tuple[int, float]]:
        """``(visit, time_s)`` of every decision of a GPT avatar that ``explain`` can still
        recompute, oldest first: the visit that was ending and when it decided."""
        policy = self.policy
        if not hasattr(policy, "explain"):
            raise ValueError(f"policy {policy.name!r} cannot explain its decisions")
        times = policy.decided_at[int(avatar_id)]
        count = int(policy.count[int(avatar_id)])
        when = {v: float(times[v % len(times)]) for v in range(max(0, count - len(times)), count)}
        return [(v, t) for v, t in when.items() if np.isfinite(t)]

    def explain(self, avatar_id: int, step: int | None = None) -> Explanation:
        """Why ``avatar_id`` chose its next zone: its latest decision, or the last one it
        made by the end of model step ``step``. Only GPT avatars can explain themselves."""
        explain = getattr(self.policy, "explain", None)
        if explain is None:
            raise ValueError(f"policy {self.policy.name!r} cannot explain its decisions")
        if step is None:
            return explain(int(avatar_id))
        until = (step + 1) * self.scenario.step_s
        made = [v for v, t in self.decisions(avatar_id) if t < until]
        if not made:
            raise ValueError(f"avatar {avatar_id} made no decision by step {step}")
        return explain(int(avatar_id), made[-1])
