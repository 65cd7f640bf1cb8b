"""Optimise: launch or resume an Optuna study of the venue's levers on the twin, read the
Pareto front, the history and the importances, and apply a trial to the Simulate page.

Studies live in one SQLite file in the dashboard's folder (``studies.db``), so a study
started here resumes here, opens in ``optuna-dashboard sqlite:///.../studies.db``, and can
be joined from a shell with ``venuetwin optimize --storage ... --study NAME``. Everything
shown comes from ``twin.optimize`` and ``twin.study_results``; the figures are
``optuna.visualization``'s own.

Session state: starts from ``"scenario"`` (the Simulate page's, if one was applied);
"apply" sets it (``state.apply_scenario``) and switches to the Simulate page.
"""

from __future__ import annotations

import logging
import os

import optuna
import pandas as pd
import streamlit as st

from dashboards import state
from llm.checkpoint import CheckpointError
from twin import Levers, Scenario, ScenarioError, VenueError
from twin.optimize import OBJECTIVE_NAMES, optimize
from twin.scenario import POLICIES
from twin.search import SearchSpace
from twin.study_results import (
    balanced,
    best_per_objective,
    best_scenario,
    figures,
    pareto_front,
    trials_frame,
    write_results,
)
from twin.venue import BUILTIN_VENUES

log = logging.getLogger(__name__)


def storage_url() -> str:
    return f"sqlite:///{(state.workdir() / 'studies.db').resolve()}"


def study_names(url: str) -> list[str]:
    if not (state.workdir() / "studies.db").exists():
        return []
    return sorted(optuna.get_all_study_names(storage=url))


# ============================================================================ launch
def scenario_form() -> Scenario | None:
    """The scenario to optimise: the applied one, or a built-in venue, made small enough."""
    base = state.current_scenario()
    venues = list(BUILTIN_VENUES)
    default = str(state.OPENING_SCENARIO.venue)
    start = base.venue if isinstance(base.venue, str) and base.venue in venues else default
    left, middle, right, far = st.columns(4)
    venue = left.selectbox("Venue", venues, index=venues.index(start), key="opt-venue")
    avatars = middle.number_input(
        "Avatars", 50, 100_000, min(int(base.avatars), 2000), step=100, key="opt-avatars"
    )
    hours = right.number_input("Hours", 0.5, 24.0, float(base.hours), step=0.5, key="opt-hours")
    policy = far.selectbox(
        "Avatars decide with", POLICIES, index=POLICIES.index(base.policy), key="opt-policy"
    )
    same_venue = isinstance(base.venue, str) and base.venue == venue
    model = base.model if same_venue else None
    trained = state.selected_model()
    if trained and st.checkbox(f"GPT avatars use the model selected on Train ({trained})"):
        model = trained
    try:  # the rest of the scenario (shows, arrivals, ...) as the Simulate page has it
        return base.replace(
            venue=venue,
            avatars=int(avatars),
            hours=float(hours),
            policy=policy,
            model=model,
            levers=base.levers if same_venue else Levers(),
            shows=base.shows if same_venue else None,
            search=base.search if same_venue else None,
        )
    except ScenarioError as exc:
        st.error(f"Scenario refused: {exc}")
        return None


def launch(scenario: Scenario, url: str) -> None:
    try:
        space = SearchSpace.of(scenario, "this scenario")
    except (ScenarioError, VenueError) as exc:
        st.error(f"Search space refused: {exc}")
        return
    with st.expander("Search space (the scenario's [search] table, or the venue's default)"):
        st.json(space.to_table())
    left, middle, right, far = st.columns(4)
    trials = left.number_input("Trials", 1, 1000, 8, key="opt-trials")
    seeds = middle.number_input("Seeds per trial", 1, 20, 2, key="opt-seeds")
    workers = right.number_input("Workers", 1, os.cpu_count() or 1, 1, key="opt-workers")
    venue = scenario.load_venue().name
    name = far.text_input("Study", f"{venue}-levers", key=f"opt-study-{venue}")
    if not st.button("Run or resume the study", type="primary", key="opt-run"):
        return
    bar = st.progress(0.0, text="starting the study...")

    def progress(done: int, total: int) -> None:
        bar.progress(min(1.0, done / total), text=f"{done} of {total} trials done")

    try:
        study = optimize(
            scenario,
            trials=int(trials),
            seeds=int(seeds),
            workers=int(workers),
            storage=url,
            study_name=name,
            out=state.workdir() / "optimise" / name,
            progress=False,
            source="this scenario",
            on_trial=progress,
        )
        write_results(study, state.workdir() / "optimise" / name)
    except (ScenarioError, VenueError, CheckpointError) as exc:
        st.error(f"Study not run: {exc}")
        return
    except Exception as exc:  # a failed run must leave the page usable
        log.exception("optimisation failed")
        st.error(f"The study stopped with an error: {exc}")
        return
    bar.progress(1.0, text=f"done: {len(study.trials)} trials in the study")
    st.session_state["opt-shown"] = name


