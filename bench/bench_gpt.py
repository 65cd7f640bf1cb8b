"""Benchmarks of the avatar GPT: does it beat Markov chains, does fine-tuning pay, how fast
does it train.

    python bench/bench_gpt.py markov      [--steps 1500]   # GPT vs Markov-1/2 and popularity
    python bench/bench_gpt.py finetune    [--steps 400]    # expo -> festival on 10% of logs
    python bench/bench_gpt.py throughput  [--steps 40]     # tokens/s beside the FLOP count
    python bench/bench_gpt.py all --json out.json

``markov`` simulates the expo with 10,000 scripted avatars twice (training logs) and once
more with another seed (held out), trains the GPT on the first two and scores it and the
baselines (fitted on the same training split) on the held-out run. Goal: the GPT beats the
order-2 Markov chain in perplexity and Acc@1.

``finetune`` takes the shipped expo model (``twin/models/expo.safetensors``; ``make model``
rebuilds it) and a festival it has never seen: 10% of one festival run's trajectories are
the training data; the same number of steps (150 and 800, two seeds each) fine-tunes the
expo model on them and trains a model of the same shape from scratch on them; both are
scored on another festival run. Goal: the fine-tuned model has the lower perplexity at
both budgets (Acc@1 and Acc@5 are shown beside it).

``throughput`` measures this machine's float32 matrix-multiply rate (a 1024 x 1024 x 1024
``torch.mm``, best of several), then times training steps of the shipped model's shape and
prints tokens per second, the model's FLOPs per token (6N plus attention) and the
resulting share of the matmul rate.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llm import checkpoint  # noqa: E402
from llm.data import blocks, encode, split  # noqa: E402
from llm.evaluate import evaluate, format_table  # noqa: E402
from llm.logs import read_logs  # noqa: E402
from llm.model import GPT, GPTConfig  # noqa: E402
from llm.train import LossOf, TrainConfig, take, train  # noqa: E402
from twin import Scenario, VenueModel, load_venue  # noqa: E402
from twin.catalog import shipped_model_path  # noqa: E402
from twin.shipped import MODEL_SHAPE  # noqa: E402


def simulate(folder: Path, venue: str, avatars: int, hours: float, seed: int) -> Path:
    path = folder / f"{venue}-{avatars}-{seed}.parquet"
    if not path.exists():
        model = VenueModel(
            Scenario(venue=venue, avatars=avatars, hours=hours, seed=seed, policy="scripted")
        )
        model.run().visits().to_parquet(path)
    return path


# ============================================================================ markov
def bench_markov(folder: Path, steps: int) -> dict[str, Any]:
    vocab = load_venue("expo").vocabulary()
    logs = [simulate(folder, "expo", 10_000, 4.0, seed) for seed in (1, 2)]
    held_out = simulate(folder, "expo", 10_000, 4.0, 9)
    started = time.perf_counter()
    summary = train(
        logs,
        folder / "markov-run",
        vocab=vocab,
        cfg=TrainConfig(max_steps=steps, eval_every=100, patience=6),
        model_config=MODEL_SHAPE,
        progress=True,
    )
    ckpt = checkpoint.load(folder / "markov-run" / "model.safetensors")
    fit, _, _ = split(encode(read_logs(logs), ckpt.vocab))
    result = evaluate(ckpt.model, ckpt.vocab, fit, encode(read_logs([held_out]), ckpt.vocab))
    print("\nGPT vs baselines on a held-out expo run (10,000 scripted avatars)")
    print(format_table(result))
    m2 = result["baselines"]["markov2"]
    verdict = result["perplexity"] < m2["perplexity"] and result["acc1"] > m2["acc1"]
    print(f"goal (beat Markov-2 in perplexity and Acc@1): {'PASS' if verdict else 'FAIL'}")
    return {
        "train_s": round(time.perf_counter() - started, 1),
        "steps": summary["steps"],
        "result": result,
        "pass": verdict,
    }


# ============================================================================ finetune
def bench_finetune(
    folder: Path,
    budgets: tuple[int, ...] = (150, 800),
    seeds: tuple[int, ...] = (0, 1),
    share: float = 0.1,
) -> dict[str, Any]:
    pretrained = shipped_model_path("expo")
    if pretrained is None:
        raise SystemExit("no shipped expo model: run `make model` first")
    vocab = load_venue("festival").vocabulary()
    full = simulate(folder, "festival", 20_000, 6.0, 1)
    held_out = simulate(folder, "festival", 20_000, 6.0, 9)
    frame = read_logs([full])
    trajectories = frame["trajectory"].unique()
    rng = np.random.default_rng(0)
    keep = rng.choice(trajectories, size=max(2, int(len(trajectories) * share)), replace=False)
    small = folder / f"festival-{share:.0%}.parquet"
    frame[frame["trajectory"].isin(keep)][
        ["avatar_id", "timestamp", "zone", "dwell_s", "occupancy", "zone_kind"]
    ].to_parquet(small)
    test = encode(read_logs([held_out]), vocab)
    rows = []
    for steps in budgets:
        for seed in seeds:
            for name, init in (("fine-tuned", str(pretrained)), ("scratch", None)):
                cfg = TrainConfig(
                    max_steps=steps, eval_every=50, patience=6, warmup_steps=20, seed=seed
                )
                run = folder / f"{name}-{steps}-{seed}"
                train(
                    [small],
                    run,
                    vocab=vocab,
                    init=init,
                    cfg=cfg,
                    model_config=MODEL_SHAPE,
                    progress=False,
                )
                ckpt = checkpoint.load(run / "model.safetensors")
                fit, _, _ = split(encode(read_logs([small]), ckpt.vocab), seed=seed)
                r = evaluate(ckpt.model, ckpt.vocab, fit, test, seed=seed, bleu_trajectories=100)
                rows.append(
                    {
                        "steps": steps,
                        "seed": seed,
                        "model": name,
                        **{k: r[k] for k in ("perplexity", "acc1", "acc5", "bleu4")},
                        "markov2_perplexity": r["baselines"]["markov2"]["perplexity"],
                        "markov2_acc1": r["baselines"]["markov2"]["acc1"],
                    }
                )
    print(
        f"\nFestival, trained on {share:.0%} of one run ({len(keep):,} trajectories), "
        "scored on another run; the fine-tuned model starts from the shipped expo model"
    )
    print(f"{'steps':>5} {'seed':>4} {'model':12} perplexity  acc@1  acc@5  BLEU-4")
    for r in rows:
        print(
            f"{r['steps']:>5} {r['seed']:>4} {r['model']:12} {r['perplexity']:10.3f} "
            f"{r['acc1']:6.3f} {r['acc5']:6.3f} {r['bleu4']:7.3f}"
        )
    print(
        f"markov2 on the same 10%: perplexity {rows[0]['markov2_perplexity']:.3f}, "
        f"acc@1 {rows[0]['markov2_acc1']:.3f}"
    )
    verdicts = {}
    for steps in budgets:
        mean = {
            m: np.mean([r["perplexity"] for r in rows if r["steps"] == steps and r["model"] == m])
            for m in ("fine-tuned", "scratch")
        }
        acc = {
            m: np.mean([r["acc1"] for r in rows if r["steps"] == steps and r["model"] == m])
            for m in ("fine-tuned", "scratch")
        }
        verdicts[steps] = bool(mean["fine-tuned"] < mean["scratch"])
        print(
            f"{steps} steps: mean perplexity fine-tuned {mean['fine-tuned']:.3f} vs scratch "
            f"{mean['scratch']:.3f}; mean acc@1 {acc['fine-tuned']:.3f} vs "
            f"{acc['scratch']:.3f}"
        )
    verdict = all(verdicts.values())
    print(
        f"goal (fine-tuning beats training from scratch in perplexity at every budget): "
        f"{'PASS' if verdict else 'FAIL'}"
    )
    return {"trajectories": len(keep), "rows": rows, "pass": verdict}


# ============================================================================ throughput
def matmul_rate(size: int = 1024, repeats: int = 10) -> float:
    """Best float32 matrix-multiply rate of this machine, FLOP/s."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best


