"""Training and evaluating avatar models for the Train page, through ``llm`` only.

``train_model`` wraps ``llm.train.train`` (its ``on_eval`` callback feeds the live loss
curve); ``evaluate_model`` scores a checkpoint on the test visitors of the logs it was
trained on, beside Markov chains and popularity fitted on its training visitors, as
``venuetwin evaluate`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from dashboards.models import load_checkpoint
from llm.evaluate import BASELINES, evaluate_checkpoint
from llm.logs import Columns
from llm.train import MODEL_FILE, TrainConfig, train
from twin import Venue


def train_model(
    logs: Sequence[Path],
    out_dir: Path,
    *,
    venue: Venue | None,
    columns: Columns,
    init: str | None,
    cfg: TrainConfig,
    on_eval: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Train (``init``: fine-tune from that checkpoint) on ``logs`` for ``venue`` (None:
    zones and moves from the logs); returns the best model's path and the summary."""
    summary = train(
        list(logs),
        out_dir,
        vocab=venue.vocabulary() if venue is not None else None,
        columns=columns,
        init=init,
        cfg=cfg,
        progress=False,
        on_eval=on_eval,
    )
    return out_dir / MODEL_FILE, summary


def score_checkpoint(
    path: Path,
    logs: Sequence[Path],
    columns: Columns,
    seed: int,
    bleu_trajectories: int = 200,
) -> dict[str, Any]:
    """The checkpoint scored on the visitors of ``logs`` it was not trained on (its test
    visitors, when these are its training logs), baselines fitted on its training
    visitors (``llm.evaluate.evaluate_checkpoint``)."""
    return evaluate_checkpoint(
        load_checkpoint(path), list(logs), columns, seed=seed, bleu_trajectories=bleu_trajectories
    )


METRIC_NAMES = {
    "perplexity": "perplexity",
    "acc1": "acc@1",
    "acc5": "acc@5",
    "ndcg5": "NDCG@5",
    "dwell_acc": "dwell acc",
    "dwell_mae_s": "dwell MAE s",
    "bleu4": "BLEU-4",
}


def evaluation_frame(result: dict[str, Any]) -> pd.DataFrame:
    """The model and each baseline as rows, the metrics as columns."""
    rows = {}
    if "perplexity" in result:
        rows["model"] = {label: result[key] for key, label in METRIC_NAMES.items()}
    for name in BASELINES:
        if name in result.get("baselines", {}):
            rows[name] = {
                label: result["baselines"][name][key] for key, label in METRIC_NAMES.items()
            }
    return pd.DataFrame.from_dict(rows, orient="index")


def log_summary(frame: pd.DataFrame) -> dict[str, int]:
    """How much a read log holds."""
    return {
        "visits": len(frame),
        "trajectories": int(frame["trajectory"].nunique()),
        "zones": int(frame["zone"].nunique()),
    }
