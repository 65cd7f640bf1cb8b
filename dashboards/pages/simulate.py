"""Simulate: pick a venue and a scenario, set the levers, run the twin, read the results.

Session state (``dashboards/state.py``) read here:

- ``"scenario"`` (``twin.Scenario``): pre-fills the form (uploading a scenario TOML sets
  it; so may the Optimise page, with ``state.apply_scenario(best, "...")``), and
  ``"scenario_source"`` says where it came from;
- ``"model_path"`` (``str``): the checkpoint selected on the Train page, offered for GPT
  avatars instead of the venue's shipped model.

Written here: ``"run"`` (the finished ``VenueModel``) and ``"run_id"``, for the Attention
and Train pages. The twin is stepped here in chunks so the progress bar moves; everything
else (KPIs, tables, visit log) is the twin's own API.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboards import cards, charts, exports, models, provenance, scene3d, state
from dashboards.uploads import UploadError, named, store
from dashboards.venues import venue_label, venue_of
from llm import checkpoint
from llm.checkpoint import CheckpointError, check_vocab
from llm.logs import LogError
from twin import Levers, Scenario, ScenarioError, Venue, VenueError, VenueModel
from twin.catalog import model_for
from twin.scenario import POLICIES
from twin.venue import BUILTIN_VENUES, load_venue

log = logging.getLogger(__name__)
PARQUET_MIME = "application/vnd.apache.parquet"
#: Progress bar updates per run.
PROGRESS_UPDATES = 100
#: The form's upper bounds (a scenario file may go further; the form then follows it).
MAX_AVATARS, MAX_HOURS = 1_000_000, 24.0


#: Session key: uploaded venue files, by the name they were uploaded under.
UPLOADED_VENUES = "uploaded_venues"


# ============================================================================ scenario file
def scenario_upload() -> None:
    """A scenario TOML uploaded here becomes the form's starting point (once per file)."""
    upload = st.file_uploader(
        "Scenario file (TOML, optional)", type=["toml"], key="scenario_upload"
    )
    if upload is None or st.session_state.get("scenario_upload_id") == upload.file_id:
        return
    st.session_state["scenario_upload_id"] = upload.file_id
    path = None
    try:
        path = store(
            upload.name,
            upload.getvalue(),
            state.workdir() / "uploads",
            ("toml",),
            check=Scenario.from_toml,
        )
        scenario = Scenario.from_toml(path)
        # A scenario written beside its venue (``venue from-pois``) names the venue's file:
        # the venue uploaded here under that name.
        uploaded = st.session_state.get(UPLOADED_VENUES, {})
        if isinstance(scenario.venue, str) and Path(scenario.venue).name in uploaded:
            scenario = scenario.replace(venue=uploaded[Path(scenario.venue).name])
        scenario.check(scenario.load_venue(), upload.name)
    except (UploadError, ScenarioError, VenueError) as exc:
        message = named(str(exc), path, upload.name) if path else str(exc)
        st.error(f"Scenario not loaded: {message}")
        return
    state.apply_scenario(scenario, f"uploaded {upload.name}")


def venue_upload() -> None:
    """A venue JSON (``venuetwin venue from-pois`` writes one) and its GPT model uploaded
    here: the venue becomes the form's, the model the one its GPT avatars use."""
    with st.expander("Your own venue and model", expanded=False):
        st.caption(
            "A venue JSON (built-in format; `venuetwin venue from-pois` makes one from a "
            "POI table and visit logs) and a model trained on it (`venuetwin train "
            "--venue`). Upload the venue first, then its scenario TOML above, if any."
        )
        left, right = st.columns(2)
        venue_file = left.file_uploader("Venue (JSON)", type=["json"], key="venue_upload")
        model_file = right.file_uploader(
            "Model (.safetensors)", type=["safetensors"], key="venue_model_upload"
        )
    if venue_file is not None and st.session_state.get("venue_upload_id") != venue_file.file_id:
        st.session_state["venue_upload_id"] = venue_file.file_id
        path = None
        try:
            path = store(
                venue_file.name, venue_file.getvalue(), uploads_dir(), ("json",), check=load_venue
            )
            venue = load_venue(path)
        except (UploadError, VenueError) as exc:
            message = named(str(exc), path, venue_file.name) if path else str(exc)
            st.error(f"Venue not loaded: {message}")
        else:
            st.session_state.setdefault(UPLOADED_VENUES, {})[venue_file.name] = str(path)
            base = state.current_scenario()
            scenario = base.replace(venue=str(path), shows=None, levers=Levers(), model=None)
            state.apply_scenario(scenario, f"uploaded venue {venue_file.name}")
            st.success(f"{venue_file.name}: venue {venue.name!r}, {venue.n_zones} zones")
    if model_file is not None and st.session_state.get("model_upload_id") != model_file.file_id:
        st.session_state["model_upload_id"] = model_file.file_id
        path = None
        base = state.current_scenario()
        try:
            path = store(
                model_file.name,
                model_file.getvalue(),
                uploads_dir(),
                ("safetensors",),
                check=checkpoint.load,
            )
            ckpt = models.load_checkpoint(path)
            venue = venue_of(base.venue)
            check_vocab(ckpt.vocab, venue.vocabulary(), str(path))
        except (UploadError, CheckpointError, VenueError) as exc:
            message = named(str(exc), path, model_file.name) if path else str(exc)
            st.error(f"Model not loaded: {message}")
        else:
            state.select_model(str(path))
            state.apply_scenario(
                base.replace(policy="gpt", model=str(path)), f"uploaded model {model_file.name}"
            )
            st.success(f"{model_file.name}: GPT avatars of {venue.name!r} decide with it")


