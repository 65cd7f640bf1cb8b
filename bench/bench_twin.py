"""Benchmark of the venue twin: how fast and how big a run of the expo gets as avatars grow.

What it measures
----------------
For each size N (default 1,000, 10,000 and 100,000 avatars) the built-in ``expo`` venue is
run for a 4-hour event with the scripted policy (``Scenario(venue="expo", avatars=N,
hours=4.0, seed=s)``), ``--repeats`` times with seeds ``0..r-1``. The expo is built for
about 10,000 visitors (its gates admit about 6,300 an hour): above that, the run uses
``expo.scaled(N / 10,000)`` (areas, capacities, servers and door widths multiplied, the
layout unchanged), so 100,000 avatars do the same work per avatar as 10,000 instead of
spending the event in the gate queues (``--no-scale`` runs the expo as built).
Every run happens in a fresh Python process (this same file in its hidden ``--one``
mode), so its peak resident memory (``ru_maxrss`` of that process) belongs to that run
alone and no run warms caches for the next. Per run it records:

- ``build_s``  wall time of ``VenueModel(...)`` (venue, programme, arrivals, needs, crowd);
- ``run_s``    wall time of ``model.run()`` (every step until closing time);
- ``total_s``  ``build_s + run_s`` (imports and ``model.kpis()`` are not counted);
- ``steps_per_s``  avatar-steps per second, ``model.totals.avatar_steps / run_s``;
- ``us_per_avatar``  microseconds per avatar, ``total_s / N * 1e6``;
- ``us_per_visit``  microseconds per zone visit, ``total_s / visits * 1e6`` (the work done);
- ``peak_mb``  peak resident memory of the process, MB (interpreter and imports included;
  ``import_mb``, in the JSON, is the peak right after ``import twin``, before the model).

The table shows the median of the repeats with their min-max, and the machine noise as
the spread ``(max - min) / median`` of the total time. It also shows what the run did
(visits per avatar, share of avatars who left by closing, mean wait): when the venue is
saturated, avatars queue at the gates for hours and do little, so the time per avatar
then understates the cost of a busy avatar; a warning is printed, and the time per visit
is compared across sizes as well. The same 10,000-avatar expo is also
run with ``stepping="agents"`` (Mesa's plain one-Python-call-per-agent stepping), and the
ratio of its wall time to the array stepping's, both measured in this invocation, is
printed.

Goals
-----
- 10,000 avatars run a 4-hour event in under 20 s (build + run, median);
- the time per avatar at 100,000 is within 1.3x of that at 10,000 (it scales linearly);
- 100,000 avatars peak under 4 GB (4096 MB) resident memory.

Usage::

    python bench/bench_twin.py [--sizes 1000 10000 100000] [--repeats 3] [--skip-agents]
                               [--agents-repeats 1] [--json FILE]

Its length: one benchmark with its runner in fresh processes, its statistics (medians,
spans, noise) and its report, kept together so that a figure can be traced to its code.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: import the repository's twin
    sys.path.insert(0, str(ROOT))

#: Figures of one run, in the order of the table.
FIGURES: tuple[str, ...] = (
    "build_s",
    "run_s",
    "total_s",
    "steps_per_s",
    "us_per_avatar",
    "us_per_visit",
    "peak_mb",
)
#: What the run did (median only in the table).
WORKLOAD: tuple[str, ...] = ("visits_per_avatar", "left_share", "mean_wait_s")
#: Below this share of avatars gone by closing, a run is flagged as saturated.
SATURATED_LEFT_SHARE = 0.9
GOAL_10K_S = 20.0
GOAL_SCALING = 1.3
GOAL_100K_MB = 4096.0
HOURS = 4.0
VENUE = "expo"
#: Crowd the expo is built for; larger crowds run on ``expo.scaled(avatars / BASE_AVATARS)``
#: (areas, capacities, servers and door widths multiplied), so every size does the same
#: work per avatar. With ``--no-scale`` 100,000 avatars mostly queue at the expo's gates.
BASE_AVATARS = 10_000


# ====================================================================== one run (child)
def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KB else


def venue_factor(avatars: int, scale: bool) -> float:
    """How many times the expo is enlarged for this crowd (1 up to ``BASE_AVATARS``)."""
    return max(1.0, avatars / BASE_AVATARS) if scale else 1.0


def run_one(
    avatars: int,
    seed: int,
    stepping: str,
    scale: bool = True,
    policy: str = "scripted",
    stream: Path | None = None,
) -> dict[str, Any]:
    """One timed run in this process; the figures as a dict."""
    t_import = time.perf_counter()
    from twin import Scenario, VenueModel, load_venue

    import_s, import_mb = time.perf_counter() - t_import, peak_rss_mb()
    venue = load_venue(VENUE)
    factor = venue_factor(avatars, scale)
    if factor > 1:
        venue = venue.scaled(factor)
    from twin.catalog import shipped_model_path

    model_path = str(shipped_model_path(VENUE)) if policy == "gpt" else None
    scenario = Scenario(
        venue=venue, avatars=avatars, hours=HOURS, seed=seed, policy=policy, model=model_path
    )
    t0 = time.perf_counter()
    model = VenueModel(scenario, stepping=stepping, stream_visits=stream)  # type: ignore[arg-type]
    t1 = time.perf_counter()
    model.run()
    t2 = time.perf_counter()
    kpis = model.kpis()
    memory = memory_parts(model)
    if stream is not None:  # the log written from its parts, as ``venuetwin simulate`` does
        from llm.logschema import write_visit_parts

        write_visit_parts(model.visit_frames(), stream / "visits.parquet")
        memory["log_write_s"] = time.perf_counter() - t2
        model.crowd.log.close()
    steps = int(model.totals.avatar_steps)
    build_s, run_s = t1 - t0, t2 - t1
    return {
        "avatars": avatars,
        "venue_scale": factor,
        "seed": seed,
        "stepping": stepping,
        "build_s": build_s,
        "run_s": run_s,
        "total_s": build_s + run_s,
        "avatar_steps": steps,
        "steps_per_s": steps / run_s if run_s > 0 else float("nan"),
        "us_per_avatar": (build_s + run_s) / avatars * 1e6,
        "us_per_visit": (build_s + run_s) / max(int(kpis["visits"]), 1) * 1e6,
        "peak_mb": peak_rss_mb(),
        "import_s": import_s,
        "import_mb": import_mb,
        "mean_wait_s": float(kpis["mean_wait_s"]),
        "left": int(kpis["left"]),
        "visits": int(kpis["visits"]),
        "visits_per_avatar": int(kpis["visits"]) / avatars,
        "left_share": int(kpis["left"]) / avatars,
        **memory,
    }


def memory_parts(model: Any) -> dict[str, float]:
    """MB of the run's main parts, from their arrays' sizes at the end: the crowd's arrays,
    the policy's per-avatar arrays, the visit log still held in memory, and the key/value
    cache's pages at their most in use (GPT avatars)."""

    def arrays_mb(obj: Any) -> float:
        return sum(v.nbytes for v in vars(obj).values() if isinstance(v, np.ndarray)) / 2**20

    import numpy as np

    crowd = model.crowd
    parts = {
        "crowd_mb": arrays_mb(crowd)
        + arrays_mb(crowd.needs)
        + (arrays_mb(crowd.walks) if crowd.walks else 0.0),
        "log_held_mb": sum(a.nbytes for chunk in crowd.log.chunks for a in chunk) / 2**20,
        "policy_mb": arrays_mb(model.policy),
    }
    cache = getattr(model.policy, "kv", None)
    if cache is not None:
        parts["cache_peak_mb"] = cache.most_pages * cache.page_bytes / 2**20
    return parts


