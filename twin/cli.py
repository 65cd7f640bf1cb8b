"""The ``venuetwin`` command line: ``simulate`` a scenario, list the built-in ``venues``.

Bad input (a malformed venue or scenario, an out-of-range option) prints one line naming
the file and the field, exits with status 2, and writes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from twin.scenario import POLICIES, Scenario, ScenarioError
from twin.venue import BUILTIN_VENUES, VenueError, load_venue

#: Errors that are the user's input, not a bug: one line, exit status 2.
INPUT_ERRORS: tuple[type[Exception], ...] = (VenueError, ScenarioError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except INPUT_ERRORS as exc:
        print(f"venuetwin: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("venuetwin: interrupted; nothing was written", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="venuetwin", description="A digital twin of venues whose visitors think with a GPT."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    sim = commands.add_parser("simulate", help="run a scenario and write logs and KPIs")
    sim.add_argument("scenario", nargs="?", help="scenario TOML file (default: built-in)")
    sim.add_argument("--venue", help=f"built-in venue ({', '.join(BUILTIN_VENUES)}) or JSON")
    sim.add_argument("--avatars", type=int, help="number of visitors")
    sim.add_argument("--hours", type=float, help="length of the event")
    sim.add_argument("--policy", choices=POLICIES, help="how avatars decide")
    sim.add_argument("--seed", type=int, help="random seed (same seed, same run)")
    sim.add_argument("--csv", action="store_true", help="write visits.csv instead of Parquet")
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    sim.add_argument("--out", required=True, help="output folder")
    sim.set_defaults(run=simulate)

    venues = commands.add_parser("venues", help="list the built-in venues")
    venues.set_defaults(run=list_venues)
    return parser


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    """The scenario file (or the default scenario) with the command line's overrides."""
    scenario = Scenario.from_toml(args.scenario) if args.scenario else Scenario()
    source = args.scenario or "command line"
    overrides: dict[str, Any] = {
        key: getattr(args, key)
        for key in ("venue", "avatars", "hours", "policy", "seed")
        if getattr(args, key) is not None
    }
    data = scenario.to_dict() | overrides
    return Scenario.from_dict(data, source)


def simulate(args: argparse.Namespace) -> int:
    from twin.model import VenueModel
    from twin.output import write_run

    scenario = scenario_from_args(args)
    started = time.perf_counter()
    model = VenueModel(scenario)
    model.run(progress=not args.quiet)
    elapsed = time.perf_counter() - started
    paths = write_run(model, args.out, csv=args.csv)
    print_kpis(model.kpis(), elapsed)
    for name, path in paths.items():
        print(f"{name:>7}: {path}")
    return 0


def print_kpis(kpis: dict[str, Any], elapsed_s: float) -> None:
    rows = [
        ("venue", kpis["venue"]),
        ("policy", kpis["policy"]),
        ("avatars", f"{kpis['avatars']:,} ({kpis['inside_at_end']:,} inside at the end)"),
        ("mean wait", f"{kpis['mean_wait_s']:.1f} s (p95 {kpis['p95_wait_s']:.1f} s)"),
        ("mean gate wait", f"{kpis['mean_gate_wait_s']:.1f} s"),
        ("level E/F", f"{kpis['person_minutes_los_ef']:,.0f} person-minutes"),
        ("peak density", f"{kpis['peak_density']:.2f} p/m2 ({kpis['peak_density_zone']})"),
        ("satisfaction", f"{kpis['mean_satisfaction']:.3f} (mean)"),
        ("wall time", f"{elapsed_s:.1f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:>{width}}  {value}")


def list_venues(args: argparse.Namespace) -> int:
    for name in BUILTIN_VENUES:
        venue = load_venue(name)
        kinds = sorted(set(venue.kinds))
        counts = ", ".join(f"{venue.kinds.count(k)} {k}" for k in kinds)
        print(f"{name:<14} {venue.n_zones:>3} zones  {venue.area.sum():>8,.0f} m2  ({counts})")
        description = venue.graph.graph.get("description")
        if description:
            print(f"{'':<14} {description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