#: Seconds between the 3D view's moments while it plays.
PLAY_EVERY_S = 0.3
#: The avatar picked on the Attention page (its session key), followed by the 3D camera.
ATTENTION_AVATAR = "attention_avatar"
#: The session's key for the folder of its last run (``dashboards.provenance``).
RUN_FOLDER = "run_folder"


def uploads_dir() -> Path:
    return state.workdir() / "uploads"


# ============================================================================ the form
def form_key(base: Scenario, source: str | None) -> str:
    """A prefix for the form's widget keys that changes with the scenario it starts from,
    so that a newly applied scenario fills the form afresh."""
    text = json.dumps([base.to_dict(), source], sort_keys=True, default=str)
    return "sim-" + hashlib.sha256(text.encode()).hexdigest()[:10]


def levers_form(venue: Venue, start: Levers, key: str) -> Levers:
    """Servers per service zone, open gates and capacity caps, from ``start``."""
    servers: dict[str, int] = {}
    service = [i for i in range(venue.n_zones) if venue.is_service[i]]
    st.markdown("**Servers per service zone**")
    columns = st.columns(4)
    for n, i in enumerate(service):
        zone = venue.zones[i]
        default = int(start.servers.get(zone, venue.servers[i]))
        value = columns[n % 4].number_input(
            f"{zone} ({venue.kinds[i]})",
            min_value=1,
            max_value=max(1000, default),
            value=max(1, default),
            step=1,
            key=f"{key}-servers-{zone}",
        )
        if int(value) != int(venue.servers[i]) or zone in start.servers:
            servers[zone] = int(value)
    entrances = Levers.zones_for("open_gates", venue)
    gates = st.multiselect(
        "Open gates",
        entrances,
        default=[g for g in (start.open_gates or entrances) if g in entrances],
        key=f"{key}-gates",
    )
    cappable = Levers.zones_for("capacity_caps", venue)
    capped = st.multiselect(
        "Capacity caps on",
        cappable,
        default=[z for z in start.capacity_caps if z in cappable],
        key=f"{key}-capped",
    )
    caps: dict[str, int] = {}
    columns = st.columns(4)
    for n, zone in enumerate(capped):
        hard = int(venue.capacity[venue.index[zone]])
        caps[zone] = int(
            columns[n % 4].number_input(
                f"cap of {zone} (hard {hard:,})",
                min_value=1,
                value=max(1, int(start.capacity_caps.get(zone, hard))),
                step=10,
                key=f"{key}-cap-{zone}",
            )
        )
    open_gates = None if sorted(gates) == sorted(entrances) else list(gates)
    return Levers(servers=servers, open_gates=open_gates, capacity_caps=caps)


