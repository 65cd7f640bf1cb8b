"""The venuetwin dashboard: ``streamlit run dashboards/app.py``.

Five pages, each a file in ``dashboards/pages/``: Simulate (run a scenario, watch the
venue, read the KPIs), Attention (why a GPT avatar went where it went), Optimise (tune the
venue's levers), Train (fit avatar models on visit logs) and Validate (how closely the GPT
twin behaves like its reference). They share the last run, the
scenario and the selected model through ``st.session_state`` (``dashboards/state.py``).

The server runs torch on ``$VENUETWIN_TORCH_THREADS`` threads (default 1), for what runs
outside a simulation's steps (training, explanations): threads that spin while the browser
or other work holds a core slow it down many times over. A simulation's steps run on one
thread whatever this says (``VenueModel.step``, ``llm.decoder.one_thread``).
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st
import torch

PAGES = Path(__file__).parent / "pages"
THREADS_ENV = "VENUETWIN_TORCH_THREADS"


def torch_threads() -> int:
    value = os.environ.get(THREADS_ENV, "1")
    return max(1, int(value)) if value.isdigit() else 1


torch.set_num_threads(torch_threads())

st.set_page_config(page_title="venuetwin", page_icon=":material/stadium:", layout="wide")
page = st.navigation(
    [
        st.Page(
            PAGES / "simulate.py", title="Simulate", icon=":material/play_circle:", default=True
        ),
        st.Page(PAGES / "attention.py", title="Attention", icon=":material/visibility:"),
        st.Page(PAGES / "optimise.py", title="Optimise", icon=":material/tune:"),
        st.Page(PAGES / "train.py", title="Train", icon=":material/model_training:"),
        st.Page(PAGES / "validate.py", title="Validate", icon=":material/fact_check:"),
    ]
)
page.run()