# ====================================================================== driver (parent)
@dataclass
class Summary:
    """Median and min-max of each figure over the repeats of one configuration."""

    avatars: int
    stepping: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def values(self, figure: str) -> list[float]:
        return [float(r[figure]) for r in self.runs]

    def median(self, figure: str) -> float:
        vals = self.values(figure)
        return statistics.median(vals) if vals else float("nan")

    def span(self, figure: str) -> tuple[float, float]:
        vals = self.values(figure)
        return (min(vals), max(vals)) if vals else (float("nan"), float("nan"))

    def noise(self, figure: str = "total_s") -> float:
        """Spread of the repeats, ``(max - min) / median``."""
        lo, hi = self.span(figure)
        med = self.median(figure)
        return (hi - lo) / med if len(self.runs) > 1 and med > 0 else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            "avatars": self.avatars,
            "stepping": self.stepping,
            "repeats": len(self.runs),
            "median": {f: self.median(f) for f in FIGURES + WORKLOAD},
            "min": {f: self.span(f)[0] for f in FIGURES + WORKLOAD},
            "max": {f: self.span(f)[1] for f in FIGURES + WORKLOAD},
            "noise_total": self.noise(),
            "runs": self.runs,
            "errors": self.errors,
        }


def spawn_one(
    avatars: int,
    seed: int,
    stepping: str,
    timeout_s: float | None,
    scale: bool = True,
    policy: str = "scripted",
) -> dict[str, Any]:
    """Run one configuration in a fresh interpreter; its figures, or an ``error`` entry."""
    cmd = (
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--one",
            str(avatars),
            str(seed),
            stepping,
        ]
        + ([] if scale else ["--no-scale"])
        + ["--policy", policy]
    )
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, cwd=ROOT, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
    return json.loads(lines[-1])


