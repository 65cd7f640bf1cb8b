"""What the dashboard's pages share through ``st.session_state``, and helpers to use it.

Keys (every page reads them through the helpers below, never by bare strings):

``"scenario"`` -- ``twin.Scenario``
    The scenario that pre-fills the Simulate page's form (venue, avatars, hours, policy,
    seed, levers; its other fields, such as shows and arrival profile, are kept as they
    are). Set by uploading a scenario TOML on the Simulate page, or by another page, e.g.
    the Optimise page's "apply the best trial": ``apply_scenario(best, "Optuna trial 12")``.
``"scenario_source"`` -- ``str``
    Where that scenario came from, shown above the form ("uploaded friday.toml",
    "optimise: study expo-levers, trial 12").
``"model_path"`` -- ``str``
    The GPT checkpoint (``*.safetensors``) selected on the Train page; the Simulate page
    runs GPT avatars with it instead of the venue's shipped model. ``select_model(path)``.
``"run"`` -- ``twin.VenueModel``
    The last finished simulation; the Attention page explains its avatars and the Train
    page can train on its visit log. ``"run_id"`` (``str``) names it, so that what a page
    computed from one run is never shown for another.
``"run_cache"`` -- ``dict``
    What pages computed from the last run (its visit log, an avatar's decisions), kept
    until the next run: ``per_run(key, compute)``.
``"trained"`` -- ``dict``
    The last training on the Train page: ``path`` (the new checkpoint), ``history`` (one
    dict per evaluation: step, train and validation losses), ``summary`` (what
    ``llm.train.train`` returned) and ``evaluation`` (``llm.evaluate.evaluate``'s result).

Pages written by others plug in with ``apply_scenario`` and ``select_model``; a page that
changes the scenario should then ``st.switch_page("pages/simulate.py")``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st

from twin import Scenario, VenueModel

SCENARIO = "scenario"
SCENARIO_SOURCE = "scenario_source"
MODEL_PATH = "model_path"
RUN = "run"
RUN_ID = "run_id"
RUN_CACHE = "run_cache"
TRAINED = "trained"
T = TypeVar("T")

#: Where the dashboard writes what it makes (trained models, uploads); runs/ is not tracked.
WORKDIR_ENV = "VENUETWIN_DASHBOARD_DIR"
DEFAULT_WORKDIR = Path("runs") / "dashboard"


def workdir() -> Path:
    """The dashboard's own folder (``$VENUETWIN_DASHBOARD_DIR``, default runs/dashboard)."""
    path = Path(os.environ.get(WORKDIR_ENV) or DEFAULT_WORKDIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def apply_scenario(scenario: Scenario, source: str) -> None:
    """Make ``scenario`` the one the Simulate page's form starts from."""
    st.session_state[SCENARIO] = scenario
    st.session_state[SCENARIO_SOURCE] = source


#: What the dashboard opens on: the concert hall at its design crowd, whose bars queue,
#: whose hall fills to Fruin E for the show and empties at its end, so that every lever
#: shows (the library's default, 2,000 visitors in an expo built for 10,000, queued nowhere).
OPENING_SCENARIO = Scenario(venue="concert_hall", avatars=2500, hours=4.0, seed=1)


def scenario() -> Scenario | None:
    return st.session_state.get(SCENARIO)


def current_scenario() -> Scenario:
    """The scenario the pages start from: the one applied, else the opening one."""
    return scenario() or OPENING_SCENARIO


def scenario_source() -> str | None:
    return st.session_state.get(SCENARIO_SOURCE)


def select_model(path: str | os.PathLike[str] | None) -> None:
    """Run GPT avatars with the checkpoint at ``path`` (None: the venue's shipped model)."""
    if path is None:
        st.session_state.pop(MODEL_PATH, None)
    else:
        st.session_state[MODEL_PATH] = str(path)


def selected_model() -> str | None:
    return st.session_state.get(MODEL_PATH)


def keep_run(model: VenueModel) -> str:
    """Keep a finished simulation for the other pages; returns its new id."""
    run_id = uuid.uuid4().hex[:12]
    st.session_state[RUN] = model
    st.session_state[RUN_ID] = run_id
    return run_id


def last_run() -> VenueModel | None:
    return st.session_state.get(RUN)


def last_run_id() -> str | None:
    return st.session_state.get(RUN_ID)


def per_run(key: str, compute: Callable[[], T]) -> T:
    """``compute()`` once per run: kept beside the last run, dropped with it."""
    store = st.session_state.setdefault(RUN_CACHE, {})
    if store.get("_run_id") != last_run_id():
        store.clear()
        store["_run_id"] = last_run_id()
    if key not in store:
        store[key] = compute()
    return store[key]


def keep_training(result: dict[str, Any]) -> None:
    st.session_state[TRAINED] = result


def last_training() -> dict[str, Any] | None:
    return st.session_state.get(TRAINED)
