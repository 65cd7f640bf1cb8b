"""A twin of a real place from its data: GPT avatars against the visitors they never saw.

    python bench/bench_pois.py DATA_DIR [--avatars N] [--seeds 2] [--train-seeds 0 1 2]
                               [--json out.json]

DATA_DIR holds the Flickr visits and POI tables of Toronto and Melbourne (Lim et al., IJCAI
2015; Wang et al., CIKM 2016). For each city, as a new user would run it:

1. users are split 80/20 (``bench_real.split_users``: photos dated 2000-2019, a hash of
   the user id with seed 2026);
2. ``venuetwin venue from-pois`` on the POI table and the training users' visits
   (``twin.from_pois.build_venue``, every POI kept);
3. ``venuetwin train --venue`` on the training users (the defaults);
4. ``venuetwin validate --reference`` the held-out users' log (``twin.validate``): the
   twin runs the held-out log's crowd (opening hours, arrival profile) with validate's
   default sample (or ``--avatars`` visitors a day), for ``--seeds`` seeds, each figure with
   its noise floor and status;
5. the same with Markov-2 avatars fitted on the training users (``policy="markov"``);
6. steps 3-5 for each of ``--train-seeds``: figures are medians over them.

Printed beside them, for scale: the zone-share JS between two random halves of the
held-out users (median of 20 halvings), and between uniform choice over the places and the
held-out users. Figures: zone-share, hour-of-day JS, visits per trajectory.
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

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_real import split_users  # noqa: E402

from llm.logs import Columns, read_logs  # noqa: E402
from llm.train import TrainConfig, train  # noqa: E402
from twin.from_pois import build_venue  # noqa: E402
from twin.scenario import Scenario  # noqa: E402
from twin.validate import jensen_shannon, validate, visit_stats  # noqa: E402

CITIES = {
    "toronto": ("POI-Toro.csv", "userVisits-Toro.csv", "America/Toronto"),
    "melbourne": ("POI-Melb.csv", "userVisits-Melb-allPOI.csv", "Australia/Melbourne"),
}
FIGURES = ("zone_share_js", "hour_share_js", "visits_per_avatar")


def columns_of(tz: str) -> Columns:
    return Columns("userID", "dateTaken", "poiID", session="seqID", tz=tz)


def canonical_log(source: Path, columns: Columns, out: Path) -> Path:
    """The log in the contract's columns (for the Markov policy, which reads those)."""
    frame = read_logs([source], columns)
    pd.DataFrame(
        {
            "avatar_id": frame["trajectory"],
            "timestamp": frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S"),
            "zone": frame["zone"],
            "dwell_s": frame["dwell_s"],
        }
    ).to_csv(out, index=False)
    return out