def measure(
    avatars: int,
    stepping: str,
    repeats: int,
    timeout_s: float | None,
    log: bool = True,
    scale: bool = True,
    policy: str = "scripted",
) -> Summary:
    summary = Summary(avatars, stepping)
    for seed in range(repeats):
        result = spawn_one(avatars, seed, stepping, timeout_s, scale, policy)
        if "error" in result:
            summary.errors.append(f"seed {seed}: {result['error']}")
            msg = f"FAILED: {result['error']}"
        else:
            summary.runs.append(result)
            msg = (
                f"build {result['build_s']:.2f} s, run {result['run_s']:.2f} s, "
                f"peak {result['peak_mb']:.0f} MB"
            )
        if log:
            print(f"  {stepping:6} {avatars:>9,} avatars  seed {seed}: {msg}", flush=True)
    return summary


# ====================================================================== report
def fmt(figure: str, value: float) -> str:
    if value != value:  # NaN
        return "-"
    if figure == "steps_per_s":
        return f"{value / 1e6:.2f}M"
    if figure in ("us_per_avatar", "peak_mb", "mean_wait_s"):
        return f"{value:,.0f}"
    if figure == "us_per_visit":
        return f"{value:.1f}"
    if figure == "visits_per_avatar":
        return f"{value:.1f}"
    if figure == "left_share":
        return f"{value:.0%}"
    return f"{value:.2f}" if value < 100 else f"{value:,.0f}"


def cell(s: Summary, figure: str) -> str:
    med = fmt(figure, s.median(figure))
    if len(s.runs) < 2:
        return med
    lo, hi = s.span(figure)
    return f"{med} ({fmt(figure, lo)}-{fmt(figure, hi)})"


HEADERS: tuple[str, ...] = (
    "stepping",
    "avatars",
    "n",
    "build s",
    "run s",
    "total s",
    "avatar-steps/s",
    "us/avatar",
    "us/visit",
    "peak MB",
    "noise",
    "visits/av",
    "left",
    "wait s",
)


def table_rows(summaries: list[Summary]) -> list[list[str]]:
    rows = []
    for s in summaries:
        noise = s.noise()
        rows.append(
            [
                s.stepping,
                f"{s.avatars:,}",
                str(len(s.runs)),
                *(cell(s, f) for f in FIGURES),
                "-" if noise != noise else f"{noise:.1%}",
                *(fmt(f, s.median(f)) for f in WORKLOAD),
            ]
        )
    return rows


def print_table(summaries: list[Summary], title: str) -> None:
    rows = table_rows(summaries)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)]
        line = "  ".join(h.rjust(w) for h, w in zip(HEADERS, widths, strict=True))
        print(f"\n{title}\n{line}\n{'-' * len(line)}")
        for r in rows:
            print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
        return
    table = Table(title=title)
    for h in HEADERS:
        table.add_column(h, justify="right")
    for r in rows:
        table.add_row(*r)
    Console().print(table)