def scenario_form(base: Scenario, source: str | None) -> Scenario | None:
    """The form, filled from ``base``; returns the scenario it describes (None, with a
    message, when that is not a valid scenario)."""
    key = form_key(base, source)
    options: list[str | Venue] = list(BUILTIN_VENUES)
    if venue_label(base.venue) not in BUILTIN_VENUES:
        options.append(base.venue)
    labels = [venue_label(v) for v in options]
    left, right = st.columns(2)
    chosen = left.selectbox(
        "Venue", labels, index=labels.index(venue_label(base.venue)), key=f"{key}-venue"
    )
    venue_value = options[labels.index(chosen)]
    avatars = left.number_input(
        "Avatars",
        min_value=1,
        max_value=max(MAX_AVATARS, int(base.avatars)),
        value=int(base.avatars),
        step=100,
        key=f"{key}-avatars",
    )
    hours = left.number_input(
        "Hours",
        min_value=min(0.25, float(base.hours)),
        max_value=max(MAX_HOURS, float(base.hours)),
        value=float(base.hours),
        step=0.25,
        key=f"{key}-hours",
    )
    policy = right.selectbox(
        "Policy",
        POLICIES,
        index=POLICIES.index(base.policy),
        key=f"{key}-policy",
        help="gpt: the trained model; markov: a chain fitted on a scripted run; "
        "scripted: the hand-written visitor; random: random walks",
    )
    seed = right.number_input("Seed", min_value=0, value=int(base.seed), step=1, key=f"{key}-seed")
    model = base.model
    selected = state.selected_model()
    use_selected = policy == "gpt" and selected is not None
    if use_selected and right.checkbox(
        f"Use the model selected on the Train page ({selected})",
        value=True,
        key=f"{key}-use-selected",
    ):
        model = selected
    try:
        venue = venue_of(venue_value)
    except VenueError as exc:
        st.error(f"Venue not loaded: {exc}")
        return None
    same_venue = chosen == venue_label(base.venue)
    if policy == "gpt":
        shown = model_for(model, venue.name)
        right.caption(f"GPT model: {shown or 'none shipped for this venue'}")
    with st.expander("Levers", expanded=False):
        levers = levers_form(venue, base.levers if same_venue else Levers(), f"{key}-{venue.name}")
    try:
        return base.replace(
            venue=venue_value,
            avatars=int(avatars),
            hours=float(hours),
            policy=policy,
            seed=int(seed),
            model=model,
            shows=base.shows if same_venue else None,
            levers=levers,
        )
    except ScenarioError as exc:
        st.error(f"Not a valid scenario: {exc}")
        return None


