"""What a study found: the Pareto front, the best trial per objective, parameter
importances, the plots, and the best scenario written back as a scenario file.

``write_results(study, out)`` writes ``pareto.csv``, ``trials.csv``, ``best.toml``,
``summary.json`` and ``report.html`` (the plots). The same figures come from ``figures``
for the dashboard; they are ``optuna.visualization``'s own.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go

from llm.fileio import atomic_path, write_text_atomic
from twin.optimize import OBJECTIVE_NAMES, OBJECTIVES, objective_of
from twin.scenario import Scenario

COMPLETE = optuna.trial.TrialState.COMPLETE
#: +1 where larger is better, -1 where smaller is.
SENSE = np.array([1.0 if d == "maximize" else -1.0 for _, d, _ in OBJECTIVES])


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, levers, objective means and spreads, staff."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name}
        row |= {f"param.{k}": v for k, v in t.params.items()}
        for i, name in enumerate(OBJECTIVE_NAMES):
            row[name] = t.values[i] if t.values else np.nan
            row[f"{name}_std"] = t.user_attrs.get(f"{name}_std", np.nan)
        row["staff"] = t.user_attrs.get("staff", np.nan)
        row["feasible"] = t.user_attrs.get("constraint", 0.0) <= 0
        row["duration_s"] = t.duration.total_seconds() if t.duration else np.nan
        row["retry_of"] = t.system_attrs.get("failed_trial")
        rows.append(row)
    return pd.DataFrame(rows)


def pareto_front(frame: pd.DataFrame) -> pd.DataFrame:
    """The feasible completed trials that no other feasible trial beats on every objective."""
    done = frame[(frame["state"] == "COMPLETE") & frame["feasible"]]
    scores = done[list(OBJECTIVE_NAMES)].to_numpy() * SENSE  # larger is better everywhere
    keep = [not np.any(np.all(scores >= s, axis=1) & np.any(scores > s, axis=1)) for s in scores]
    return done[np.array(keep, dtype=bool)].sort_values(OBJECTIVE_NAMES[0])


def balanced(front: pd.DataFrame) -> pd.Series:
    """The Pareto trial closest to the ideal point, each objective scaled to [0, 1] on the
    front (0 best): the one written to ``best.toml``."""
    scores = front[list(OBJECTIVE_NAMES)].to_numpy() * SENSE
    span = scores.max(axis=0) - scores.min(axis=0)
    regret = (scores.max(axis=0) - scores) / np.where(span > 0, span, 1.0)
    return front.iloc[int(np.argmin(np.linalg.norm(regret, axis=1)))]


def best_per_objective(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    done = frame[(frame["state"] == "COMPLETE") & frame["feasible"]]
    best = {}
    for name, direction, _ in OBJECTIVES:
        if done.empty:
            break
        row = done.loc[done[name].idxmax() if direction == "maximize" else done[name].idxmin()]
        best[name] = _trial_summary(row)
    return best


def _loss(i: int) -> Callable[[optuna.trial.FrozenTrial], float]:
    """Objective ``i`` as a value to make small (PED-ANOVA looks for low values)."""
    return lambda t: -SENSE[i] * t.values[i]


def importances(study: optuna.Study) -> dict[str, dict[str, float]]:
    """Each objective's parameter importances (PED-ANOVA; empty while too few trials)."""
    out: dict[str, dict[str, float]] = {}
    for i, name in enumerate(OBJECTIVE_NAMES):
        try:
            with warnings.catch_warnings():  # few trials: "importances will be equal"
                warnings.simplefilter("ignore", UserWarning)
                values = optuna.importance.get_param_importances(
                    study,
                    evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
                    target=_loss(i),
                )
        except (RuntimeError, ValueError, ZeroDivisionError):
            values = {}
        out[name] = {k: round(float(v), 4) for k, v in values.items()}
    return out


def figures(study: optuna.Study) -> dict[str, go.Figure]:
    """The Pareto front, each objective's history, and the wait's parameter importances."""
    vis = optuna.visualization
    figs = {"pareto": vis.plot_pareto_front(study, target_names=list(OBJECTIVE_NAMES))}
    for i, name in enumerate(OBJECTIVE_NAMES):
        figs[f"history.{name}"] = vis.plot_optimization_history(
            study, target=lambda t, i=i: t.values[i], target_name=name
        )
    if len(study.get_trials(deepcopy=False, states=(COMPLETE,))) >= 2:
        for i, name in enumerate(OBJECTIVE_NAMES):
            with (
                contextlib.suppress(RuntimeError, ValueError, ZeroDivisionError),
                warnings.catch_warnings(),
            ):
                warnings.simplefilter("ignore", UserWarning)
                figs[f"importance.{name}"] = vis.plot_param_importances(
                    study,
                    evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
                    target=_loss(i),
                    target_name=name,
                )
    return figs


def best_scenario(study: optuna.Study, trial_number: int) -> Scenario:
    """The study's scenario with the levers of trial ``trial_number``, named after it."""
    objective = objective_of(study)
    params = study.trials[trial_number].params
    scenario = objective.space.apply(objective.scenario, params)
    return scenario.replace(name=f"{objective.scenario.name}-trial{trial_number}")


def write_results(study: optuna.Study, out: str | os.PathLike[str]) -> dict[str, Any]:
    """Write the study's results into ``out`` (atomically, file by file)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frame = trials_frame(study)
    front = pareto_front(frame)
    with atomic_path(out / "trials.csv") as tmp:
        frame.to_csv(tmp, index=False)
    with atomic_path(out / "pareto.csv") as tmp:
        front.to_csv(tmp, index=False)
    summary: dict[str, Any] = {
        "study": study.study_name,
        "objectives": {name: direction for name, direction, _ in OBJECTIVES},
        "seeds": study.user_attrs["venuetwin"]["seeds"],
        "search": study.user_attrs["venuetwin"]["scenario"].get("search"),
        "trials": {s: int((frame["state"] == s).sum()) for s in sorted(set(frame["state"]))},
        "feasible": int(((frame["state"] == "COMPLETE") & frame["feasible"]).sum()),
        "pareto_trials": [int(t) for t in front["trial"]],
        "best": best_per_objective(frame),
        "importances": importances(study),
    }
    if not front.empty:
        chosen = balanced(front)
        summary["balanced"] = _trial_summary(chosen)
        best_scenario(study, int(chosen["trial"])).to_toml(out / "best.toml")
        summary["best_scenario"] = str(out / "best.toml")
    figs = figures(study)
    html = "".join(
        f"<h2>{name}</h2>" + fig.to_html(full_html=False, include_plotlyjs=i == 0)
        for i, (name, fig) in enumerate(figs.items())
    )
    write_text_atomic(out / "report.html", f"<html><body>{html}</body></html>\n")
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def _trial_summary(row: pd.Series) -> dict[str, Any]:
    params = {k[len("param.") :]: _plain(v) for k, v in row.items() if k.startswith("param.")}
    return {
        "trial": int(row["trial"]),
        "params": {k: v for k, v in params.items() if not _missing(v)},
        **{name: round(float(row[name]), 4) for name in OBJECTIVE_NAMES},
        **{f"{name}_std": round(float(row[f"{name}_std"]), 4) for name in OBJECTIVE_NAMES},
        "staff": int(row["staff"]),
    }


def _plain(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _missing(value: Any) -> bool:
    return isinstance(value, float) and np.isnan(value)
