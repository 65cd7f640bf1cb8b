"""Digests of fixed-seed runs: a refactoring that changes no behaviour changes none of them.

    python bench/run_digests.py [--json digests.json] [--against digests.json]

Runs each built-in venue with scripted and GPT avatars (and the concert hall with Markov
avatars) at a small crowd and fixed seeds, and prints the SHA-256 of each run's visit log
(as CSV) and KPIs (as sorted JSON). ``--against`` compares with digests saved before and
exits 1 on any difference, naming the run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twin import Scenario, VenueModel  # noqa: E402

RUNS = [
    (venue, policy, avatars, hours)
    for venue, avatars, hours in (
        ("concert_hall", 600, 1.5),
        ("expo", 800, 1.0),
        ("festival", 1000, 1.0),
    )
    for policy in ("scripted", "gpt")
] + [
    ("concert_hall", "markov", 400, 1.0),
    # A crowded afternoon: large batches (the PyTorch step), full caches re-encoded, and
    # avatars at the door of a café whose queue has grown, thinking again.
    ("expo", "gpt", 10_000, 2.0),
]


def digest(venue: str, policy: str, avatars: int, hours: float, seed: int = 3) -> dict[str, str]:
    model = VenueModel(
        Scenario(venue=venue, policy=policy, avatars=avatars, hours=hours, seed=seed)
    ).run()
    visits = model.visits().to_csv(index=False).encode()
    kpis = json.dumps(model.kpis(), sort_keys=True, default=str).encode()
    zones = model.zones_frame().to_csv(index=False).encode()
    return {
        "visits": hashlib.sha256(visits).hexdigest()[:16],
        "zones": hashlib.sha256(zones).hexdigest()[:16],
        "kpis": hashlib.sha256(kpis).hexdigest()[:16],
    }


def training_digest(seed: int = 5) -> dict[str, str]:
    """A short training (dropout on) on a scripted run's log, then the decode path of the
    explanations: the digests of the weights and of one avatar's attention."""
    import tempfile

    import numpy as np

    from llm.train import TrainConfig, train
    from twin import load_venue

    scenario = Scenario(venue="concert_hall", policy="scripted", avatars=300, hours=1.0)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "visits.parquet"
        VenueModel(scenario.replace(seed=seed)).run().visits().to_parquet(log)
        train(
            [log],
            Path(tmp) / "model",
            vocab=load_venue("concert_hall").vocabulary(),
            cfg=TrainConfig(max_steps=30, eval_every=10, seed=seed),
            model_config={"dropout": 0.1},
            progress=False,
        )
        from safetensors.numpy import load_file  # the tensors: the metadata holds wall times

        tensors = load_file(Path(tmp) / "model" / "model.safetensors")
        weights = b"".join(name.encode() + tensors[name].tobytes() for name in sorted(tensors))
        run = VenueModel(
            scenario.replace(
                policy="gpt",
                model=str(Path(tmp) / "model" / "model.safetensors"),
                avatars=100,
                hours=0.5,
            )
        ).run()
        shown = run.explain(int(run.visits()["avatar_id"].iloc[0]))
    return {
        "weights": hashlib.sha256(weights).hexdigest()[:16],
        "attention": hashlib.sha256(np.ascontiguousarray(shown.attention).tobytes()).hexdigest()[
            :16
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write the digests here")
    parser.add_argument("--against", type=Path, help="digests to compare with")
    args = parser.parse_args(argv)
    found = {}
    for venue, policy, avatars, hours in RUNS:
        key = f"{venue}/{policy}/{avatars}x{hours}h"
        found[key] = digest(venue, policy, avatars, hours)
        print(f"{key:<32} {found[key]['visits']} {found[key]['zones']} {found[key]['kpis']}")
    found["training"] = training_digest()
    print(
        f"{'training/30 steps':<32} {found['training']['weights']} {found['training']['attention']}"
    )
    if args.json:
        args.json.write_text(json.dumps(found, indent=1) + "\n")
    if args.against:
        before = json.loads(args.against.read_text())
        changed = [k for k in found if before.get(k) != found[k]]
        print("identical" if not changed else f"CHANGED: {', '.join(changed)}")
        return 1 if changed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
