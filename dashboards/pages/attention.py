"""Attention: why did a GPT avatar of the last run go where it went?

Pick an avatar (from the list, or by clicking it on the chart) and one of its decisions;
the page shows what the twin's ``model.explain(avatar, step=...)`` returns for it: the
visits in its context, the attention of every layer and head over them, and the
probability of every place it could go next with what that place showed it. Reads the
last run from session state (``"run"``, see ``dashboards/state.py``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboards import charts, state
from dashboards.explain import Decision, decisions, gpt_avatars
from twin import VenueModel

#: Above this many GPT avatars the avatar is typed in rather than picked from a list.
LIST_AVATARS_UP_TO = 5000
AVATAR_KEY, PICK_KEY = "attention_avatar", "attention_pick"


def picked_on_chart() -> None:
    """A point clicked on the avatars chart selects that avatar."""
    points = st.session_state[PICK_KEY].selection.points
    if points:
        st.session_state[AVATAR_KEY] = int(points[0]["customdata"])


def choose_avatar(visits: pd.DataFrame, avatars: list[int]) -> int | None:
    if AVATAR_KEY in st.session_state and st.session_state[AVATAR_KEY] not in avatars:
        del st.session_state[AVATAR_KEY]
    st.plotly_chart(
        charts.avatar_scatter(visits, avatars),
        key=PICK_KEY,
        on_select=picked_on_chart,
        selection_mode="points",
    )
    if len(avatars) <= LIST_AVATARS_UP_TO:
        return st.selectbox(
            f"Avatar ({len(avatars):,} decided with the GPT)", avatars, key=AVATAR_KEY
        )
    avatar = int(
        st.number_input(
            f"Avatar id ({len(avatars):,} decided with the GPT)",
            min_value=0,
            value=avatars[0],
            step=1,
            key=AVATAR_KEY,
        )
    )
    if avatar not in set(avatars):
        st.warning(f"Avatar {avatar} made no decision with the GPT in this run.")
        return None
    return avatar


def decision_label(model: VenueModel, d: Decision) -> str:
    when = charts.clock_label(model.scenario.opening_time, d.time_s)
    return f"{when}  after visit {d.visit + 1}: {d.zone} -> {d.next_zone}"


def show_explanation(model: VenueModel, avatar: int, decision: Decision) -> None:
    why = model.explain(avatar, step=decision.step)
    when = charts.clock_label(model.scenario.opening_time, why.time_s)
    st.markdown(
        f"**Avatar {avatar}** at {when}, ending visit {why.visit + 1}, chose "
        f"**{why.chosen or 'unknown'}**."
    )
    st.markdown("**Visits in its context** (oldest first: zone, clock, crowd level, stay)")
    st.dataframe(
        pd.DataFrame({"visit": charts.context_labels(why)}),
        hide_index=True,
        key="attention_context",
    )
    st.plotly_chart(charts.candidate_bars(why), key="attention_candidates_chart")
    st.dataframe(
        pd.DataFrame(
            {
                "zone": [z for z, _ in why.candidates],
                "probability": [p for _, p in why.candidates],
                "showed": why.shown or [""] * len(why.candidates),
                "chosen": [z == why.chosen for z, _ in why.candidates],
            }
        ),
        hide_index=True,
        key="attention_candidates",
    )
    layers, heads = why.attention.shape[:2]
    left, right = st.columns(2)
    layer = left.selectbox("Layer", range(layers), format_func=lambda i: f"{i + 1}", key="layer")
    head = right.selectbox("Head", range(heads), format_func=lambda i: f"{i + 1}", key="head")
    st.plotly_chart(charts.attention_heatmap(why, layer, head), key="attention_head")
    st.markdown("**All layers (rows) and heads (columns)**")
    st.plotly_chart(charts.attention_grid(why), key="attention_grid")


def render() -> None:
    st.title("Attention")
    model = state.last_run()
    if model is None:
        st.info("Run a simulation on the Simulate page first; its GPT avatars are explained here.")
        return
    if getattr(model.policy, "name", "") != "gpt":
        st.info(
            f"Explanations need GPT avatars: the last run's avatars used the "
            f"{model.policy.name} policy. Run one with policy gpt on the Simulate page."
        )
        return
    visits = state.per_run("visits", model.visits)
    avatars = state.per_run("gpt_avatars", lambda: gpt_avatars(visits))
    if not avatars:
        st.info("No avatar has decided yet in the last run.")
        return
    avatar = choose_avatar(visits, avatars)
    if avatar is None:
        return
    made: list[Decision] = state.per_run(
        f"decisions-{avatar}", lambda: decisions(model, visits, avatar)
    )
    if not made:
        st.info(f"Avatar {avatar} has no decision the GPT can explain (none kept in memory).")
        return
    chosen: Any = st.selectbox(
        f"Decision ({len(made)} of avatar {avatar})",
        made,
        index=len(made) - 1,
        format_func=lambda d: decision_label(model, d),
        key=f"decision-{state.last_run_id()}-{avatar}",
    )
    show_explanation(model, avatar, chosen)


render()