def goal_checks(by_size: dict[int, Summary]) -> list[dict[str, Any]]:
    """The three goals, each PASS, FAIL or SKIP (size not measured)."""
    goals: list[dict[str, Any]] = []

    def add(name: str, value: float | None, limit: float, unit: str) -> None:
        if value is None or value != value:
            goals.append({"goal": name, "status": "SKIP", "value": None, "limit": limit})
            return
        status = "PASS" if value < limit else "FAIL"
        goals.append({"goal": name, "status": status, "value": value, "limit": limit, "unit": unit})

    s10, s100 = by_size.get(10_000), by_size.get(100_000)
    ok10 = s10 is not None and s10.runs
    ok100 = s100 is not None and s100.runs
    add(
        "10,000 avatars, 4 h event, build+run (median)",
        s10.median("total_s") if ok10 else None,
        GOAL_10K_S,
        "s",
    )
    add(
        "time per avatar at 100,000 / at 10,000",
        s100.median("us_per_avatar") / s10.median("us_per_avatar") if ok10 and ok100 else None,
        GOAL_SCALING,
        "x",
    )
    add(
        "100,000 avatars peak resident memory (median)",
        s100.median("peak_mb") if ok100 else None,
        GOAL_100K_MB,
        "MB",
    )
    return goals


def caveats(shown: list[Summary]) -> list[str]:
    """Warnings about runs whose venue saturated, and the time per visit across sizes."""
    notes = []
    for s in shown:
        if s.runs and s.median("left_share") < SATURATED_LEFT_SHARE:
            notes.append(
                f"WARNING {s.stepping} {s.avatars:,} avatars: only {s.median('left_share'):.0%} "
                f"left by closing, mean wait {s.median('mean_wait_s'):,.0f} s, "
                f"{s.median('visits_per_avatar'):.1f} visits per avatar: the venue is "
                "saturated (avatars queue at the gates), so the time per avatar understates "
                "the cost of an active avatar"
            )
    arrays = sorted(
        (s for s in shown if s.stepping == "arrays" and s.runs), key=lambda s: s.avatars
    )
    if len(arrays) > 1:
        base = arrays[0]
        notes.append(
            "time per visit (work-normalised), relative to "
            f"{base.avatars:,}: "
            + ", ".join(
                f"{s.avatars:,} {s.median('us_per_visit') / base.median('us_per_visit'):.2f}x"
                for s in arrays[1:]
            )
        )
    return notes


def print_goals(goals: list[dict[str, Any]]) -> None:
    print("\nGoals")
    for g in goals:
        if g["status"] == "SKIP":
            print(f"  SKIP  {g['goal']}: not measured (limit {g['limit']:g})")
        else:
            print(
                f"  {g['status']}  {g['goal']}: {g['value']:.3g} {g['unit']} "
                f"(limit < {g['limit']:g} {g['unit']})"
            )


def machine() -> dict[str, Any]:
    import mesa
    import numpy as np

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "mesa": mesa.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "git_commit": commit,
        "venue": VENUE,
        "hours": HOURS,
    }