def bench_throughput(folder: Path, steps: int) -> dict[str, Any]:
    vocab = load_venue("expo").vocabulary()
    log = simulate(folder, "expo", 4_000, 4.0, 1)
    seqs = encode(read_logs([log]), vocab)
    data = blocks(seqs, MODEL_SHAPE["block_size"])
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_zones=len(vocab), **MODEL_SHAPE))
    model.set_vocabulary(torch.from_numpy(vocab.kind_ids), torch.from_numpy(vocab.legal))
    net = LossOf(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rate = matmul_rate()
    times, tokens, contexts = [], [], []
    generator = torch.Generator().manual_seed(0)
    for step in range(steps + 5):
        idx = torch.randint(0, len(data["length"]), (32,), generator=generator)
        batch = take(data, idx)
        t = time.perf_counter()
        zone_loss, dwell_loss = net(batch)
        optimizer.zero_grad()
        (zone_loss + dwell_loss).backward()
        optimizer.step()
        if step >= 5:  # warm-up steps are not counted
            times.append(time.perf_counter() - t)
            tokens.append(int(batch["zone"].numel()))
            contexts.append(int(batch["zone"].shape[1]))
    tokens_per_s = sum(tokens) / sum(times)
    flops = model.flops_per_token(int(np.mean(contexts)))
    achieved = tokens_per_s * flops
    print(
        f"\nmatmul rate (float32, 1024^3, best of 10): {rate / 1e9:.1f} GFLOP/s, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"model: {model.n_params():,} parameters, {flops / 1e6:.2f} MFLOP per token "
        f"(forward+backward, mean context {np.mean(contexts):.0f})"
    )
    print(
        f"training: {tokens_per_s:,.0f} tokens/s (padded tokens of {steps} steps of 32 "
        f"trajectories), {achieved / 1e9:.1f} GFLOP/s = {achieved / rate:.0%} of the "
        "matmul rate"
    )
    return {
        "matmul_gflops": rate / 1e9,
        "tokens_per_s": tokens_per_s,
        "flops_per_token": flops,
        "achieved_gflops": achieved / 1e9,
        "share_of_matmul": achieved / rate,
        "params": model.n_params(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("which", choices=["markov", "finetune", "throughput", "all"])
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--data", type=Path, default=None, help="folder to keep logs in")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-gpt-") as tmp:
        folder = args.data or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        if args.which in ("throughput", "all"):
            out["throughput"] = bench_throughput(folder, args.steps or 40)
        if args.which in ("markov", "all"):
            out["markov"] = bench_markov(folder, args.steps or 1500)
        if args.which in ("finetune", "all"):
            out["finetune"] = bench_finetune(folder)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
