"""Fidelity of the GPT twin: does the model-driven crowd behave like its reference?

    from twin.validate import validate
    report = validate("festival", avatars=30_000, hours=6, seeds=2)
    report["mean_satisfaction"]   # {"twin": ..., "reference": ..., "rel_error": ..., ...}

The twin (GPT avatars) and the reference (the scripted visitors, or a real visit log) are
run on the same scenario and seeds, so they share arrivals and visitors (common random
numbers), and compared on what an operator reads: where visitors go (zone and kind shares,
Jensen-Shannon), how many visits and how long, queue waits, crowd risk (person-minutes at
Fruin E/F), satisfaction, the occupancy of each kind of zone every 15 minutes, who
attends the shows (per stage, of those who booked them and of the others:
``twin.attendance``), and how both react to the same interventions (``twin.whatifs``:
staff, gates, caps, arrivals, crowd size, the programme, a zone closed), with each zone's
change of visits beside the reference's, so that a miss says where the response goes
wrong. Each figure carries a target and whether it is met (``TARGETS``).

Against a log, the twin runs the log's venue with the log's crowd (trajectories per day,
first-visit times, the day's span) and the comparison keeps to what the log supports: the
zones it has, and dwell, waits and occupancy only where it states dwell and waits. A log
has no counterfactuals, so no interventions; and no satisfaction, which the twin scores
from its visitors' needs.

Every statistic of a run is computed from its visit log (``visit_stats``) by one function,
for the twin, the scripted reference and a real log alike; queue waits, crowd risk and
satisfaction of runs come from the run's KPIs (``twin.kpis.summarise``).

Its length: the fidelity report, statistics, comparisons, interventions and the log
reference, read together because every figure must be computed the same way for twin,
scripted reference and log.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from llm.logs import Columns, read_logs
from twin.attendance import attendance_shares, show_attendance
from twin.log_crowd import LogCrowd, OpenHours, crowd_of_log, sample_size
from twin.noise_floor import TOO_NOISY, annotate, figure_values, halves_floor, pair_floor
from twin.scenario import Scenario, ScenarioError
from twin.venue import STAFFED_KINDS, Venue, load_venue
from twin.whatifs import interventions

#: Occupancy is compared per zone kind on this clock grid (seconds).
OCCUPANCY_BIN_S = 900.0
#: ... sampled every minute within each bin.
OCCUPANCY_SAMPLE_S = 60.0
#: The fidelity targets: a distance below, or a relative error within, these.
TARGETS: dict[str, float] = {
    "zone_share_js": 0.02,
    "kind_share_js": 0.02,
    "hour_share_js": 0.02,
    "visits_per_avatar": 0.10,
    "mean_dwell_s": 0.10,
    "mean_satisfaction": 0.10,
    "mean_wait_s": 0.15,
    "p95_wait_s": 0.15,
    "los_ef_person_minutes": 0.25,
    "occupancy_nrmse": 0.15,
}
#: An intervention's change by the twin over the reference's must lie within this (or both
#: changes within the reference's seed noise, ``NOISE_SIGMAS`` standard errors).
RATIO_RANGE = (0.67, 1.5)
NOISE_SIGMAS = 2.0
#: Show attendance: the twin's share of booked visitors who attend a stage's shows within
#: this relative error of the reference's; the others' share within it or within
#: ``ATTENDANCE_OTHERS_ABS`` (a few percent attend a show they did not book: a relative
#: error of such small shares is mostly noise).
ATTENDANCE_TARGET = 0.10
ATTENDANCE_OTHERS_ABS = 0.01
#: Zones listed per intervention in the report's text and HTML (the JSON keeps them all):
#: the largest differences between the twin's and the reference's change of visits.
ZONE_ROWS = 8
#: KPIs whose change under an intervention is compared.
INTERVENTION_KPIS: tuple[str, ...] = ("mean_wait_s", "los_ef_person_minutes", "mean_satisfaction")


# --------------------------------------------------------------------------- statistics
def visit_stats(
    visits: pd.DataFrame,
    kind_of: dict[str, str],
    *,
    visitor: str = "avatar_id",
    zones: Sequence[str] | None = None,
    days: int = 1,
) -> dict[str, Any]:
    """What a visit log says of a crowd: visits per zone, kind and hour of the day (of
    their start), visits per visitor, dwell (overall and per kind), queue waits and the
    occupancy of each kind of zone per ``OCCUPANCY_BIN_S`` of the clock (mean persons
    present, averaged over ``days``).

    ``visits``: one row per visit with ``timestamp``, ``zone``, ``dwell_s`` (NaN where
    the log states none) and ``wait_s`` if known; ``zones``: keep to these zones."""
    if zones is not None:
        visits = visits[visits["zone"].isin(zones)]
    kinds = visits["zone"].map(kind_of).fillna("other")
    given = visits["dwell_s"] if "dwell_s" in visits else pd.Series(np.nan, index=visits.index)
    dwell = pd.to_numeric(given, errors="coerce")
    has_dwell = bool(dwell.notna().any())
    stats: dict[str, Any] = {
        "zone_counts": visits["zone"].value_counts().to_dict(),
        "kind_counts": kinds.value_counts().to_dict(),
        "hour_counts": hour_counts(visits["timestamp"]),
        "visitors": int(visits[visitor].nunique()),
        "visits": len(visits),
    }
    if has_dwell:
        stats["mean_dwell_s"] = float(dwell.mean())
        stats["mean_dwell_s_by_kind"] = dwell.groupby(kinds).mean().to_dict()
        stats["dwell_quantiles"] = {
            kind: np.quantile(d.dropna(), np.linspace(0.05, 0.95, 19)).tolist()
            for kind, d in dwell.groupby(kinds)
            if d.notna().any()
        }
        stats["occupancy"] = occupancy_by_kind(visits["timestamp"], dwell, kinds, days)
    if "wait_s" in visits and pd.to_numeric(visits["wait_s"], errors="coerce").gt(0).any():
        wait = pd.to_numeric(visits["wait_s"], errors="coerce").fillna(0.0)
        served = visits["zone"].map(kind_of).isin(SERVED_KINDS)
        stats["visit_wait_s"] = float(wait[served].mean()) if served.any() else 0.0
    return stats


def hour_counts(timestamps: pd.Series) -> dict[str, int]:
    """Visits by the hour of the day they begin ("0" to "23")."""
    return {str(h): int(n) for h, n in pd.to_datetime(timestamps).dt.hour.value_counts().items()}


#: Kinds whose visits queue for service (gates, bars, restrooms, shops).
SERVED_KINDS = ("entrance", *STAFFED_KINDS)


def occupancy_by_kind(
    timestamps: pd.Series, dwell_s: pd.Series, kinds: pd.Series, days: int = 1
) -> dict[str, dict[int, float]]:
    """Mean persons present at each kind of zone in each ``OCCUPANCY_BIN_S`` of the clock
    (keys: bin index since midnight), from visits' start times and dwells."""
    stamps = pd.to_datetime(timestamps)
    start = (stamps - stamps.dt.normalize()).dt.total_seconds().to_numpy()
    end = start + dwell_s.fillna(0.0).to_numpy()
    if len(start) == 0:
        return {}
    grid = np.arange(
        np.floor(start.min() / OCCUPANCY_BIN_S) * OCCUPANCY_BIN_S,
        end.max() + OCCUPANCY_SAMPLE_S,
        OCCUPANCY_SAMPLE_S,
    )
    bins = (grid // OCCUPANCY_BIN_S).astype(int)
    out: dict[str, dict[int, float]] = {}
    kind_values = kinds.to_numpy()
    for kind in np.unique(kind_values):
        mine = kind_values == kind
        present = np.searchsorted(np.sort(start[mine]), grid, side="right") - np.searchsorted(
            np.sort(end[mine]), grid, side="right"
        )
        means = pd.Series(present / max(days, 1)).groupby(bins).mean()
        out[str(kind)] = {int(b): float(v) for b, v in means.items()}
    return out


def run_stats(model: Any, zones: Sequence[str] | None = None) -> dict[str, Any]:
    """The statistics of a finished ``VenueModel`` run: its visit log's (on ``zones``
    only, if given) and its KPIs."""
    venue = model.venue
    kind_of = dict(zip(venue.zones, venue.kinds, strict=True))
    visits = model.visits()
    stats = visit_stats(visits, kind_of, zones=zones)
    if "profile" in visits:
        stats["attendance"] = show_attendance(visits, model.layout.programme())
    kpis = model.kpis()
    stats["visitors"] = int(kpis["avatars"])
    for key, name in (
        ("mean_wait_s", "mean_wait_s"),
        ("p95_wait_s", "p95_wait_s"),
        ("los_ef_person_minutes", "person_minutes_los_ef"),
        ("mean_satisfaction", "mean_satisfaction"),
    ):
        stats[key] = float(kpis[name])
    by_zone = model.totals.los_ef_by_zone
    stats["zone_crowd_risk"] = {
        venue.zones[z]: float(by_zone[z]) for z in np.flatnonzero(by_zone > 0)
    }
    return stats


# --------------------------------------------------------------------------- comparisons
def jensen_shannon(p: dict[str, float], q: dict[str, float]) -> float:
    """Jensen-Shannon divergence (natural log, 0..ln 2) of two count tables."""
    keys = sorted(set(p) | set(q))
    a = np.array([p.get(k, 0.0) for k in keys], dtype=np.float64)
    b = np.array([q.get(k, 0.0) for k in keys], dtype=np.float64)
    if a.sum() == 0 or b.sum() == 0:
        return float("nan")
    a, b = a / a.sum(), b / b.sum()
    m = (a + b) / 2

    def kl(x: np.ndarray, y: np.ndarray) -> float:
        keep = x > 0
        return float(np.sum(x[keep] * np.log(x[keep] / y[keep])))

    return 0.5 * kl(a, m) + 0.5 * kl(b, m)


def occupancy_nrmse(
    twin: dict[str, dict[int, float]], reference: dict[str, dict[int, float]]
) -> tuple[float, dict[str, float]]:
    """Root-mean-square difference of occupancy over every (kind, 15 minutes) of the
    reference's open hours, over the reference's mean occupancy there; and per kind."""
    cells_twin, cells_ref, per_kind = [], [], {}
    for kind, curve in reference.items():
        bins = sorted(curve)
        ref = np.array([curve[b] for b in bins])
        mine = np.array([twin.get(kind, {}).get(b, 0.0) for b in bins])
        cells_twin.append(mine)
        cells_ref.append(ref)
        scale = ref.mean()
        rmse = float(np.sqrt(np.mean((mine - ref) ** 2))) if len(ref) else 0.0
        per_kind[kind] = rmse / scale if scale > 0 else float("nan")
    if not cells_ref:
        return float("nan"), per_kind
    a, b = np.concatenate(cells_twin), np.concatenate(cells_ref)
    scale = b.mean()
    return (float(np.sqrt(np.mean((a - b) ** 2)) / scale) if scale > 0 else float("nan")), per_kind


def relative(twin: float, reference: float) -> float:
    """(twin - reference) / |reference|: 0 where both are 0, NaN where only the reference is."""
    if reference:
        return (twin - reference) / abs(reference)
    return 0.0 if twin == reference else float("nan")


def figure(twin: float, reference: float, key: str) -> dict[str, Any]:
    """One compared KPI: both values, the relative error, the target and whether it is met."""
    error = relative(twin, reference)
    return {
        "twin": twin,
        "reference": reference,
        "rel_error": error,
        "target": TARGETS.get(key),
        "passed": bool(np.isfinite(error) and abs(error) <= TARGETS.get(key, np.inf)),
    }


def distance(value: float, key: str, twin: Any = None, reference: Any = None) -> dict[str, Any]:
    return {
        "twin": twin,
        "reference": reference,
        "distance": value,
        "target": TARGETS[key],
        "passed": bool(np.isfinite(value) and value < TARGETS[key]),
    }


def merge(stats: list[dict[str, Any]]) -> dict[str, Any]:
    """Several seeds' statistics as one: counts summed, means averaged."""
    out: dict[str, Any] = {}
    for key in stats[0]:
        values = [s[key] for s in stats if key in s]
        if key in ("zone_counts", "kind_counts", "hour_counts"):
            total: dict[str, float] = {}
            for v in values:
                for k, c in v.items():
                    total[k] = total.get(k, 0) + c
            out[key] = total
        elif key == "attendance":
            out[key] = {}
            for v in values:
                for stage, counts in v.items():
                    mine = out[key].setdefault(stage, dict.fromkeys(counts, 0))
                    for name, c in counts.items():
                        mine[name] += c
        elif key == "occupancy":
            out[key] = {
                kind: {
                    b: float(np.mean([v.get(kind, {}).get(b, 0.0) for v in values]))
                    for b in sorted(set().union(*(v.get(kind, {}) for v in values)))
                }
                for kind in sorted(set().union(*values))
            }
        elif isinstance(values[0], dict):
            out[key] = {
                k: float(np.mean([v[k] for v in values if k in v]))
                if not isinstance(values[0].get(k), list)
                else np.mean([v[k] for v in values if k in v], axis=0).tolist()
                for k in set().union(*values)
            }
        else:
            out[key] = float(np.mean(values))
    return out


def compare(twin: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """The report's figures from the merged statistics of the twin and the reference
    (only those both sides have)."""
    report: dict[str, Any] = {
        "zone_share_js": distance(
            jensen_shannon(twin["zone_counts"], reference["zone_counts"]), "zone_share_js"
        ),
        "kind_share_js": distance(
            jensen_shannon(twin["kind_counts"], reference["kind_counts"]),
            "kind_share_js",
            _shares(twin["kind_counts"]),
            _shares(reference["kind_counts"]),
        ),
        "hour_share_js": distance(
            jensen_shannon(twin["hour_counts"], reference["hour_counts"]),
            "hour_share_js",
            _shares(twin["hour_counts"]),
            _shares(reference["hour_counts"]),
        ),
        "visits_per_avatar": figure(
            twin["visits"] / max(twin["visitors"], 1),
            reference["visits"] / max(reference["visitors"], 1),
            "visits_per_avatar",
        ),
    }
    if "mean_dwell_s" in reference and "mean_dwell_s" in twin:
        report["mean_dwell_s"] = figure(
            twin["mean_dwell_s"], reference["mean_dwell_s"], "mean_dwell_s"
        )
        report["mean_dwell_s_by_kind"] = {
            kind: figure(twin["mean_dwell_s_by_kind"].get(kind, np.nan), value, "mean_dwell_s")
            for kind, value in sorted(reference["mean_dwell_s_by_kind"].items())
        }
        value, per_kind = occupancy_nrmse(twin["occupancy"], reference["occupancy"])
        report["occupancy_nrmse"] = distance(value, "occupancy_nrmse") | {"by_kind": per_kind}
    for key in ("mean_wait_s", "p95_wait_s", "los_ef_person_minutes", "mean_satisfaction"):
        if key in reference and key in twin:
            report[key] = figure(twin[key], reference[key], key)
    if twin.get("attendance") and reference.get("attendance"):
        report["show_attendance"] = attendance_figures(twin["attendance"], reference["attendance"])
    if "visit_wait_s" in reference and "visit_wait_s" in twin and "mean_wait_s" not in report:
        report["mean_wait_s"] = figure(
            twin["visit_wait_s"], reference["visit_wait_s"], "mean_wait_s"
        )
    return report


def attendance_figures(
    twin: dict[str, dict[str, int]], reference: dict[str, dict[str, int]]
) -> dict[str, dict[str, Any]]:
    """Per stage with shows in the reference: the share of booked visitors who attended
    (target: within ``ATTENDANCE_TARGET`` relative) and of the others (within it, or within
    ``ATTENDANCE_OTHERS_ABS``), with the counts behind them."""
    mine, theirs = attendance_shares(twin), attendance_shares(reference)
    out: dict[str, dict[str, Any]] = {}
    for stage in sorted(theirs):
        figures = {}
        for side in ("booked", "others"):
            a, b = mine.get(stage, {}).get(side, float("nan")), theirs[stage][side]
            if not np.isfinite(b):
                continue
            error = relative(a, b)
            near = side == "others" and np.isfinite(a) and abs(a - b) <= ATTENDANCE_OTHERS_ABS
            figures[side] = {
                "twin": a,
                "reference": b,
                "rel_error": error,
                "target": ATTENDANCE_TARGET,
                "passed": bool(near or (np.isfinite(error) and abs(error) <= ATTENDANCE_TARGET)),
            }
        figures["counts"] = {"twin": twin.get(stage, {}), "reference": reference[stage]}
        out[stage] = figures
    return out


def _shares(counts: dict[str, float]) -> dict[str, float]:
    total = sum(counts.values()) or 1
    return {k: round(v / total, 5) for k, v in sorted(counts.items())}


# --------------------------------------------------------------------------- interventions
def intervention_figures(
    name: str,
    base: dict[str, list[dict[str, Any]]],
    changed: dict[str, list[dict[str, Any]]],
    key: str | None = None,
) -> dict[str, Any]:
    """How an intervention moved each KPI, for the twin and the reference (means over the
    seeds of paired differences), and whether the twin moved it the same way by a ratio
    in ``RATIO_RANGE``, or both moved it by no more than the reference's seed noise.
    ``noise``: the standard error of the reference's change; a change within
    ``NOISE_SIGMAS`` of it is ``within_noise`` (its direction is not established).
    ``zone_visits``: each zone's change of visits (mean over seeds), twin and reference,
    the largest differences first: where the twin's response parts from its reference's;
    ``zone_crowd_risk`` the same for each zone's person-minutes at Fruin E/F (they add up
    to the crowd risk's change)."""
    out: dict[str, Any] = {"key": key, "name": name}
    twin_change, reference_change, passed, noise, quiet = {}, {}, {}, {}, {}
    for kpi in INTERVENTION_KPIS:
        moves = {
            side: [
                after[kpi] - before[kpi]
                for before, after in zip(base[side], changed[side], strict=True)
            ]
            for side in ("twin", "reference")
        }
        twin_change[kpi] = float(np.mean(moves["twin"]))
        reference_change[kpi] = float(np.mean(moves["reference"]))
        spread = (
            np.std(moves["reference"], ddof=1) / np.sqrt(len(moves["reference"]))
            if len(moves["reference"]) > 1
            else 0.0
        )
        noise[kpi] = float(spread)
        limit = NOISE_SIGMAS * noise[kpi]
        quiet[kpi] = abs(reference_change[kpi]) <= limit
        both_quiet = quiet[kpi] and abs(twin_change[kpi]) <= limit
        ratio = twin_change[kpi] / reference_change[kpi] if reference_change[kpi] else float("nan")
        in_range = bool(np.isfinite(ratio) and RATIO_RANGE[0] <= ratio <= RATIO_RANGE[1])
        passed[kpi] = in_range or bool(both_quiet)
    out["twin_change"] = twin_change
    out["reference_change"] = reference_change
    out["ratio"] = {
        k: (twin_change[k] / reference_change[k] if reference_change[k] else None)
        for k in twin_change
    }
    out["reference_noise"] = noise
    out["within_noise"] = quiet
    out["passed"] = passed
    out["zone_visits"] = zone_changes(base, changed, "zone_counts")
    out["zone_crowd_risk"] = zone_changes(base, changed, "zone_crowd_risk")
    return out


def zone_changes(
    base: dict[str, list[dict[str, Any]]], changed: dict[str, list[dict[str, Any]]], key: str
) -> list[dict[str, Any]]:
    """Each zone's change of a per-zone statistic ``key`` of the runs (``zone_counts``: its
    visits; ``zone_crowd_risk``: its person-minutes at Fruin E/F) under an intervention
    (mean over the seeds), for the twin and the reference, ordered by how far apart they
    are."""

    def change(side: str) -> dict[str, float]:
        zones = set().union(*(s.get(key, {}) for s in base[side] + changed[side]))
        return {
            z: float(
                np.mean(
                    [
                        after.get(key, {}).get(z, 0) - before.get(key, {}).get(z, 0)
                        for before, after in zip(base[side], changed[side], strict=True)
                    ]
                )
            )
            for z in zones
        }

    twin, reference = change("twin"), change("reference")
    rows = [
        {"zone": z, "twin": twin.get(z, 0.0), "reference": reference.get(z, 0.0)}
        for z in set(twin) | set(reference)
    ]
    return sorted(rows, key=lambda r: (-abs(r["twin"] - r["reference"]), r["zone"]))


# --------------------------------------------------------------------------- running
Job = tuple[dict[str, Any], str, "str | None", "list[str] | None"]


def _run(job: Job) -> dict[str, Any]:
    """One run of the twin (a worker's job): the scenario as a dict (its venue a name or
    a venue's JSON), the policy, the model, the zones compared (None: all)."""
    from twin.model import VenueModel

    data, policy, model, zones = job
    scenario = Scenario.from_dict(data).replace(policy=policy, model=model)
    return run_stats(VenueModel(scenario).run(), zones)


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def run_all(
    jobs: list[Job],
    workers: int = 1,
    on_done: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the jobs, in this process or in ``workers`` processes, in order."""
    results: list[dict[str, Any]] = []
    if workers <= 1:
        for job in jobs:
            results.append(_run(job))
            if on_done:
                on_done(len(results), len(jobs))
        return results
    context = multiprocessing.get_context("spawn")
    # A fresh process per run: a festival's run leaves its worker holding gigabytes the
    # allocator does not give back, and the next runs would pile on them.
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, max_tasks_per_child=1
    ) as pool:
        for result in pool.map(_run, jobs):
            results.append(result)
            if on_done:
                on_done(len(results), len(jobs))
    return results


def validate(
    venue: str | Venue = "expo",
    *,
    avatars: int | None = None,
    hours: float | None = None,
    seeds: int = 2,
    first_seed: int = 0,
    model: str | None = None,
    policy: str = "gpt",
    reference: str | Sequence[str] = "scripted",
    columns: Columns | None = None,
    with_interventions: bool = True,
    intervention_keys: Sequence[str] | None = None,
    workers: int = 1,
    scenario: Scenario | None = None,
    opening_hours: OpenHours | None = None,
    on_done: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The fidelity report of the GPT twin of ``venue`` (see the module's docstring).

    ``reference``: ``"scripted"`` (the scripted visitors on the same scenario and seeds)
    or visit-log paths; ``model``: the GPT checkpoint (default: the venue's shipped one);
    ``policy``: the twin's avatars (``"gpt"``, or ``"markov"``: a chain fitted on the
    scenario's ``markov_logs``, as a baseline);
    ``scenario``: the base scenario (its venue, crowd and length are overridden by the
    arguments given); ``intervention_keys``: the what-ifs run (``twin.whatifs.WHATIFS``;
    default: all those the venue can have).

    Against a log: the twin runs the log's crowd, opening hours (``opening_hours``, default
    inferred: ``twin.log_crowd``) and arrivals, with at least as many visitors as the log
    has trajectories (up to ``twin.log_crowd.SAMPLE_VISITORS``; ``avatars`` sets it), and
    each figure carries its noise floor and status (``twin.noise_floor``)."""
    if seeds < 1:
        raise ScenarioError("--seeds must be at least 1")
    if isinstance(reference, str) and reference == "scripted":
        logs = None
    else:
        logs = [reference] if isinstance(reference, str) else list(reference)
    base = scenario or Scenario()
    venue_spec = load_venue(venue) if isinstance(venue, str) else venue
    base = base.replace(venue=venue)
    changes: dict[str, Any] = {}
    crowd, zones = None, None
    if logs is not None:
        frame = read_logs(logs, columns or Columns())
        crowd = crowd_of_log(frame, venue_spec, ", ".join(map(str, logs)), opening_hours)
        changes, zones = dict(crowd.changes), crowd.zones
        changes["avatars"] = sample_size(crowd.crowd_per_day, crowd.trajectories)
    if avatars is not None:
        changes["avatars"] = avatars
    if hours is not None:
        changes["hours"] = hours
    base = base.replace(**changes) if changes else base
    base.check(venue_spec)
    seed_list = [first_seed + k for k in range(seeds)]
    cases: list[tuple[str, str | None, Scenario]] = [("base", None, base)]
    if with_interventions and logs is None:
        for what in interventions(venue_spec, base, intervention_keys):
            changed = what.apply(base)
            changed.check(venue_spec)
            cases.append((what.name, what.key, changed))
    sides = [("twin", policy)] + ([("reference", "scripted")] if logs is None else [])
    jobs, keys = [], []
    for case, _, scenario_of_case in cases:
        data = scenario_of_case.to_dict()
        for side, side_policy in sides:
            for seed in seed_list:
                jobs.append((data | {"seed": seed}, side_policy, model, zones))
                keys.append((case, side))
    results = run_all(jobs, workers, on_done)
    by_case: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for (case, side), stats in zip(keys, results, strict=True):
        by_case.setdefault(case, {}).setdefault(side, []).append(stats)
    kind_of = dict(zip(venue_spec.zones, venue_spec.kinds, strict=True))
    if crowd is not None:
        for stats in by_case["base"]["twin"]:
            as_log(stats, crowd, base.avatars)
    twin = merge(by_case["base"]["twin"])
    ref = merge(by_case["base"]["reference"]) if crowd is None else log_stats(crowd, kind_of)
    report: dict[str, Any] = {
        "venue": venue_spec.name,
        "reference": "scripted" if logs is None else [str(p) for p in logs],
        "policy": policy,
        "model": (model or "shipped") if policy == "gpt" else None,
        "avatars": base.avatars,
        "hours": base.hours,
        "seeds": seed_list,
        **compare(twin, ref),
        "interventions": [
            intervention_figures(case, by_case["base"], by_case[case], key)
            for case, key, _ in cases[1:]
        ],
        "dwell_quantiles": {
            "twin": twin.get("dwell_quantiles"),
            "reference": ref.get("dwell_quantiles"),
        },
        "occupancy": {"twin": twin.get("occupancy"), "reference": ref.get("occupancy")},
    }
    if crowd is not None:
        report["log"] = {
            "open": crowd.hours.text(),
            "outside_hours_share": crowd.outside_hours_share,
            "visitors_per_day": crowd.crowd_per_day,
            "trajectories": crowd.trajectories,
            "days": crowd.days,
        }

    def measure(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
        return figure_values(compare(a, b), list(TARGETS))

    if crowd is None:
        reference_floor = pair_floor(by_case["base"]["reference"], measure)
    else:
        reference_floor = halves_floor(
            crowd.frame, lambda half: log_stats(crowd, kind_of, half), measure
        )
    floors = {"reference": reference_floor, "twin": pair_floor(by_case["base"]["twin"], measure)}
    annotate(report, floors, TARGETS)
    report["passed"] = verdict(report)
    return plain(report)


def log_stats(
    crowd: LogCrowd, kind_of: dict[str, str], frame: pd.DataFrame | None = None
) -> dict[str, Any]:
    """The statistics of a log (or of a part of it, ``frame``) as the twin's are compared
    with them: on the zones the venue shares, hours of the day of the visits within the
    opening hours (the twin has none outside them)."""
    frame = crowd.frame if frame is None else frame
    stats = visit_stats(frame, kind_of, visitor="trajectory", zones=crowd.zones, days=crowd.days)
    kept = frame["zone"].isin(crowd.zones) & crowd.hours.holds(frame["seconds_of_day"])
    stats["hour_counts"] = hour_counts(frame["timestamp"][kept])
    return stats


def as_log(stats: dict[str, Any], crowd: LogCrowd, visitors: int) -> None:
    """A twin run's statistics as a log's are compared: occupancy per visitor of the log's
    crowd (the twin may run more visitors than a log that samples its place's crowd). Its
    visits all fall within the log's hours, as it runs them."""
    scale = crowd.crowd_per_day / max(visitors, 1)
    if "occupancy" in stats and scale != 1.0:
        stats["occupancy"] = {
            kind: {b: v * scale for b, v in curve.items()}
            for kind, curve in stats["occupancy"].items()
        }


def plain(value: Any) -> Any:
    """The report as plain JSON values: NumPy scalars as Python's, NaN as None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value


def verdict(report: dict[str, Any]) -> dict[str, Any]:
    """Which figures meet their targets, and whether all do."""
    figures, too_noisy = {}, []
    for key in TARGETS:
        if key not in report or key == "p95_wait_s":
            continue
        if report[key].get("status") == TOO_NOISY:
            too_noisy.append(key)
        else:
            figures[key] = report[key]["passed"]
    for stage, item in (report.get("show_attendance") or {}).items():
        for side in ("booked", "others"):
            if side in item:
                figures[f"attendance at {stage}, {side}"] = item[side]["passed"]
    cells = [ok for item in report["interventions"] for ok in item["passed"].values()]
    for item in report["interventions"]:
        for kpi, ok in item["passed"].items():
            figures[f"{item['name']}: {kpi}"] = ok
    return {
        "all": all(figures.values()),
        "figures": figures,
        "too_noisy": too_noisy,
        "intervention_cells": {"met": int(sum(cells)), "of": len(cells)},
    }