# ============================================================================ results
def results(url: str) -> None:
    names = study_names(url)
    if not names:
        st.info("No study yet: run one above.")
        return
    shown = st.session_state.get("opt-shown")
    name = st.selectbox(
        "Study", names, index=names.index(shown) if shown in names else 0, key="opt-show"
    )
    study = optuna.load_study(study_name=name, storage=url)
    frame = trials_frame(study)
    done = frame[frame["state"] == "COMPLETE"] if len(frame) else frame
    if done.empty:
        st.info("This study has no completed trial yet.")
        return
    front = pareto_front(frame)
    cols = st.columns(4)
    cols[0].metric("Trials completed", len(done))
    cols[1].metric("Feasible (within the staff budget)", int(done["feasible"].sum()))
    cols[2].metric("On the Pareto front", len(front))
    cols[3].metric("Failed or running", len(frame) - len(done))

    figs = figures(study)
    st.subheader("Pareto front")
    st.plotly_chart(figs["pareto"], key="opt-pareto")
    tabs = st.tabs([f"History: {n}" for n in OBJECTIVE_NAMES] + ["Importances"])
    for tab, objective in zip(tabs, OBJECTIVE_NAMES, strict=False):
        tab.plotly_chart(figs[f"history.{objective}"], key=f"opt-history-{objective}")
    with tabs[-1]:
        shown_any = False
        for objective in OBJECTIVE_NAMES:
            if f"importance.{objective}" in figs:
                st.plotly_chart(figs[f"importance.{objective}"], key=f"opt-imp-{objective}")
                shown_any = True
        if not shown_any:
            st.info("Importances need a few completed trials with different levers.")

    st.subheader("Best trial per objective")
    best = best_per_objective(frame)
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "objective": k,
                    **{n: v[n] for n in OBJECTIVE_NAMES},
                    "trial": v["trial"],
                    "staff": v["staff"],
                    **v["params"],
                }
                for k, v in best.items()
            ]
        ),
        hide_index=True,
    )
    st.subheader("All trials")
    st.dataframe(frame, hide_index=True)
    st.download_button(
        "Download trials.csv", frame.to_csv(index=False), f"{name}-trials.csv", "text/csv"
    )
    apply(study, name, front)


def apply(study: optuna.Study, name: str, front: pd.DataFrame) -> None:
    if front.empty:
        st.info("No feasible trial yet to apply.")
        return
    pick = int(balanced(front)["trial"])
    options = [int(t) for t in front["trial"]]
    trial = st.selectbox(
        "Trial to apply (default: the balanced Pareto trial)",
        options,
        index=options.index(pick),
        key="opt-apply-trial",
    )
    if st.button("Apply this trial on the Simulate page", key="opt-apply"):
        scenario = best_scenario(study, trial)
        state.apply_scenario(scenario, f"optimise: study {name}, trial {trial}")
        st.switch_page("pages/simulate.py")


def render() -> None:
    st.title("Optimise")
    st.caption(
        "Optuna tunes the venue's levers on the twin: crowd risk (person-minutes at Fruin "
        "E/F) and mean queue wait down, mean satisfaction up, within the staff budget."
    )
    url = storage_url()
    scenario = scenario_form()
    if scenario is not None:
        launch(scenario, url)
    st.divider()
    results(url)


render()
