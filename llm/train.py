"""Training the avatar GPT on visit logs: pretraining, fine-tuning, resuming, data parallel.

    python -m llm.train LOGS... --out DIR [--vocab VOCAB.json] [--init CKPT] [--resume]
    torchrun --nproc_per_node 2 -m llm.train LOGS... --out DIR      # data parallel (DDP)

(``venuetwin train`` wraps this and resolves ``--venue``.) Next-visit prediction with
AdamW, linear warm-up then cosine decay, gradient clipping, gradient accumulation,
evaluation on the validation split, early stopping on it, a progress bar, and
``DIR/metrics.csv``. ``DIR/model.safetensors`` is the best model so far;
``DIR/train_state.safetensors`` (every ``--checkpoint-every`` steps, atomically) holds the
model, the optimiser and the loop's counters, so ``--resume`` after a crash, even a
SIGKILL, ends in exactly the model an uninterrupted run gives: the batches and the dropout
noise of step ``s`` are functions of ``(seed, s)`` alone.

With ``torchrun`` every process holds a replica; each takes its share of every global
batch and DDP averages the gradients (gloo on CPU, nccl on GPU), so replicas stay equal.

Its length: ``train`` and its phases (``prepare``, ``build_model``, ``make_optimizer``,
``train_step``), resumable state, and the command-line options that ``venuetwin train``
and ``torchrun -m llm.train`` share.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import gc
import hashlib
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from llm import checkpoint
from llm.data import Sequences, blocks, encode, split, visitor_digests, visitor_parts
from llm.features import (
    MAX_SHOW_ENDS,
    N_OPTION,
    N_OPTION_STATES,
    N_SHOW_STATES,
    Capacities,
    Programme,
    profile_size,
    read_capacities,
    read_programme,
    show_grace_s,
)
from llm.fileio import (
    OutputPathError,
    atomic_path,
    check_writable_folder,
    write_text_atomic,
)
from llm.logs import Columns, LogError, check_zones, read_logs
from llm.markov import MarkovBaseline
from llm.model import GPT, ConfigError, GPTConfig
from llm.vocab import ZoneVocab

STATE_FILE = "train_state.safetensors"


#: Training options a run can use: (least, most) of each (``configs_from_args``).
OPTION_LIMITS: dict[str, tuple[float, float]] = {
    "epochs": (0.001, 10_000),
    "max_steps": (1, 100_000_000),
    "batch_size": (1, 65_536),
    "grad_accum": (1, 65_536),
    "lr": (1e-8, 10.0),
    "eval_every": (1, 100_000_000),
    "checkpoint_every": (1, 100_000_000),
    "patience": (1, 1_000_000),
    "seed": (0, 2**32 - 1),
}


class OptionError(ValueError):
    """A training option out of range; the message names the option."""


MODEL_FILE = "model.safetensors"


@dataclass
class TrainConfig:
    """Optimisation settings (the model's shape is ``GPTConfig``)."""

    epochs: float = 8.0
    max_steps: int | None = None  # overrides epochs
    batch_size: int = 32  # trajectories per step, all processes together
    grad_accum: int = 1  # micro-batches per step
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 50
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    dwell_weight: float = 0.5  # weight of the dwell loss beside the next-zone loss
    eval_every: int = 100
    checkpoint_every: int = 100
    patience: int = 5  # evaluations without improvement before stopping
    seed: int = 0
    move_prior: bool = True  # start from the training visits' Markov chain (GPT.move_prior)
    val_fraction: float = 0.1  # visitors held out to choose when to stop
    test_fraction: float = 0.1  # visitors held out for ``venuetwin evaluate`` (may be 0)

    @property
    def fractions(self) -> tuple[float, float, float]:
        return (1.0 - self.val_fraction - self.test_fraction, self.val_fraction, self.test_fraction)


# ============================================================================ helpers
def world() -> tuple[int, int]:
    """(rank, world size) of this process."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def training_device() -> torch.device:
    """This process's GPU under torchrun (LOCAL_RANK) when there is one, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def lr_at(step: int, cfg: TrainConfig, total: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def batch_indices(step: int, micro: int, n_windows: int, cfg: TrainConfig) -> torch.Tensor:
    """Windows of micro-batch ``micro`` of ``step``: one epoch-long permutation per epoch,
    seeded by (seed, epoch), so any step's batch can be recomputed after a restart."""
    per_micro = max(1, cfg.batch_size // cfg.grad_accum)
    per_epoch = max(1, n_windows // per_micro)
    number = step * cfg.grad_accum + micro
    epoch, offset = divmod(number, per_epoch)
    generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
    order = torch.randperm(n_windows, generator=generator)
    return order[offset * per_micro : (offset + 1) * per_micro]


def take(
    data: dict[str, torch.Tensor], idx: torch.Tensor, device: torch.device | None = None
) -> dict[str, torch.Tensor]:
    """The windows ``idx``, trimmed to the longest of them (no work on padding)."""
    longest = int(data["length"][idx].max())
    return {
        k: (v[idx][:, :longest] if v.dim() >= 2 and k != "profile" else v[idx]).to(device or "cpu")
        for k, v in data.items()
    }


def total_steps(n_windows: int, cfg: TrainConfig) -> int:
    if cfg.max_steps is not None:
        return cfg.max_steps
    return max(1, math.ceil(cfg.epochs * n_windows / cfg.batch_size))


@torch.no_grad()
def validation_loss(model: GPT, data: dict[str, torch.Tensor], batch: int = 64) -> dict:
    """Mean next-zone and dwell loss per target over a whole split (no dropout)."""
    device = next(model.parameters()).device
    model.eval()
    zone_sum = dwell_sum = 0.0
    targets = 0
    n = len(data["length"])
    for start in range(0, n, batch):
        part = take(data, torch.arange(start, min(n, start + batch)), device)
        count = int((part["next_zone"] >= 0).sum())
        if count == 0:
            continue
        zone_loss, dwell_loss = model.loss(part)
        zone_sum += float(zone_loss) * count
        dwell_sum += float(dwell_loss) * count
        targets += count
    model.train()
    zone = zone_sum / max(targets, 1)
    return {
        "val_zone_loss": zone,
        "val_dwell_loss": dwell_sum / max(targets, 1),
        "val_perplexity": math.exp(zone),
    }


# ============================================================================ state
def save_state(path: Path, model: GPT, optimizer: torch.optim.Optimizer, loop: dict) -> None:
    """Model, optimiser and loop counters in one safetensors file (no pickles)."""
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for key, value in state.items():
            tensors[f"opt.{index}.{key}"] = torch.as_tensor(value).detach().contiguous()
    meta = {"loop": json.dumps(loop), "param_groups": json.dumps(opt["param_groups"])}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load_state(path: Path, model: GPT, optimizer: torch.optim.Optimizer) -> dict:
    """The loop counters of ``path``, its model and optimiser states loaded; a file that is
    not such a state of this model (truncated, another format, another shape, weights that
    are not finite) is refused as ``--resume``'s, before anything is trained."""
    try:
        loop = _read_state(path, model, optimizer)
    except (SafetensorError, OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise OptionError(
            f"--resume: {path}: not a training state of this model ({type(exc).__name__}"
            f"{': ' + reason if reason else ''}); remove it to start afresh"
        ) from None
    if not all(torch.isfinite(p).all() for p in model.state_dict().values()):
        raise OptionError(f"--resume: {path}: holds NaN or infinite weights")
    return loop


def _read_state(path: Path, model: GPT, optimizer: torch.optim.Optimizer) -> dict:
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
        names = list(handle.keys())
        model.load_state_dict(
            {n[6:]: handle.get_tensor(n) for n in names if n.startswith("model.")}
        )
        state: dict[int, dict[str, torch.Tensor]] = {}
        for n in names:
            if n.startswith("opt."):
                _, index, key = n.split(".", 2)
                state.setdefault(int(index), {})[key] = handle.get_tensor(n)
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    loop = json.loads(meta["loop"])
    if not isinstance(loop, dict) or not isinstance(loop.get("step"), int):
        raise ValueError("its loop counters are missing")
    return loop


def write_metrics_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


# ============================================================================ train
def train(
    logs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    vocab: ZoneVocab | None = None,
    columns: Columns = Columns(),
    init: str | None = None,
    resume: bool = False,
    cfg: TrainConfig | None = None,
    model_config: dict[str, Any] | None = None,
    progress: bool = True,
    on_eval: Callable[[dict[str, Any]], None] | None = None,
    programme: Programme | Sequence[Programme] | None = None,
    capacities: Capacities | Sequence[Capacities] | None = None,
) -> dict[str, Any]:
    """Train (or fine-tune with ``init``) on ``logs``; returns the summary written to
    ``out_dir/metrics.json``. Nothing is written before the logs have been read.
    ``programme``: the event's shows, which the model then sees at every choice (and the
    checkpoint keeps, to read its logs again the same way); or one per log, for days whose
    shows were at other times (the checkpoint keeps the first as its programme).
    ``capacities``: how many each zone took on the day (0: closed; ``llm.data.
    Capacities``), one for all logs or one per log: a new model then sees a zone that takes
    nobody more as full (``FULL_OPTION``), as the twin shows it live.

    ``on_eval``, if given, is called on rank 0 with every evaluation row (the row added to
    ``metrics.csv``: step, epoch, lr, train and validation losses, tokens) once the best
    model so far has been saved, e.g. to draw a live loss curve."""
    cfg = cfg or TrainConfig()
    rank, world_size = world()
    out = Path(out_dir)
    if rank == 0 and out.is_dir():  # what a killed run left half-written: never read
        for stale in out.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
    data = prepare(logs, columns, vocab, cfg, programme, capacities)
    vocab, train_seqs, val_seqs, test_seqs = data.vocab, data.train, data.val, data.test
    model = build_model(data, cfg, init, model_config)
    device = training_device()
    model.to(device)
    block = model.config.block_size
    train_data, val_data = blocks(train_seqs, block), blocks(val_seqs, block)
    n_windows = len(train_data["length"])
    steps = total_steps(n_windows, cfg)
    optimizer = make_optimizer(model, cfg)
    loop = {"step": 0, "best_val": math.inf, "stale": 0, "rows": [], "tokens": 0}
    state_path = out / STATE_FILE
    if resume and state_path.exists():
        loop = load_state(state_path, model, optimizer)
    elif resume and rank == 0:
        print(f"no {state_path} to resume from: starting afresh", file=sys.stderr)
    ddp = world_size > 1
    net: torch.nn.Module = LossOf(model)
    if ddp:
        ids = [device.index] if device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=ids)

    summary_base = {
        "logs": [str(Path(p).resolve()) for p in logs],
        "log_format": columns.to_json(),
        "programme": _first(programme).to_json() if _first(programme) is not None else None,
        **(
            {"programmes": [p.to_json() for p in programme]}
            if programme is not None and not isinstance(programme, Programme)
            else {}
        ),
        # The first log's capacities (``evaluate_checkpoint`` reads logs with them).
        "capacities": first_capacities(capacities),
        "split": {"seed": cfg.seed, "fractions": list(cfg.fractions), "by": "visitor"},
        "vocab_source": vocab.source,
        "init": init,
        "train_trajectories": len(train_seqs),
        "val_trajectories": len(val_seqs),
        "test_trajectories": len(test_seqs),
        "train_visits": train_seqs.n_visits,
        "params": model.n_params(),
        "world_size": world_size,
        "config": asdict(cfg),
        "model_config": model.config.to_dict(),
    }
    from tqdm import tqdm

    bar = tqdm(
        total=steps,
        initial=loop["step"],
        disable=not progress or rank != 0,
        unit="step",
        leave=False,
    )
    started = time.perf_counter()
    model.train()
    while loop["step"] < steps and loop["stale"] < cfg.patience:
        step = loop["step"]
        lr = lr_at(step, cfg, steps)
        step_loss, tokens = train_step(net, optimizer, train_data, step, lr, cfg, device)
        loop["tokens"] += tokens
        loop["step"] = step + 1
        bar.update()
        bar.set_postfix(loss=f"{step_loss:.3f}", lr=f"{lr:.1e}")
        last = loop["step"] == steps
        if loop["step"] % cfg.eval_every == 0 or last:
            val = validation_loss(model, val_data)
            row = {
                "step": loop["step"],
                "epoch": round(loop["step"] * cfg.batch_size / n_windows, 3),
                "lr": lr,
                "train_zone_loss": round(step_loss, 5),
                **{k: round(v, 5) for k, v in val.items()},
                "tokens": loop["tokens"],
                "tokens_per_s": round(loop["tokens"] / (time.perf_counter() - started), 1),
            }
            loop["rows"].append(row)
            if val["val_zone_loss"] < loop["best_val"] - 1e-4:
                loop["best_val"], loop["stale"] = val["val_zone_loss"], 0
                if rank == 0:
                    checkpoint.save(
                        out / MODEL_FILE,
                        model,
                        vocab,
                        {**summary_base, "step": loop["step"], **val},
                        data.visitors,
                    )
            else:
                loop["stale"] += 1
            if rank == 0:
                write_metrics_csv(out / "metrics.csv", loop["rows"])
                if on_eval is not None:
                    on_eval(dict(row))
        if rank == 0 and (loop["step"] % cfg.checkpoint_every == 0 or last):
            save_state(state_path, model, optimizer, loop)
    bar.close()
    digests = [parameter_digest(model)]
    if ddp:
        digests = [None] * world_size
        dist.all_gather_object(digests, parameter_digest(model))
    summary = {
        **summary_base,
        "steps": loop["step"],
        "stopped_early": loop["stale"] >= cfg.patience,
        "best_val_zone_loss": loop["best_val"],
        "best_val_perplexity": math.exp(loop["best_val"]) if loop["best_val"] < 50 else None,
        "tokens_seen": loop["tokens"],
        "replica_digests": digests,  # one per process: equal when the replicas agree
        "wall_s": round(time.perf_counter() - started, 2),
        "history": loop["rows"],
    }
    if rank == 0:
        write_text_atomic(out / "metrics.json", json.dumps(summary, indent=2) + "\n")
    return summary


@dataclass
class Prepared:
    """What training learns from: the vocabulary and the token sequences, split by visitor."""

    vocab: ZoneVocab
    train: Sequences
    val: Sequences
    test: Sequences
    visitors: dict[str, np.ndarray]  # digests of each part's visitors, for the checkpoint
    has_profiles: bool
    has_shows: bool
    has_capacities: bool = False


def prepare(
    logs: Sequence[str | os.PathLike[str]],
    columns: Columns,
    vocab: ZoneVocab | None,
    cfg: TrainConfig,
    programme: Programme | Sequence[Programme] | None,
    capacities: Capacities | Sequence[Capacities] | None = None,
) -> Prepared:
    """Logs -> tokens: read, split by visitor (``cfg.fractions``, ``cfg.seed``), the
    vocabulary from the training and validation visitors (or the venue's, with the moves
    they show), encode, cut into the parts."""
    frame = read_logs(logs, columns)
    where = ", ".join(map(str, logs))
    try:
        part = visitor_parts(frame["visitor"], cfg.fractions, cfg.seed)
    except LogError as exc:
        raise LogError(f"{where}: {exc}") from None
    learnt_from = frame[part < 2]  # what training sees: never the test visitors
    if vocab is None:
        vocab = ZoneVocab.from_log(learnt_from)
    else:
        check_zones(frame, vocab, where, vocab.source)
        vocab = with_observed_moves(vocab, learnt_from)
    del learnt_from  # a copy of most of the log: gone before the tokens are made
    visitors = {
        name: visitor_digests(np.unique(np.asarray(frame["visitor"][part == p], dtype=str)))
        for p, name in enumerate(checkpoint.SPLIT_PARTS)
    }
    try:
        seqs = encode(frame, vocab, programme, capacities, show_grace_s(N_SHOW_STATES))
    except LogError as exc:
        raise LogError(f"{where}: {exc}") from None
    del frame
    train_seqs, val_seqs, test_seqs = split(seqs, cfg.fractions, cfg.seed)
    for name, seqs_of in (("training", train_seqs), ("validation", val_seqs)):
        if seqs_of.n_targets == 0:  # a perplexity over no target is no perplexity
            raise LogError(
                f"{where}: no visitor of the {name} part has two visits in a row ("
                f"{len(seqs_of)} visitors, {seqs_of.n_visits} visits): there is no next place to "
                "learn from; each trajectory needs at least two visits, and the log enough "
                "visitors for a validation part"
            )
    if not cfg.test_fraction:
        test_seqs = test_seqs.take(np.empty(0, dtype=np.int64))
    return Prepared(
        vocab,
        train_seqs,
        val_seqs,
        test_seqs,
        visitors,
        seqs.has_profiles,
        seqs.shows is not None,
        capacities is not None,
    )


def first_capacities(
    capacities: Capacities | Sequence[Capacities] | None,
) -> dict[str, float] | None:
    """The capacities a checkpoint keeps: those given, or the first log's."""
    if capacities is None:
        return None
    day = capacities if isinstance(capacities, Mapping) else next(iter(capacities), {})
    return {str(zone): float(value) for zone, value in day.items()}


def _first(programme: Programme | Sequence[Programme] | None) -> Programme | None:
    """The programme a checkpoint keeps: the one given, or the first log's."""
    if programme is None or isinstance(programme, Programme):
        return programme
    return programme[0] if len(programme) else None


def build_model(
    data: Prepared, cfg: TrainConfig, init: str | None, model_config: dict[str, Any] | None
) -> GPT:
    """A new GPT (seeded by ``cfg.seed``), or ``init``'s weights moved to this vocabulary;
    its vocabulary set and its move prior counted from the training visits."""
    vocab = data.vocab
    torch.manual_seed(cfg.seed)  # the initial weights
    source = checkpoint.load(init) if init else None
    # A model takes visitors' declared profiles when its logs state them.
    n_profile = profile_size(len(vocab)) if data.has_profiles else 0
    n_show_states = N_SHOW_STATES if data.has_shows else 0
    if source is not None:
        model = checkpoint.transfer(
            source, vocab, profiles=bool(n_profile), shows=bool(n_show_states)
        )
    else:
        model = GPT(
            GPTConfig(
                n_zones=len(vocab),
                n_profile=n_profile,
                n_show_states=n_show_states,
                **{
                    "show_view": int(bool(n_show_states)),
                    "show_end_dwell": MAX_SHOW_ENDS if n_show_states else 0,
                    "end_stay": 1,
                    "since_needs": 1,
                    "n_options": N_OPTION_STATES if data.has_capacities else N_OPTION,
                    **(model_config or {}),
                },
            )
        )
    model.set_vocabulary(torch.from_numpy(vocab.kind_ids), torch.from_numpy(vocab.destinations))
    if cfg.move_prior:
        model.set_move_prior(torch.from_numpy(MarkovBaseline(data.train, vocab, order=1).table))
    return model


def make_optimizer(model: GPT, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, with weight decay on the matrices but embeddings."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "emb" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "emb" not in n)]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=(0.9, 0.95),
    )


def train_step(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_data: dict[str, torch.Tensor],
    step: int,
    lr: float,
    cfg: TrainConfig,
    device: torch.device,
) -> tuple[float, int]:
    """One optimiser step over ``cfg.grad_accum`` micro-batches, this process's share of
    each (``net``: ``LossOf`` the model, wrapped in DDP when several processes train).
    Returns the step's next-zone loss and the tokens all processes read."""
    rank, world_size = world()
    ddp = isinstance(net, torch.nn.parallel.DistributedDataParallel)
    n_windows = len(train_data["length"])
    for group in optimizer.param_groups:
        group["lr"] = lr
    torch.manual_seed(cfg.seed * 7_919 + step * 104_729 + rank)  # dropout noise of this step
    optimizer.zero_grad(set_to_none=True)
    micro_batches = [batch_indices(step, m, n_windows, cfg) for m in range(cfg.grad_accum)]
    # Every target of the global batch weighs the same, however it is split into
    # micro-batches and processes (DDP averages the processes' gradients).
    targets = sum(int((train_data["next_zone"][i] >= 0).sum()) for i in micro_batches)
    scale = world_size / max(targets, 1)
    step_loss, tokens = 0.0, 0
    for micro, idx in enumerate(micro_batches):
        batch = take(train_data, idx[rank::world_size], device)
        tokens += int(batch["length"].sum()) * world_size
        sync = micro == cfg.grad_accum - 1
        with net.no_sync() if (ddp and not sync) else contextlib.nullcontext():
            zone_loss, dwell_loss = net(batch)
            loss = (zone_loss + cfg.dwell_weight * dwell_loss) * scale
            loss.backward()
        step_loss += float(zone_loss.detach()) * scale / world_size
    model = net.module if ddp else net
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    return step_loss, tokens


def parameter_digest(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter's bytes: equal digests, bit-identical replicas."""
    digest = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(p.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class LossOf(torch.nn.Module):
    """The model's training losses as a module's ``forward``, so DDP can wrap it."""

    def __init__(self, model: GPT) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.loss(batch, reduction="sum")


def with_observed_moves(vocab: ZoneVocab, frame: pd.DataFrame) -> ZoneVocab:
    """The vocabulary with every move seen in a read log made legal (a log is evidence)."""
    legal = vocab.legal.copy()
    zone = frame["zone"].map(vocab.index).to_numpy(np.int64)
    trajectory = frame["trajectory"].to_numpy()
    same = trajectory[1:] == trajectory[:-1]
    legal[zone[:-1][same], zone[1:][same]] = True
    if np.array_equal(legal, vocab.legal):
        return vocab
    return ZoneVocab(vocab.names, vocab.kinds, vocab.area, legal, vocab.source)


# ============================================================================ command
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m llm.train", description=__doc__.split("\n")[0])
    add_arguments(p)
    p.add_argument("--vocab", help="zone vocabulary JSON (default: from the logs)")
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The training options, shared with ``venuetwin train``."""
    p.add_argument("logs", nargs="+", help="visit logs (CSV or Parquet)")
    p.add_argument("--out", required=True, help="output folder")
    add_log_format_arguments(p)
    p.add_argument("--init", help="checkpoint to fine-tune from")
    p.add_argument(
        "--programme",
        help="the event's shows, a CSV with columns stage,start,end (HH:MM on the venue's "
        "clock): the model then sees which show each stage has on or about to start",
    )
    p.add_argument(
        "--capacities",
        help="how many persons each zone took on the logs' days, a CSV with columns "
        "zone,capacity (0: closed; zones not listed take any number): the model then sees "
        "a zone that is full, as the twin shows it live",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--epochs", type=float, default=TrainConfig.epochs)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--grad-accum", type=int, default=TrainConfig.grad_accum)
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--eval-every", type=int, default=TrainConfig.eval_every)
    p.add_argument("--checkpoint-every", type=int, default=TrainConfig.checkpoint_every)
    p.add_argument("--patience", type=int, default=TrainConfig.patience)
    p.add_argument("--seed", type=int, default=TrainConfig.seed)
    p.add_argument(
        "--test-fraction",
        type=float,
        default=TrainConfig.test_fraction,
        help="visitors held out for evaluate (0 to train on all but the validation part)",
    )
    p.add_argument("--n-layer", type=int, default=GPTConfig.n_layer)
    p.add_argument("--n-head", type=int, default=GPTConfig.n_head)
    p.add_argument("--n-embd", type=int, default=GPTConfig.n_embd)
    p.add_argument("--block-size", type=int, default=GPTConfig.block_size)
    p.add_argument("--dropout", type=float, default=GPTConfig.dropout)

    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_log_format_arguments(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    """How to read logs (``llm.logs.Columns``), shared by train and evaluate. Without
    ``defaults`` the options default to None: evaluate then reads the checkpoint's."""
    p.add_argument(
        "--id-col",
        action="append",
        help="column naming the visitor; repeat it for a visitor named by several "
        "columns (default: avatar_id)",
    )
    p.add_argument("--session-col", help="column of the visitor's session (a trajectory each)")
    p.add_argument("--time-col", default="timestamp" if defaults else None, help="visit's time")
    p.add_argument("--zone-col", default="zone" if defaults else None, help="column of the zone")
    p.add_argument("--sep", help="CSV separator (default: detected: , ; tab or |)")
    p.add_argument(
        "--tz",
        help="the venue's time zone (IANA, e.g. Europe/Paris) for logs in UTC or unix time "
        "(default: timestamps are the venue's wall clock)",
    )
    p.add_argument(
        "--attr-col",
        action="append",
        help="column of a visitor attribute (ticket type, segment, group size...) that the "
        "model may condition on, as stated on the visitor's first row; repeat for several "
        "(a 'profile' column of '|'-joined tags is always read)",
    )


def columns_from_args(args: argparse.Namespace, stored: Columns | None = None) -> Columns:
    """The log format the options give; options not given keep ``stored``'s (a
    checkpoint's) or the defaults."""
    base = stored or Columns()
    given = {
        "avatar_id": tuple(args.id_col) if args.id_col else None,
        "timestamp": args.time_col,
        "zone": args.zone_col,
        "session": args.session_col,
        "sep": args.sep,
        "tz": args.tz,
        "attributes": tuple(args.attr_col) if getattr(args, "attr_col", None) else None,
    }
    changes = {k: v for k, v in given.items() if v is not None}
    if isinstance(changes.get("avatar_id"), tuple) and len(changes["avatar_id"]) == 1:
        changes["avatar_id"] = changes["avatar_id"][0]
    return dataclasses.replace(base, **changes)


def configs_from_args(args: argparse.Namespace) -> tuple[TrainConfig, dict[str, Any]]:
    names = {f.name for f in fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in names})
    model_config = {
        "n_layer": args.n_layer,
        "n_head": args.n_head,
        "n_embd": args.n_embd,
        "block_size": args.block_size,
        "dropout": args.dropout,
    }
    for key, (least, most) in OPTION_LIMITS.items():
        value = getattr(cfg, key)
        if value is not None and not (math.isfinite(value) and least <= value <= most):
            raise OptionError(f"--{key.replace('_', '-')} must be {least:g}..{most:g}, got {value}")
    if not 0 <= cfg.test_fraction < 0.9:
        raise OptionError("--test-fraction must be at least 0 and below 0.9")
    if cfg.batch_size % cfg.grad_accum:
        raise OptionError("--batch-size must be a multiple of --grad-accum")
    try:  # the model's shape, by the model's own rules (the zones are the logs' to say)
        GPTConfig(n_zones=2, **model_config)
    except ConfigError as exc:
        raise OptionError(f"--{exc.field.replace('_', '-')}: {exc}") from None
    return cfg, model_config


def run_from_args(args: argparse.Namespace, vocab: ZoneVocab | None) -> dict[str, Any]:
    cfg, model_config = configs_from_args(args)
    columns = columns_from_args(args)
    try:
        programme = read_programme(args.programme) if args.programme else None
    except ValueError as exc:
        raise OptionError(f"--programme: {exc}") from None
    try:
        capacities = read_capacities(args.capacities) if args.capacities else None
    except ValueError as exc:
        raise OptionError(f"--capacities: {exc}") from None
    return train(
        args.logs,
        args.out,
        vocab=vocab,
        columns=columns,
        init=args.init,
        resume=args.resume,
        cfg=cfg,
        model_config=model_config,
        progress=not args.quiet,
        programme=programme,
        capacities=capacities,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        if torch.cuda.is_available():
            torch.cuda.set_device(training_device())
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        check_writable_folder(args.out, "--out")
        vocab = None
        if args.vocab:
            try:
                vocab = ZoneVocab.from_json(json.loads(Path(args.vocab).read_text("utf-8")))
            except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
                raise OptionError(f"--vocab: {args.vocab}: not a zone vocabulary ({exc})") from None
        summary = run_from_args(args, vocab)
        if world()[0] == 0:
            print(json.dumps({k: summary[k] for k in ("steps", "best_val_perplexity")}))
        return 0
    except (LogError, checkpoint.CheckpointError, OptionError, OutputPathError) as exc:
        message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"venuetwin train: error: {message}", file=sys.stderr)
        return 2
    finally:
        if distributed and dist.is_initialized():
            # Collect the DDP wrapper (its reducer holds gloo work) and let every rank finish
            # with the group before it goes: else gloo may abort at exit ("terminate called
            # without an active exception", about one run in four on 2 cores).
            gc.collect()
            dist.barrier()
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