def scale(
    train_log: Path, test: Path, columns: Columns, places: list[str], seed: int = 0
) -> dict[str, float]:
    """For scale: the zone-share JS of two random halves of all users and of the held-out
    users (medians of 20 halvings), of the training users against the held-out ones (what
    a twin that reproduced its training visitors exactly would score), and of uniform
    choice over the places against the held-out users; visits per trajectory of the
    training users."""
    test_frame = read_logs([test], columns)
    train_frame = read_logs([train_log], columns)
    kind_of = {z: "place" for z in places}

    def stats(frame: pd.DataFrame) -> dict[str, Any]:
        return visit_stats(frame, kind_of, visitor="trajectory", zones=places)

    def halves(frame: pd.DataFrame) -> float:
        users = frame["visitor"].unique()
        rng = np.random.default_rng(seed)
        found = []
        for _ in range(20):
            mine = frame["visitor"].isin(set(rng.permutation(users)[: len(users) // 2]))
            found.append(
                jensen_shannon(
                    stats(frame[mine])["zone_counts"], stats(frame[~mine])["zone_counts"]
                )
            )
        return float(statistics.median(found))

    held_out, trained = stats(test_frame), stats(train_frame)
    return {
        "halves_all_users_zone_share_js": halves(pd.concat([train_frame, test_frame])),
        "halves_held_out_zone_share_js": halves(test_frame),
        "train_vs_held_out_zone_share_js": jensen_shannon(
            trained["zone_counts"], held_out["zone_counts"]
        ),
        "train_vs_held_out_hour_share_js": jensen_shannon(
            trained["hour_counts"], held_out["hour_counts"]
        ),
        "uniform_zone_share_js": jensen_shannon({z: 1.0 for z in places}, held_out["zone_counts"]),
        "train_visits_per_trajectory": trained["visits"] / max(trained["visitors"], 1),
    }


def bench_city(
    name: str, data: Path, avatars: int | None, seeds: int, train_seeds: list[int], folder: Path
) -> dict[str, Any]:
    pois, visits, tz = CITIES[name]
    columns = columns_of(tz)
    train_log, test_log, users = split_users(data / visits, folder)
    started = time.perf_counter()
    venue_file = folder / f"{name}.json"
    built = build_venue(
        data / pois, [train_log], log_columns=columns, unvisited="keep", venue_path=str(venue_file)
    )
    venue_s = time.perf_counter() - started
    venue = built.venue
    venue.save(venue_file)
    places = [z for z, k in zip(venue.zones, venue.kinds, strict=True) if k != "corridor"]
    places = [z for z in places if z not in ("entrance", "exit")]
    markov_log = canonical_log(train_log, columns, folder / f"{name}-markov.csv")
    per_seed: dict[str, list[dict[str, Any]]] = {"gpt": [], "markov": []}
    trainings = []
    for seed in train_seeds:
        started = time.perf_counter()
        summary = train(
            [train_log],
            folder / f"{name}-gpt-{seed}",
            vocab=venue.vocabulary(),
            columns=columns,
            cfg=TrainConfig(seed=seed),
            progress=False,
        )
        trainings.append(
            {
                "seed": seed,
                "train_s": round(time.perf_counter() - started, 1),
                "steps": summary["steps"],
                "val_perplexity": summary.get("best_val_perplexity"),
            }
        )
        model = str(folder / f"{name}-gpt-{seed}" / "model.safetensors")
        for policy in ("gpt", "markov"):
            started = time.perf_counter()
            scenario = Scenario(shows=[])
            if policy == "markov":
                scenario = scenario.replace(markov_logs=[str(markov_log)])
            # Against the held-out visitors, and the same twin against the visitors it
            # learned from (their day, their crowd).
            report, learned = (
                validate(
                    str(venue_file),
                    model=model,
                    policy=policy,
                    scenario=scenario,
                    avatars=avatars,
                    seeds=seeds,
                    first_seed=100 * seed,
                    reference=[str(log)],
                    columns=columns,
                    with_interventions=False,
                )
                for log in (test_log, train_log)
            )
            per_seed[policy].append(
                {
                    "avatars": report["avatars"],
                    "open": report["log"]["open"],
                    "outside_hours_share": report["log"]["outside_hours_share"],
                    **{
                        f"{key}_{what}": report[key][what]
                        for key in FIGURES
                        for what in ("noise_floor", "status")
                    },
                    "zone_share_js": report["zone_share_js"]["distance"],
                    "zone_share_js_vs_training_users": learned["zone_share_js"]["distance"],
                    "visits_vs_training_users": learned["visits_per_avatar"]["rel_error"],
                    "hour_share_js": report["hour_share_js"]["distance"],
                    "visits_per_trajectory": report["visits_per_avatar"]["twin"],
                    "reference_visits_per_trajectory": report["visits_per_avatar"]["reference"],
                    "wall_s": round(time.perf_counter() - started, 1),
                }
            )
    runs = {
        policy: {key: typical([r[key] for r in results]) for key in results[0]}
        | {"per_seed": results}
        for policy, results in per_seed.items()
    }
    return {
        "city": name,
        **users,
        "places": len(places),
        "zones": venue.n_zones,
        "passages": len(venue.edge_list),
        "venue_s": round(venue_s, 1),
        "training": trainings,
        "avatars": avatars,
        "seeds": seeds,
        "scale": scale(train_log, test_log, columns, places),
        "twin": runs,
        "summary": built.summary,
    }


def typical(values: list[Any]) -> Any:
    """The median of numbers; of words (a status, the hours), the most common."""
    if all(isinstance(v, (int, float)) for v in values):
        return statistics.median(values)
    return statistics.mode(values)


def show(result: dict[str, Any]) -> None:
    trainings = result["training"]
    print(
        f"\n{result['city']}: {result['places']} places, {result['zones']} zones; "
        f"{result['train_users']} training users, {result['test_users']} held out; "
        f"venue {result['venue_s']} s; training "
        + ", ".join(
            f"{t['train_s']} s ({t['steps']} steps, val ppl {t['val_perplexity']:.3f})"
            for t in trainings
        )
    )
    print(
        f"  {'avatars':<15} {'zone JS':>9} {'hour JS':>9} {'visits/traj':>12} {'held out':>9}"
        f" {'zone JS vs training users':>26}"
    )
    for policy, figures in result["twin"].items():
        print(
            f"  {policy:<15} {figures['zone_share_js']:>9.4f} {figures['hour_share_js']:>9.4f} "
            f"{figures['visits_per_trajectory']:>12.2f} "
            f"{figures['reference_visits_per_trajectory']:>9.2f} "
            f"{figures['zone_share_js_vs_training_users']:>26.4f}"
        )
    gpt = result["twin"]["gpt"]
    print(
        f"  validate's defaults: {gpt['avatars']:,} twin visitors a day, open {gpt['open']} "
        f"({gpt['outside_hours_share']:.0%} of the held-out visits outside); noise floor / "
        "status (GPT): "
        + ", ".join(
            f"{key} {gpt[key + '_noise_floor']:.4f} {gpt[key + '_status']}" for key in FIGURES
        )
    )
    scale_ = result["scale"]
    print(
        f"  training users  {scale_['train_vs_held_out_zone_share_js']:>9.4f} "
        f"{scale_['train_vs_held_out_hour_share_js']:>9.4f} "
        f"{scale_['train_visits_per_trajectory']:>12.2f}"
    )
    print(
        f"  scale: halves of all users {scale_['halves_all_users_zone_share_js']:.4f}, of the "
        f"held-out users {scale_['halves_held_out_zone_share_js']:.4f}; uniform choice "
        f"{scale_['uniform_zone_share_js']:.4f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--cities", nargs="+", default=list(CITIES), choices=list(CITIES))
    parser.add_argument(
        "--avatars", type=int, help="twin visitors a day (default: validate's, from the log)"
    )
    parser.add_argument("--seeds", type=int, default=2, help="twin runs per model")
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for city in args.cities:
            folder = Path(tmp) / city
            folder.mkdir()
            results.append(
                bench_city(city, args.data, args.avatars, args.seeds, args.train_seeds, folder)
            )
            show(results[-1])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
