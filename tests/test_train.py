"""Training: a killed run resumes to the very same model; data-parallel replicas agree."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from llm.train import MODEL_FILE, STATE_FILE, TrainConfig, train
from twin import Scenario, VenueModel

TINY = [
    "--n-layer",
    "1",
    "--n-embd",
    "32",
    "--n-head",
    "2",
    "--block-size",
    "64",
    "--batch-size",
    "16",
    "--eval-every",
    "5",
    "--checkpoint-every",
    "5",
    "--quiet",
]


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("logs") / "visits.parquet"
    model = VenueModel(
        Scenario(venue="concert_hall", avatars=400, hours=2.0, seed=1, policy="scripted")
    ).run()
    model.visits().to_parquet(path)
    return path


def run_train(args: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "llm.train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


#: The same small shape for ``train()`` itself.
TINY_SHAPE = {"n_layer": 1, "n_embd": 32, "n_head": 2, "block_size": 64}


def tensors(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / MODEL_FILE))


def test_training_lowers_validation_loss_and_writes_metrics(log: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(max_steps=60, eval_every=20, batch_size=16, patience=10)
    summary = train(
        [log],
        tmp_path,
        cfg=cfg,
        progress=False,
        model_config=TINY_SHAPE,
    )
    history = summary["history"]
    assert [row["step"] for row in history] == [20, 40, 60]
    assert history[-1]["val_zone_loss"] < history[0]["val_zone_loss"]
    assert (tmp_path / MODEL_FILE).exists() and (tmp_path / "metrics.csv").exists()
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 60
    assert summary["best_val_perplexity"] < 6.0


def test_on_eval_is_called_with_every_evaluation_row(log: Path, tmp_path: Path) -> None:
    seen: list[dict] = []
    written: list[int] = []  # rows in metrics.csv when each call came

    def on_eval(row: dict) -> None:
        seen.append(row)
        written.append(len(pd.read_csv(tmp_path / "metrics.csv")))

    cfg = TrainConfig(max_steps=6, eval_every=2, batch_size=16, patience=10)
    summary = train(
        [log],
        tmp_path,
        cfg=cfg,
        progress=False,
        model_config=TINY_SHAPE,
        on_eval=on_eval,
    )
    assert [row["step"] for row in seen] == [2, 4, 6]
    assert seen == summary["history"]
    assert all(row["val_zone_loss"] > 0 and math.isfinite(row["val_zone_loss"]) for row in seen)
    assert written == [1, 2, 3]  # each row is on disk before the call


def test_gradient_accumulation_matches_one_big_batch(log: Path, tmp_path: Path) -> None:
    shape = {**TINY_SHAPE, "dropout": 0.0}
    one = train(
        [log],
        tmp_path / "one",
        cfg=TrainConfig(max_steps=6, batch_size=16),
        progress=False,
        model_config=shape,
    )
    acc = train(
        [log],
        tmp_path / "acc",
        cfg=TrainConfig(max_steps=6, batch_size=16, grad_accum=4),
        progress=False,
        model_config=shape,
    )
    assert one["steps"] == acc["steps"] == 6
    a, b = tensors(tmp_path / "one"), tensors(tmp_path / "acc")
    # Same examples per step; the mean of 4 micro-batch means differs only by weighting
    # (micro-batches hold different numbers of targets), so the models are close, not equal.
    for name in a:
        assert torch.allclose(a[name], b[name], atol=5e-3), name


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_model(log: Path, tmp_path: Path) -> None:
    args = [str(log), *TINY, "--max-steps", "40"]
    straight = run_train([*args, "--out", str(tmp_path / "straight")])
    assert straight.wait(timeout=300) == 0, straight.stderr.read()

    out = tmp_path / "killed"
    victim = run_train([*args, "--out", str(out)])
    state = out / STATE_FILE
    deadline = time.time() + 120
    while time.time() < deadline:
        if state.exists() and json.loads(_loop(state))["step"] >= 10:
            break
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = json.loads(_loop(state))["step"]
    assert 10 <= killed_at < 40
    resumed = run_train([*args, "--out", str(out), "--resume"])
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()

    a, b = tensors(tmp_path / "straight"), tensors(out)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    rows = [
        pd.read_csv(folder / "metrics.csv").drop(columns="tokens_per_s")
        for folder in (tmp_path / "straight", out)
    ]
    pd.testing.assert_frame_equal(*rows)  # the same history, but for the timings


def _loop(state: Path) -> str:
    from safetensors import safe_open

    with safe_open(str(state), framework="pt") as handle:
        return handle.metadata()["loop"]


@pytest.mark.slow
def test_two_processes_keep_equal_replicas(log: Path, tmp_path: Path) -> None:
    """torchrun with 2 processes (gloo): replicas stay bit-identical, and (without dropout)
    they learn what one process learns on the same global batches."""
    args = [str(log), *TINY, "--max-steps", "12", "--dropout", "0"]
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "llm.train",
            *args,
            "--out",
            str(tmp_path / "ddp"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    summary = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert summary["world_size"] == 2
    assert len(summary["replica_digests"]) == 2
    assert summary["replica_digests"][0] == summary["replica_digests"][1]
    single = run_train([*args, "--out", str(tmp_path / "one")], env={"OMP_NUM_THREADS": "1"})
    assert single.wait(timeout=300) == 0
    a, b = tensors(tmp_path / "ddp"), tensors(tmp_path / "one")
    for name in a:
        assert torch.allclose(a[name], b[name], atol=2e-3), name
