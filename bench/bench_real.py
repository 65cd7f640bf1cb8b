"""The avatar GPT on real visit logs it was not written for: next place of tourists.

    python bench/bench_real.py DATA_DIR [--seeds 0 1 2] [--json out.json]

DATA_DIR holds the Flickr point-of-interest visits of Toronto (``userVisits-Toro.csv``) and
Melbourne (``userVisits-Melb-allPOI.csv``) published by Lim et al. (IJCAI 2015) and Wang et
al. (CIKM 2016): one row a photo, ``;``-separated, unix seconds, a trajectory per user and
travel sequence (``seqID``). The standard recipe, as a new user would run it:

- photos dated outside 2000-2019 are left out (camera clocks unset, scans);
- the logs are read as they come (``--id-col userID --session-col seqID --time-col
  dateTaken --zone-col poiID --tz``): consecutive photos at one place are one visit, whose
  stay is the time between its first and last photo (``llm.causal``);
- users are split 80/20 by a hash of their id with seed 2026 (``llm.data.visitor_order``:
  the same user falls on the same side whatever else the log holds); the 80% train the
  GPT with ``venuetwin train``'s defaults (10% of them for validation, early stopping),
  the 20% are scored by ``venuetwin evaluate``'s code;
- Markov-1, Markov-2 (Witten-Bell) and most-popular are fitted on the same training users;
- each figure is the median over training seeds (``--seeds``).

Prints one table per city and writes the figures as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llm import checkpoint  # noqa: E402
from llm.data import visitor_parts  # noqa: E402
from llm.evaluate import METRICS, evaluate_checkpoint, format_table  # noqa: E402
from llm.logs import Columns  # noqa: E402
from llm.train import TrainConfig, train  # noqa: E402

CITIES = {
    "toronto": ("userVisits-Toro.csv", "America/Toronto"),
    "melbourne": ("userVisits-Melb-allPOI.csv", "Australia/Melbourne"),
}
SPLIT_SEED = 2026
#: Photos taken in 2000-2019 (unix seconds): the data sets' own span.
EARLIEST, LATEST = 946_684_800, 1_577_836_800
PREDICTORS = ("gpt", "markov1", "markov2", "popular")


def split_users(source: Path, folder: Path) -> tuple[Path, Path, dict[str, int]]:
    """The city's log cut into the training users' rows and the held-out users' rows.
    Photos dated before 2000 or after 2019 (a camera's clock unset, a scan: some are in
    1904 and 4501) are left out, and counted."""
    raw = pd.read_csv(source, sep=";")
    dated = raw["dateTaken"].between(EARLIEST, LATEST, inclusive="left")
    raw = raw[dated]
    part = visitor_parts(raw["userID"].astype(str), (0.8, 0.2, 0.0), SPLIT_SEED)
    train_log, test_log = folder / "train.csv", folder / "test.csv"
    raw[part == 0].to_csv(train_log, index=False)
    raw[part == 1].to_csv(test_log, index=False)
    users = {
        "undated_photos_left_out": int((~dated).sum()),
        "train_users": int(raw.loc[part == 0, "userID"].nunique()),
        "test_users": int(raw.loc[part == 1, "userID"].nunique()),
    }
    return train_log, test_log, users


def bench_city(name: str, data: Path, seeds: list[int], folder: Path) -> dict[str, Any]:
    file, tz = CITIES[name]
    train_log, test_log, users = split_users(data / file, folder)
    columns = Columns("userID", "dateTaken", "poiID", session="seqID", tz=tz)
    runs = []
    for seed in seeds:
        started = time.perf_counter()
        out = folder / f"{name}-{seed}"
        summary = train(
            [train_log],
            out,
            columns=columns,
            cfg=TrainConfig(seed=seed, test_fraction=0.0),
            progress=False,
        )
        ckpt = checkpoint.load(out / "model.safetensors")
        result = evaluate_checkpoint(ckpt, [test_log], seed=seed)
        result["train_s"] = round(time.perf_counter() - started, 1)
        result["steps"] = summary["steps"]
        runs.append(result)
        print(f"\n{name}, seed {seed} ({result['train_s']} s, {summary['steps']} steps)")
        print(format_table(result))
    medians = {
        p: {
            m: statistics.median((r if p == "gpt" else r["baselines"][p])[m] for r in runs)
            for m in METRICS
        }
        for p in PREDICTORS
    }
    best = min(PREDICTORS[1:], key=lambda p: medians[p]["perplexity"])
    verdict = {
        "perplexity": bool(
            medians["gpt"]["perplexity"] < min(medians[p]["perplexity"] for p in PREDICTORS[1:])
        ),
        "acc1": bool(medians["gpt"]["acc1"] > max(medians[p]["acc1"] for p in PREDICTORS[1:])),
    }
    return {
        "city": name,
        **users,
        "targets": runs[0]["targets"],
        "unseen_targets": runs[0]["unseen_targets"],
        "zones": len(ckpt.vocab),
        "seeds": seeds,
        "median": medians,
        "best_baseline_by_perplexity": best,
        "gpt_beats_every_baseline": verdict,
        "train_s": [r["train_s"] for r in runs],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path, help="folder of the real visit logs")
    parser.add_argument("--cities", nargs="+", choices=list(CITIES), default=list(CITIES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    figures = []
    for city in args.cities:
        with tempfile.TemporaryDirectory(prefix=f"venuetwin-real-{city}-") as tmp:
            figures.append(bench_city(city, args.data, args.seeds, Path(tmp)))
    print("\nMedians over seeds", args.seeds)
    for f in figures:
        print(
            f"\n{f['city']}: {f['train_users']} training users, {f['test_users']} held out; "
            f"{f['targets']} targets ({f['unseen_targets']} at unseen places), "
            f"{f['zones']} zones"
        )
        header = f"{'':10}" + "".join(f"{m:>12}" for m in METRICS)
        print(header)
        for p in PREDICTORS:
            print(f"{p:10}" + "".join(f"{f['median'][p][m]:12.3f}" for m in METRICS))
        print(f"GPT ahead of every baseline: {f['gpt_beats_every_baseline']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=float) + "\n")
    return 0 if all(all(f["gpt_beats_every_baseline"].values()) for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
