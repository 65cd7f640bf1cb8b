"""Validate: does the GPT twin behave like the visitors it learnt from?

Runs ``twin.validate.validate`` for the current venue and model (the Simulate page's
scenario, the model selected on Train or the venue's shipped one) against the scripted
visitors or an uploaded visit log, and shows what ``venuetwin validate --html`` writes:
the compared KPIs with their targets, who attends the shows, every what-if's cells (its
noise, whether it passed, how many did) and the zones where its response parts from the
reference's, shares, occupancy curves and dwell distributions (``twin.validate_report``,
one definition of each).

Session state: reads ``"scenario"`` and ``"model_path"`` (``dashboards.state``); keeps the
last report in ``"validation"``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboards import state, uploads
from dashboards.venues import venue_label
from llm.checkpoint import CheckpointError
from llm.logs import Columns, LogError
from twin import ScenarioError, VenueError
from twin.validate import validate
from twin.validate_report import (
    attendance_rows,
    figures,
    intervention_rows,
    log_text,
    model_text,
    readable_table,
    zone_rows,
)
from twin.venue import BUILTIN_VENUES
from twin.whatifs import WHATIFS

log = logging.getLogger(__name__)
REPORT = "validation"


def settings() -> dict[str, Any]:
    """The form: venue (built-in, or the Simulate page's own), crowd, seeds, model,
    reference, what-ifs."""
    base = state.current_scenario()
    venues: list[str] = list(BUILTIN_VENUES)
    if isinstance(base.venue, str) and base.venue not in venues:
        venues.append(base.venue)  # a venue file the Simulate page uses
    start = base.venue if isinstance(base.venue, str) else str(state.OPENING_SCENARIO.venue)
    left, middle, right, far = st.columns(4)
    venue = left.selectbox(
        "Venue", venues, index=venues.index(start), key="val-venue", format_func=venue_label
    )
    chosen: dict[str, Any] = {
        "base": base,
        "venue": venue,
        "avatars": middle.number_input(
            "Avatars", 50, 100_000, int(base.avatars), step=100, key="val-n"
        ),
        "hours": right.number_input(
            "Hours", 0.5, 24.0, float(base.hours), step=0.5, key="val-hours"
        ),
        "seeds": far.number_input("Seeds", 1, 5, 2, key="val-seeds"),
    }
    model = state.selected_model()
    use_model = bool(model) and st.checkbox(f"Use the model selected on Train ({model})")
    chosen["model"] = model if use_model else None
    chosen["reference"] = st.radio(
        "Reference", ["scripted visitors", "an uploaded visit log"], horizontal=True, key="val-ref"
    )
    chosen["what_ifs"] = st.multiselect(
        "What-ifs (each runs twin and reference again)",
        list(WHATIFS),
        default=list(WHATIFS),
        format_func=WHATIFS.get,
        key="val-whatifs",
    )
    chosen["upload"] = None
    if chosen["reference"] == "an uploaded visit log":
        chosen["upload"] = st.file_uploader("Visit log (CSV or Parquet)", type=["csv", "parquet"])
        st.caption("Columns avatar_id, timestamp, zone as `venuetwin train` reads them.")
    return chosen


def run_validation(chosen: dict[str, Any]) -> None:
    """Run ``twin.validate.validate`` with a progress bar; keep the report in session."""
    logs = None
    upload, base, venue = chosen["upload"], chosen["base"], chosen["venue"]
    try:
        if upload is not None:
            path = uploads.store(
                upload.name,
                upload.getvalue(),
                state.workdir() / "uploads",
                ("csv", "parquet"),
                check=lambda staged: uploads.table_columns(staged, upload.name),
            )
            logs = [str(path)]
        elif chosen["reference"] == "an uploaded visit log":
            raise ScenarioError("choose a visit log to upload first")
        bar = st.progress(0.0, text="starting...")

        def progress(done: int, total: int) -> None:
            bar.progress(done / total, text=f"{done} of {total} runs done")

        st.session_state[REPORT] = validate(
            venue,
            avatars=int(chosen["avatars"]) if logs is None else None,
            hours=float(chosen["hours"]) if logs is None else None,
            seeds=int(chosen["seeds"]),
            model=chosen["model"],
            reference=logs or "scripted",
            columns=Columns(),
            with_interventions=bool(chosen["what_ifs"]),
            intervention_keys=chosen["what_ifs"],
            scenario=base if base.venue == venue else None,  # its shows, arrivals, levers
            on_done=progress,
        )
    except (ScenarioError, VenueError, LogError, CheckpointError, uploads.UploadError) as exc:
        st.error(f"Not validated: {exc}")
    except Exception as exc:  # a failed run must leave the page usable
        log.exception("validation failed")
        st.error(f"The validation stopped with an error: {exc}")


def show(report: dict[str, Any]) -> None:
    """The report: targets met, the table, the interventions, the figures."""
    verdict = report["passed"]
    met, total = sum(verdict["figures"].values()), len(verdict["figures"])
    st.subheader(f"{report['venue']}: {met} of {total} targets met")
    cols = st.columns(5)
    cols[0].metric("Targets met", f"{met} of {total}")
    cols[1].metric("Too noisy to tell", len(verdict.get("too_noisy", [])))
    cols[2].metric("Visitors", f"{report['avatars']:,}")
    cols[3].metric("Hours", f"{report['hours']:g}")
    cols[4].metric("Seeds", len(report["seeds"]))
    reference = report["reference"]
    if isinstance(reference, list):
        reference = ", ".join(Path(p).name for p in reference)
    st.caption(f"Model: {model_text(report)}; reference: {reference}.")
    if report.get("log"):
        st.caption(log_text(report))
    st.caption(
        "Noise floor: the same figure between samples that differ by chance alone (two "
        "random halves of the reference's visitors, or two of its seeds; two of the twin's "
        "seeds), the larger. A figure whose floor is above its target is too noisy to tell."
    )
    st.dataframe(
        pd.DataFrame(readable_table(report)),
        hide_index=True,
        width="stretch",
        key="val-table",
    )
    shows = attendance_rows(report)
    if shows:
        st.subheader("Who attends the shows")
        st.caption("The share present for at least half of each of a stage's shows.")
        st.dataframe(pd.DataFrame(shows), hide_index=True, key="val-attendance")
    rows = intervention_rows(report)
    if rows:
        cells = verdict["intervention_cells"]
        st.subheader(f"What-ifs: {cells['met']} of {cells['of']} cells met")
        st.caption(
            "A cell is met when the twin's change is 0.67 to 1.5 times the reference's, or "
            "both are within the reference's seed noise (two standard errors)."
        )
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="val-interventions")
        for i, item in enumerate(report["interventions"]):
            with st.expander(f"{item['name']}: where the twin parts, zone by zone"):
                st.caption("Change of visits per zone, twin against reference.")
                st.dataframe(pd.DataFrame(zone_rows(item)), hide_index=True, key=f"val-zones-{i}")
                risk = zone_rows(item, of="zone_crowd_risk")
                if risk:
                    st.caption("Change of crowd risk per zone (person-minutes at Fruin E/F).")
                    st.dataframe(pd.DataFrame(risk), hide_index=True, key=f"val-risk-{i}")
    for i, (title, fig) in enumerate(figures(report).items()):
        st.subheader(title)
        st.plotly_chart(fig, key=f"val-figure-{i}")


def render() -> None:
    st.title("Validate the twin")
    st.caption(
        "The GPT avatars and a reference run the same scenario with the same seeds (the "
        "same arrivals and visitors); each figure is held to a target. Against the scripted "
        "visitors it also compares what-ifs: staff, gates, caps, arrivals, the crowd's "
        "size, the programme and a zone closed."
    )
    chosen = settings()
    if st.button("Run the validation", type="primary", key="val-run"):
        run_validation(chosen)
    report = st.session_state.get(REPORT)
    if report is None:
        st.info("No validation yet: run one above.")
        return
    show(report)


render()
