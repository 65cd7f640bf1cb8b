"""Benchmarks of GPT-driven avatars: decisions per second, and the twin end to end.

    python bench/bench_agents.py decisions [--batch 1000] [--rounds 60]
    python bench/bench_agents.py endtoend  [--repeats 3]
    python bench/bench_agents.py all --json out.json

``decisions`` binds ``GPTPolicy`` (the shipped expo model) to the expo and lets 1,000
avatars go from place to place decision after decision (they arrive at the place they
chose at once, since walks through corridors cost no decision, and one who leaves is
followed by a new avatar; caches grow, fill and are re-encoded as in a run), timing the
batched calls; then the same avatars make the same
decisions (draws are batch-independent) one avatar per call, in the same run. It prints
decisions per second for both, their ratio, and the forward FLOPs per decision beside this
machine's measured matmul rate. Goals: at least 20,000 decisions/s at batches of 1,000,
and at least 10x the batch-1 loop.

``endtoend`` runs the expo for a 4-hour event in fresh processes (``bench_twin.py``'s
runner): 10,000 scripted avatars, 10,000 GPT avatars, and 100,000 GPT avatars on
``expo.scaled(10)``. Goals: 10,000 GPT avatars in under 60 s and within 2x the scripted
run; time per avatar at 100,000 within 1.3x of that at 10,000; under 4 GB.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_gpt import matmul_rate  # noqa: E402

from agents.gpt_policy import GPTPolicy  # noqa: E402
from agents.needs import Needs  # noqa: E402
from agents.policy import Observation  # noqa: E402
from llm.zones import crowd_level  # noqa: E402
from twin import Scenario, load_venue  # noqa: E402
from twin.catalog import shipped_model_path  # noqa: E402
from twin.model import build_layout  # noqa: E402

#: Avatars the policy is bound for, per walker: those who leave are followed by new ones.
ROOM = 8


def make_policy(n_avatars: int) -> tuple[GPTPolicy, Any]:
    venue = load_venue("expo")
    scenario = Scenario(venue=venue, avatars=n_avatars)
    layout = build_layout(venue, scenario, scenario.programme(venue))
    needs = Needs.draw(n_avatars, venue.kinds, layout.show_draw, np.random.default_rng(0))
    policy = GPTPolicy(shipped_model_path("expo"))
    policy.bind(layout, needs, np.random.default_rng(1))
    return policy, layout


class Walk:
    """Avatars going from place to place through the expo on the policy's own decisions:
    they arrive at once (the walks through corridors cost no decision), and one who leaves
    is followed by a new avatar at an entrance, so every walker decides in every call."""

    def __init__(self, layout: Any, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.layout, self.n = layout, n
        entrances = layout.of_kind("entrance")
        self.zone = entrances[rng.integers(len(entrances), size=n)]
        self.ids = np.arange(n)  # the avatar now on each walker's way
        self.next_id = n
        self.visits = np.ones(n, dtype=np.int64)
        self.entered = np.zeros(n)
        self.occupancy = rng.integers(0, 400, size=(len(layout.zones),))
        self.queue_wait_s = rng.exponential(120.0, size=len(layout.zones))
        self.rng = rng

    def observation(self, now: float, which: np.ndarray) -> Observation:
        lay = self.layout
        zone = self.zone[which]
        legal = lay.adjacency[zone]
        hop = lay.place_hop[zone]
        places = np.take_along_axis(legal, np.maximum(hop, 0), axis=1) & (hop >= 0)
        history = np.full((len(which), 16), -1)
        history[:, -1] = self.zone[which]
        return Observation(
            avatar=self.ids[which],
            zone=self.zone[which],
            now_s=np.full(len(which), now),
            entered_s=self.entered[which],
            arrived_s=np.zeros(len(which)),
            entry_crowd=crowd_level((self.occupancy[zone] // 2 + 1) / lay.area[zone]),
            visits=self.visits[which],
            legal=legal,
            history=history,
            occupancy=self.occupancy,
            crowd=crowd_level(self.occupancy / lay.area),
            queue_wait_s=self.queue_wait_s,
            places=places,
            goal=np.full(len(which), -1),
            goal_stay_s=np.zeros(len(which)),
            walking=np.zeros(len(which), dtype=bool),  # at a place: each decides
        )

    def goal(self, place: np.ndarray, which: np.ndarray) -> np.ndarray:
        """Where the walkers' avatars chose to go (their own zone where they stay on)."""
        return np.where(place < 0, self.zone[which], place)

    def advance(self, which: np.ndarray, next_zone: np.ndarray, now: float) -> None:
        out = which[np.isin(next_zone, self.layout.of_kind("exit"))]
        entrances = self.layout.of_kind("entrance")
        self.zone[which] = next_zone
        self.visits[which] += 1
        self.entered[which] = now
        self.zone[out] = entrances[0]  # a new avatar comes in
        self.visits[out] = 1
        self.ids[out] = self.next_id + np.arange(len(out))
        self.next_id += len(out)


