"""Train: fit the avatars' GPT on visit logs and select it for the Simulate page.

Logs come from an upload (CSV or Parquet, at most ``uploads.MAX_UPLOAD_MB``) or from the
last simulation; their columns are mapped to avatar id, time and zone, with an optional
session column and time zone (``llm.logs.Columns``).
Training fine-tunes a venue's shipped model (or the selected one, or starts from scratch)
with ``llm.train.train``, drawing the loss at every evaluation, then scores the new model
against Markov and popularity baselines (``llm.evaluate``). A checkpoint can also be
uploaded (safetensors only: nothing is unpickled).

Session state (``dashboards/state.py``): reads ``"run"``; writes ``"trained"`` (the last
training) and ``"model_path"`` (the model selected for the Simulate page).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboards import charts, state
from dashboards.models import load_checkpoint
from dashboards.training import evaluation_frame, log_summary, score_checkpoint, train_model
from dashboards.uploads import (
    LOG_TYPES,
    MAX_UPLOAD_MB,
    UploadError,
    missing_columns,
    named,
    store,
    table_columns,
)
from dashboards.venues import builtin_venue, venue_for_zones
from llm import checkpoint
from llm.checkpoint import CheckpointError
from llm.evaluate import format_table
from llm.logs import Columns, LogError, read_logs
from llm.train import OptionError, TrainConfig
from twin.catalog import shipped_model_path
from twin.venue import BUILTIN_VENUES

log = logging.getLogger(__name__)
FROM_LOGS = "(zones from the logs)"
UPLOAD, LAST_RUN = "Upload a visit log", "The last simulation's visit log"


# ============================================================================ the logs
def last_run_log() -> tuple[Path, str] | None:
    """The last simulation's visit log, written once as Parquet."""
    model = state.last_run()
    if model is None:
        return None

    def write() -> Path:
        path = state.workdir() / "runs" / f"{state.last_run_id()}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        model.visits().to_parquet(path, index=False)
        return path

    return state.per_run("visits_file", write), f"the last simulation ({model.venue.name})"


def choose_log() -> tuple[Path, str] | None:
    """The log to train on, as (path, the name to show), or None with a message."""
    sources = [UPLOAD] + ([LAST_RUN] if state.last_run() is not None else [])
    source = st.radio("Visit logs", sources, horizontal=True, key="train_source")
    if source == LAST_RUN:
        return last_run_log()
    upload = st.file_uploader(
        f"Visit log (CSV or Parquet, up to {MAX_UPLOAD_MB} MB)",
        type=list(LOG_TYPES),
        max_upload_size=MAX_UPLOAD_MB,
        key="train_upload",
    )
    if upload is None:
        st.caption("Columns: an avatar id, a timestamp (unix s, ms or ISO-8601) and a zone.")
        return None
    try:
        path = store(
            upload.name,
            upload.getvalue(),
            state.workdir() / "uploads",
            LOG_TYPES,
            check=lambda staged: table_columns(staged, upload.name),
        )
    except (UploadError, LogError) as exc:
        st.error(str(exc))
        return None
    return path, upload.name


def map_columns(columns: list[str], name: str) -> Columns | None:
    """Selectboxes mapping the log's columns (and, optionally, a session column and the
    venue's time zone for logs in UTC); None (with the message) until they fit."""
    standard = Columns()
    picks: dict[str, str | None] = {}
    boxes = st.columns(3)
    for box, (field, label) in zip(
        boxes,
        (("avatar_id", "Avatar id column"), ("timestamp", "Time column"), ("zone", "Zone column")),
        strict=True,
    ):
        default = getattr(standard, field)
        picks[field] = box.selectbox(
            label,
            columns,
            index=columns.index(default) if default in columns else None,
            placeholder="choose a column",
            key=f"train_col_{field}_{name}",
        )
    left, right = st.columns(2)
    session = left.selectbox(
        "Session column (optional: a trajectory per visitor and session)",
        columns,
        index=None,
        placeholder="none",
        key=f"train_col_session_{name}",
    )
    tz = right.text_input(
        "Time zone of the venue (optional, for logs in UTC: e.g. Europe/Paris)",
        key=f"train_tz_{name}",
    ).strip()
    mapping = Columns(
        *(picks[f] or getattr(standard, f) for f in ("avatar_id", "timestamp", "zone")),
        session=session,
        tz=tz or None,
    )
    problem = missing_columns(columns, mapping, name)
    if problem:
        st.error(problem)
        return None
    return mapping