# ============================================================================ running
def run(scenario: Scenario) -> VenueModel | None:
    """Build the model and step it to closing time in chunks, with a progress bar."""
    try:
        with st.status("Preparing the avatars...", expanded=False) as status:
            model = VenueModel(scenario, policy=models.policy_for(scenario))
            status.update(
                label=f"{model.venue.name}: {scenario.avatars:,} {model.policy.name} avatars",
                state="complete",
            )
    except (ScenarioError, VenueError, CheckpointError, LogError) as exc:
        st.error(f"Cannot run this scenario: {exc}")
        return None
    except Exception as exc:  # the page stays usable whatever went wrong
        log.exception("building the model failed")
        st.error(f"Cannot run this scenario: {type(exc).__name__}: {exc}")
        return None
    total = max(1, math.ceil((model.end_s - model.time_s) / scenario.step_s))
    chunk = max(1, total // PROGRESS_UPDATES)
    opening = scenario.opening_time
    bar = st.progress(0.0, text="Simulating...")
    try:
        while model.running:
            for _ in range(chunk):
                if not model.running:
                    break
                model.step()
            bar.progress(
                min(1.0, model.time_s / model.end_s),
                text=f"Simulating: {charts.clock_label(opening, model.time_s)}, "
                f"step {model.steps:,} of {total:,}",
            )
    except Exception as exc:
        log.exception("the run failed")
        st.error(
            f"The run failed at {charts.clock_label(opening, model.time_s)}: "
            f"{type(exc).__name__}: {exc}"
        )
        return None
    bar.progress(1.0, text=f"Done: {model.steps:,} steps")
    state.keep_run(model)
    try:  # kept on disk with its provenance; a disk that refuses loses the folder only
        st.session_state[RUN_FOLDER] = str(provenance.save_run(model, state.workdir() / "runs"))
    except OSError as exc:
        st.session_state.pop(RUN_FOLDER, None)
        st.warning(f"The run was not saved to disk: {exc}")
    return model


# ============================================================================ results
def show_results(model: VenueModel) -> None:
    scenario = model.scenario
    st.subheader(
        f"Run: {model.venue.name}, {scenario.avatars:,} {model.policy.name} avatars, "
        f"{scenario.hours:g} h, seed {scenario.seed}"
    )
    kpis: dict[str, Any] = state.per_run("kpis", model.kpis)
    row = st.columns(5)
    for n, card in enumerate(cards.kpi_cards(kpis)):
        row[n % 5].metric(card.label, card.value, help=card.help, border=True)
        if n % 5 == 4:
            row = st.columns(5)
    downloads = (
        ("Visit log (Parquet)", exports.visits_parquet, "visits.parquet", PARQUET_MIME),
        ("Visit log (CSV)", exports.visits_csv, "visits.csv", "text/csv"),
        ("KPIs (JSON)", exports.kpis_json, "kpis.json", "application/json"),
    )
    for column, (label, export, name, mime) in zip(st.columns(3), downloads, strict=True):
        column.download_button(
            label,
            lambda export=export: export(model),
            file_name=name,
            mime=mime,
            on_click="ignore",
        )
    folder = st.session_state.get(RUN_FOLDER)
    if folder:
        provenance.show(Path(folder))
    zones = state.per_run("zones", model.zones_frame)
    opening = scenario.opening_time
    if len(zones):
        st.plotly_chart(
            state.per_run("map", lambda: charts.venue_map(model.venue, zones, opening)),
            key="venue_map",
        )
    if len(zones):
        venue_3d(model, zones)
    model_vars = state.per_run("model_vars", model.datacollector.get_model_vars_dataframe)
    st.plotly_chart(charts.venue_timeline(model_vars, opening), key="venue_timeline")
    column = st.selectbox(
        "Per zone",
        list(charts.ZONE_SERIES),
        format_func=charts.ZONE_SERIES.get,
        key="zone_series",
    )
    st.plotly_chart(charts.zone_timeline(zones, column, opening), key="zone_timeline")


def venue_3d(model: VenueModel, zones: pd.DataFrame) -> None:
    """The venue in 3D at a chosen moment (``dashboards.scene3d``), with its cameras; Play
    steps through the moments, re-drawing this view alone (a fragment), not the page."""
    st.subheader("The venue in 3D")
    playing = st.toggle("Play", key="scene_playing", help="step through the event's moments")

    @st.fragment(run_every=PLAY_EVERY_S if playing else None)
    def scene() -> None:
        opening = model.scenario.opening_time
        times = charts.map_times(zones)
        labels = [charts.clock_label(opening, t) for t in times]
        if st.session_state.get("scene_time") not in labels:  # a new run: its busiest moment
            by_time = zones.groupby("time_s")["occupancy"].sum().reindex(times).to_numpy()
            st.session_state["scene_time"] = labels[int(np.argmax(by_time))]
        elif playing:  # the next moment, round again after the last
            now = labels.index(st.session_state["scene_time"])
            st.session_state["scene_time"] = labels[(now + 1) % len(labels)]
        left, middle, right = st.columns([3, 2, 2])
        moment = left.select_slider("Moment", options=labels, key="scene_time")
        camera = middle.selectbox("Camera", scene3d.CAMERAS, key="scene_camera")
        follow = close_up = None
        if camera == scene3d.CAMERAS[1]:
            picked = st.session_state.get(ATTENTION_AVATAR)
            follow = int(
                right.number_input(
                    "Avatar (picked on the Attention page)",
                    min_value=0,
                    max_value=model.scenario.avatars - 1,
                    value=int(picked) if picked is not None else 0,
                    key="scene_follow",
                )
            )
        elif camera == scene3d.CAMERAS[2]:
            close_up = right.selectbox("Zone", list(model.venue.zones), key="scene_zone")
        t = float(times[labels.index(moment)])
        visits = state.per_run("visits", model.visits)
        walks = state.per_run("walks", lambda: scene3d.Walks.of(visits, model.venue, opening))
        centres, side = state.per_run("footprints", lambda: scene3d.footprints(model.venue))
        points = walks.at(t, centres, side)
        now = zones[zones["time_s"] == t]
        st.pydeck_chart(
            scene3d.deck(model.venue, now, points, camera, follow, close_up),
            key="venue_3d",
            height=560,
        )
        sampled, total = len(np.unique(walks.avatar)), model.scenario.avatars
        sample = "a sample of " if sampled < total else ""
        st.caption(
            f"{len(points):,} avatars drawn at {moment} ({sample}{sampled:,} of {total:,}; "
            "walking ones in blue); height: occupancy against capacity; colour: Fruin level."
        )

    scene()


def render() -> None:
    st.title("Simulate")
    scenario_upload()
    venue_upload()
    base = state.current_scenario()
    source = state.scenario_source()
    if source:
        left, right = st.columns([4, 1])
        left.info(f"Scenario from {source}")
        if right.button("Back to the default scenario"):
            st.session_state.pop(state.SCENARIO, None)
            st.session_state.pop(state.SCENARIO_SOURCE, None)
            st.rerun()
    scenario = scenario_form(base, source)
    if st.button("Run", type="primary", disabled=scenario is None) and scenario is not None:
        run(scenario)
    model = state.last_run()
    if model is not None:
        show_results(model)


render()