def bench_decisions(batch: int, rounds: int, single_rounds: int) -> dict[str, Any]:
    policy, layout = make_policy(batch * ROOM)
    walk = Walk(layout, batch)
    avatars = np.arange(batch)
    times = []
    for r in range(rounds):
        now = 60.0 * (r + 1)
        obs = walk.observation(now, avatars)
        t = time.perf_counter()
        place = policy.decide(obs).next_zone
        times.append(time.perf_counter() - t)
        walk.advance(avatars, walk.goal(place, avatars), now)
    walk_ids = walk.ids.copy()
    warm = times[3:]
    batched = batch / float(np.median(warm))

    single, layout = make_policy(batch * ROOM)
    walk = Walk(layout, batch)
    start = time.perf_counter()
    for r in range(single_rounds):
        now = 60.0 * (r + 1)
        for a in range(batch):
            which = np.array([a])
            place = single.decide(walk.observation(now, which)).next_zone
            walk.advance(which, walk.goal(place, which), now)
    one_by_one = batch * single_rounds / (time.perf_counter() - start)

    context = float(policy.kv.lengths[policy.kv.slot[walk_ids]].mean())
    flops = policy.model.forward_flops(round(context) + 1)  # the new token attends to itself
    rate = matmul_rate()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rate_one = matmul_rate()  # the live decoder runs on one thread (llm.decoder.one_thread)
    torch.set_num_threads(threads)
    print(
        f"\nGPTPolicy decisions, expo, shipped model ({policy.model.n_params():,} params), "
        "one thread (as in the twin)"
    )
    print(
        f"  batches of {batch:,}: {batched:,.0f} decisions/s (median of {len(warm)} calls, "
        f"{np.median(warm) * 1e3:.1f} ms per call)"
    )
    print(f"  one avatar per call:  {one_by_one:,.0f} decisions/s ({single_rounds} rounds)")
    print(f"  batched / one by one: {batched / one_by_one:.1f}x")
    print(
        f"  {flops / 1e6:.2f} MFLOP per decision (forward, mean context {context:.0f}): "
        f"{batched * flops / 1e9:.2f} GFLOP/s = {batched * flops / rate_one:.1%} of one "
        f"thread's {rate_one / 1e9:.0f} GFLOP/s matmul rate ({batched * flops / rate:.1%} of "
        f"the machine's {rate / 1e9:.0f} with {threads} threads)"
    )
    goals = {"20k_per_s": batched >= 20_000, "10x_batch1": batched >= 10 * one_by_one}
    for name, ok in goals.items():
        print(f"  goal {name}: {'PASS' if ok else 'FAIL'}")
    return {
        "batched_per_s": batched,
        "single_per_s": one_by_one,
        "ratio": batched / one_by_one,
        "mflop_per_decision": flops / 1e6,
        "matmul_gflops": rate / 1e9,
        "matmul_gflops_one_thread": rate_one / 1e9,
        "goals": goals,
    }


def bench_end_to_end(repeats: int) -> dict[str, Any]:
    from bench_twin import measure

    runs = {
        "scripted 10k": measure(10_000, "arrays", repeats, None, policy="scripted"),
        "gpt 10k": measure(10_000, "arrays", repeats, None, policy="gpt"),
        "gpt 100k": measure(100_000, "arrays", repeats, None, policy="gpt"),
    }
    print(f"\nEnd to end, expo, 4-hour event (100,000 on expo x10), median of {repeats} runs")
    for name, s in runs.items():
        print(
            f"  {name:13} {s.median('total_s'):7.2f} s  ({s.span('total_s')[0]:.2f}-"
            f"{s.span('total_s')[1]:.2f})  {s.median('us_per_avatar'):7.0f} us/avatar  "
            f"peak {s.median('peak_mb'):6.0f} MB  {s.median('visits_per_avatar'):.1f} "
            f"visits/avatar, {s.median('left_share'):.0%} left"
        )
    gpt10, gpt100, scripted = runs["gpt 10k"], runs["gpt 100k"], runs["scripted 10k"]
    goals = {
        "10k_under_60s": gpt10.median("total_s") < 60,
        "within_2x_scripted": gpt10.median("total_s") < 2 * scripted.median("total_s"),
        "per_avatar_100k_within_1.3x": gpt100.median("us_per_avatar")
        < 1.3 * gpt10.median("us_per_avatar"),
        "100k_under_4GB": gpt100.median("peak_mb") < 4096,
    }
    print(
        f"  GPT / scripted at 10k: {gpt10.median('total_s') / scripted.median('total_s'):.2f}x;"
        f" per avatar 100k / 10k: "
        f"{gpt100.median('us_per_avatar') / gpt10.median('us_per_avatar'):.2f}x"
    )
    for name, ok in goals.items():
        print(f"  goal {name}: {'PASS' if ok else 'FAIL'}")
    return {name: s.as_dict() for name, s in runs.items()} | {"goals": goals}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("which", choices=["decisions", "endtoend", "all"])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--single-rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    out: dict[str, Any] = {}
    if args.which in ("decisions", "all"):
        out["decisions"] = bench_decisions(args.batch, args.rounds, args.single_rounds)
    if args.which in ("endtoend", "all"):
        out["endtoend"] = bench_end_to_end(args.repeats)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