@st.cache_data(max_entries=4, show_spinner="Reading the log...")
def read_cached(path: str, columns: Columns) -> pd.DataFrame:
    """A stored log read once, not on every rerun (stored logs never change: uploads are
    kept by content hash, the last run's log by run id)."""
    return read_logs([path], columns)


def read_log(path: Path, name: str, columns: Columns) -> pd.DataFrame | None:
    try:
        return read_cached(str(path), columns)
    except LogError as exc:
        st.error(named(str(exc), path, name))
        return None


# ============================================================================ training
def training_form(frame: pd.DataFrame) -> dict[str, Any]:
    """Venue, starting point and optimisation settings."""
    guess = venue_for_zones(frame["zone"].unique())
    options = [*BUILTIN_VENUES, FROM_LOGS]
    left, right = st.columns(2)
    venue = left.selectbox(
        "Venue (its zones and legal moves)",
        options,
        index=options.index(guess) if guess else len(options) - 1,
        key="train_venue",
    )
    starts = ["Train from scratch"]
    shipped = shipped_model_path(venue) if venue != FROM_LOGS else None
    if shipped:
        starts.insert(0, f"Fine-tune the shipped model of {venue}")
    selected = state.selected_model()
    if selected:
        starts.insert(0, f"Fine-tune the selected model ({Path(selected).name})")
    start = right.selectbox("Start from", starts, key="train_start")
    init = None
    if start.startswith("Fine-tune the shipped"):
        init = str(shipped)
    elif start.startswith("Fine-tune the selected"):
        init = selected
    a, b, c, d = st.columns(4)
    max_steps = a.number_input("Steps", min_value=1, max_value=100_000, value=200, key="steps")
    eval_every = b.number_input(
        "Evaluate every (steps)", min_value=1, max_value=10_000, value=10, key="eval_every"
    )
    batch_size = c.number_input(
        "Batch (trajectories)", min_value=1, max_value=4096, value=32, key="batch_size"
    )
    lr = d.number_input(
        "Learning rate",
        min_value=1e-6,
        max_value=1.0,
        value=1e-3 if init else 3e-3,
        format="%.5f",
        key=f"lr_{init is not None}",
    )
    cfg = TrainConfig(
        max_steps=int(max_steps),
        eval_every=int(eval_every),
        checkpoint_every=max(int(max_steps), 1),
        batch_size=int(batch_size),
        lr=float(lr),
        min_lr=float(lr) / 10,
        warmup_steps=min(50, max(1, int(max_steps) // 10)),
        patience=10_000,  # the user chose the steps
    )
    return {"venue": None if venue == FROM_LOGS else venue, "init": init, "cfg": cfg}


def run_training(path: Path, name: str, columns: Columns, form: dict[str, Any]) -> None:
    """Train with a live loss curve, evaluate, and keep the result in session state."""
    cfg: TrainConfig = form["cfg"]
    venue = builtin_venue(form["venue"]) if form["venue"] else None
    out = (
        state.workdir()
        / "models"
        / (f"{datetime.now():%Y%m%d-%H%M%S}-{form['venue'] or 'log'}-{uuid.uuid4().hex[:6]}")
    )
    history: list[dict[str, Any]] = []
    with st.status(f"Training on {name}...", expanded=True) as status:
        curve = st.empty()

        def on_eval(row: dict[str, Any]) -> None:
            history.append(row)
            status.update(
                label=f"Training: step {row['step']} of {cfg.max_steps}, "
                f"validation loss {row['val_zone_loss']:.4f}"
            )
            curve.plotly_chart(charts.loss_curve(history), key=f"loss_live_{len(history)}")

        try:
            model_path, summary = train_model(
                [path],
                out,
                venue=venue,
                columns=columns,
                init=form["init"],
                cfg=cfg,
                on_eval=on_eval,
            )
            status.update(label="Evaluating against the Markov baselines...")
            evaluation = score_checkpoint(model_path, [path], columns, seed=cfg.seed)
        except (LogError, CheckpointError, OptionError, ValueError) as exc:
            status.update(label="Training failed", state="error")
            st.error(f"Training failed: {named(str(exc), path, name)}")
            return
        except Exception as exc:  # the page stays usable whatever went wrong
            log.exception("training failed")
            status.update(label="Training failed", state="error")
            st.error(f"Training failed: {type(exc).__name__}: {exc}")
            return
        status.update(label=f"Trained {summary['steps']} steps on {name}", state="complete")
    state.keep_training(
        {
            "path": str(model_path),
            "logs": name,
            "history": history,
            "summary": summary,
            "evaluation": evaluation,
        }
    )


def show_training(result: dict[str, Any]) -> None:
    st.subheader("Last training")
    st.caption(f"{result['path']} (trained on {result['logs']})")
    st.plotly_chart(charts.loss_curve(result["history"]), key="loss_curve")
    st.dataframe(
        pd.DataFrame(result["history"])[
            ["step", "epoch", "lr", "train_zone_loss", "val_zone_loss", "val_perplexity"]
        ],
        hide_index=True,
        key="train_history",
    )
    st.markdown("**Held-out next-visit metrics, beside Markov chains and popularity**")
    st.dataframe(evaluation_frame(result["evaluation"]), key="train_evaluation")
    st.code(format_table(result["evaluation"]), language=None)
    if state.selected_model() == result["path"]:
        st.success("This model is selected: GPT avatars on the Simulate page use it.")
    else:
        st.button(
            "Use this model on the Simulate page",
            type="primary",
            key="select_trained",
            on_click=state.select_model,
            args=(result["path"],),
        )


# ============================================================================ checkpoints
def checkpoint_upload() -> None:
    upload = st.file_uploader(
        "Or upload a model (.safetensors)",
        type=["safetensors"],
        max_upload_size=MAX_UPLOAD_MB,
        key="model_upload",
    )
    if upload is None:
        return
    path = None
    try:
        path = store(
            upload.name,
            upload.getvalue(),
            state.workdir() / "uploads",
            ["safetensors"],
            check=checkpoint.load,
        )
        ckpt = load_checkpoint(path)
    except (UploadError, CheckpointError) as exc:
        message = named(str(exc), path, upload.name) if path else str(exc)
        st.error(f"Model not loaded: {message}")
        return
    zones = ", ".join(ckpt.vocab.names[:8]) + (" ..." if len(ckpt.vocab) > 8 else "")
    st.caption(f"{upload.name}: {len(ckpt.vocab)} zones ({zones})")
    if state.selected_model() == str(path):
        st.success(f"{upload.name} is selected: GPT avatars on the Simulate page use it.")
    else:
        st.button(
            "Use the uploaded model on the Simulate page",
            key="select_uploaded",
            on_click=state.select_model,
            args=(path,),
        )


def render() -> None:
    st.title("Train")
    selected = state.selected_model()
    if selected:
        left, right = st.columns([4, 1])
        left.info(f"Model selected for the Simulate page: {selected}")
        right.button(
            "Use the shipped models", key="unselect", on_click=state.select_model, args=(None,)
        )
    else:
        st.caption("The Simulate page's GPT avatars use the venues' shipped models.")
    chosen = choose_log()
    if chosen is not None:
        path, name = chosen
        try:
            columns = table_columns(path, name)
        except LogError as exc:
            st.error(str(exc))
            columns = None
        mapping = map_columns(columns, name) if columns else None
        frame = read_log(path, name, mapping) if mapping else None
        if frame is not None:
            summary = log_summary(frame)
            a, b, c = st.columns(3)
            a.metric("Visits", f"{summary['visits']:,}")
            b.metric("Trajectories", f"{summary['trajectories']:,}")
            c.metric("Zones", f"{summary['zones']:,}")
            st.plotly_chart(charts.visits_per_zone(frame), key="log_zones")
            form = training_form(frame)
            if st.button("Train", type="primary", key="train"):
                run_training(path, name, mapping, form)
    result = state.last_training()
    if result is not None:
        show_training(result)
    with st.expander("Upload a model"):
        checkpoint_upload()


render()