# ====================================================================== main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark the venue twin (expo, scripted avatars, 4-hour event).",
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    p.add_argument("--repeats", type=int, default=3, help="runs per size (seeds 0..r-1)")
    p.add_argument("--skip-agents", action="store_true", help="skip the stepping='agents' run")
    p.add_argument("--agents-size", type=int, default=10_000, help=argparse.SUPPRESS)
    p.add_argument("--agents-repeats", type=int, default=1, help="repeats of the agents run")
    p.add_argument("--timeout", type=float, default=None, help="seconds allowed per run")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="write figures")
    p.add_argument(
        "--no-scale",
        action="store_true",
        help=f"run every size on the expo as built (by default, above {BASE_AVATARS:,} "
        "avatars the expo is enlarged in proportion so the crowd fits its gates)",
    )
    p.add_argument(
        "--one", nargs=3, metavar=("AVATARS", "SEED", "STEPPING"), help=argparse.SUPPRESS
    )
    p.add_argument(
        "--stream-visits",
        type=Path,
        metavar="DIR",
        help="stream the visit log to DIR as the run goes, then write DIR/visits.parquet",
    )
    p.add_argument(
        "--policy",
        default="scripted",
        choices=["scripted", "gpt", "markov", "random"],
        help="how the avatars decide (default: scripted)",
    )
    args = p.parse_args(argv)
    if args.repeats < 1 or args.agents_repeats < 1:
        p.error("--repeats and --agents-repeats must be >= 1")
    if any(n < 1 for n in args.sizes):
        p.error("--sizes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one:
        avatars, seed, stepping = int(args.one[0]), int(args.one[1]), args.one[2]
        result = run_one(
            avatars, seed, stepping, not args.no_scale, args.policy, args.stream_visits
        )
        print(json.dumps(result), flush=True)
        return 0

    info = machine()
    print(
        f"venuetwin benchmark: {VENUE}, {HOURS:g} h, scripted; python {info['python']}, "
        f"numpy {info['numpy']}, mesa {info['mesa']}, {info['cpus']} CPUs, "
        f"commit {info['git_commit'] or '?'}",
        flush=True,
    )
    sizes = sorted(set(args.sizes))
    by_size: dict[int, Summary] = {}
    for n in sizes:
        by_size[n] = measure(
            n, "arrays", args.repeats, args.timeout, scale=not args.no_scale, policy=args.policy
        )

    comparison: dict[str, Any] | None = None
    agents: Summary | None = None
    arrays_ref: Summary | None = None
    if not args.skip_agents:
        n = args.agents_size
        arrays_ref = by_size.get(n) or measure(n, "arrays", args.agents_repeats, args.timeout)
        agents = measure(n, "agents", args.agents_repeats, args.timeout)
        if agents.runs and arrays_ref.runs:
            comparison = {
                "avatars": n,
                "agents_total_s": agents.median("total_s"),
                "arrays_total_s": arrays_ref.median("total_s"),
                "ratio_total": agents.median("total_s") / arrays_ref.median("total_s"),
                "ratio_run": agents.median("run_s") / arrays_ref.median("run_s"),
            }

    shown = [by_size[n] for n in sizes]
    if arrays_ref is not None and arrays_ref.avatars not in by_size:
        shown.append(arrays_ref)
    if agents is not None:
        shown.append(agents)
    print_table(
        shown, f"median (min-max) of {args.repeats} repeat(s); noise = (max-min)/median of total"
    )
    goals = goal_checks(by_size)
    print_goals(goals)
    notes = caveats(shown)
    if notes:
        print()
        for note in notes:
            print(note)
    if comparison:
        print(
            f"\nagents vs arrays stepping at {comparison['avatars']:,} avatars: "
            f"{comparison['agents_total_s']:.1f} s / {comparison['arrays_total_s']:.2f} s = "
            f"{comparison['ratio_total']:.1f}x slower (run only: {comparison['ratio_run']:.1f}x)"
        )
    elif agents is not None:
        print("\nagents vs arrays: not compared (a run failed)")
    noise = {f"{s.stepping}/{s.avatars}": s.noise() for s in shown if len(s.runs) > 1}
    if noise:
        worst = max(noise.values())
        print(
            "machine noise (spread of total time over repeats): "
            + ", ".join(f"{k} {v:.1%}" for k, v in noise.items())
            + f"; worst {worst:.1%}"
        )
    failed = [f"{s.stepping}/{s.avatars}: {e}" for s in shown for e in s.errors]
    for f in failed:
        print(f"ERROR {f}")

    if args.json:
        payload = {
            "machine": info,
            "args": {k: v for k, v in vars(args).items() if k not in ("one", "json")},
            "goals": {"10k_total_s": GOAL_10K_S, "scaling": GOAL_SCALING, "100k_mb": GOAL_100K_MB},
            "results": [s.as_dict() for s in shown],
            "goal_checks": goals,
            "caveats": notes,
            "agents_vs_arrays": comparison,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n", "utf-8")
        print(f"wrote {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
