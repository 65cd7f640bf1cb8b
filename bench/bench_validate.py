"""Fidelity of the shipped models at the venues' design crowds: ``venuetwin validate`` on
each built-in venue, 2 seeds, every what-if, printed as the tables of bench/README.md.

    .venv/bin/python bench/bench_validate.py [--out runs/validate] [--seeds 2] [--workers 2]
        [--venues concert_hall expo festival] [--models DIR]

Writes ``OUT/<venue>.json`` and ``OUT/<venue>.html`` (the reports) and prints markdown
tables: the figures, who attends the shows, the interventions (with the count of cells met
per venue and over all), and per what-if the zones where the twin parts most from the
reference. ``--models DIR``: the checkpoints ``DIR/<venue>.safetensors`` instead of the
shipped ones (a candidate build of ``python -m twin.shipped --out DIR``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from llm.fileio import write_text_atomic
from twin.validate import validate
from twin.validate_report import (
    LABELS,
    attendance_rows,
    html,
    intervention_rows,
    table,
    zone_rows,
)

#: The crowds the issue names: (avatars, hours) per venue.
DESIGN = {"concert_hall": (2500, 4.0), "expo": (10_000, 4.0), "festival": (30_000, 6.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/validate"))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--venues", nargs="+", default=list(DESIGN))
    parser.add_argument("--models", type=Path, help="checkpoints DIR/<venue>.safetensors")
    parser.add_argument(
        "--tables-only", action="store_true", help="print the tables of the reports in --out"
    )
    args = parser.parse_args()
    if args.tables_only:
        print_tables({v: json.loads((args.out / f"{v}.json").read_text()) for v in args.venues})
        return
    args.out.mkdir(parents=True, exist_ok=True)
    reports = {}
    for venue in args.venues:
        avatars, hours = DESIGN[venue]
        started = time.perf_counter()
        model = str(args.models / f"{venue}.safetensors") if args.models else None
        report = validate(
            venue,
            avatars=avatars,
            hours=hours,
            seeds=args.seeds,
            workers=args.workers,
            model=model,
        )
        report["wall_s"] = round(time.perf_counter() - started, 1)
        reports[venue] = report
        write_text_atomic(args.out / f"{venue}.json", json.dumps(report, indent=2) + "\n")
        write_text_atomic(args.out / f"{venue}.html", html(report))
        verdict = report["passed"]
        print(
            f"{venue}: {sum(verdict['figures'].values())} of {len(verdict['figures'])} "
            f"targets met ({report['wall_s']} s)",
            flush=True,
        )
    print_tables(reports)


def print_tables(reports: dict[str, dict]) -> None:
    """The markdown tables of bench/README.md from the venues' reports."""
    print("\n| figure | target | " + " | ".join(reports) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in reports) + " |")
    rows = {venue: {r["figure"]: r for r in table(report)} for venue, report in reports.items()}
    for label in LABELS.values():
        cells = []
        target = ""
        for venue in reports:
            row = rows[venue].get(label)
            if row is None:
                cells.append("—")
                continue
            target = row["target"]
            error = (
                f"{row['error']:+.1%}" if row["error_kind"] == "relative" else f"{row['error']:.4f}"
            )
            mark = "" if row["met"] else " **(missed)**"
            if row["error_kind"] == "relative":
                cells.append(f"{_short(row['twin'])} vs {_short(row['reference'])}: {error}{mark}")
            else:
                cells.append(f"{error}{mark}")
        print(f"| {label} | {target} | " + " | ".join(cells) + " |")
    print("\n| venue | stage | visitors | twin | reference | error | |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for venue, report in reports.items():
        for r in attendance_rows(report):
            print(
                f"| {venue} | {r['stage']} | {r['who']} | {r['twin']:.1%} | "
                f"{r['reference']:.1%} | {r['error']:+.1%} | "
                f"{'met' if r['met'] else '**missed**'} |"
            )
    print("\n| venue | intervention | KPI | twin | reference | ratio | |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for venue, report in reports.items():
        for r in intervention_rows(report):
            ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "—"
            verdict = "met" if r["met"] else "**missed**"
            noise = " (within noise)" if r["within_noise"] else ""
            print(
                f"| {venue} | {r['intervention']} | {r['kpi']} | {_short(r['twin_change'])} | "
                f"{_short(r['reference_change'])} | {ratio} | {verdict}{noise} |"
            )

    total_met = total = 0
    print()
    for venue, report in reports.items():
        cells = report["passed"]["intervention_cells"]
        total_met, total = total_met + cells["met"], total + cells["of"]
        print(f"- {venue}: {cells['met']} of {cells['of']} intervention cells met")
    print(f"- all: {total_met} of {total} ({total_met / max(total, 1):.0%})")
    for of, what in (
        ("zone_visits", "change of visits"),
        ("zone_crowd_risk", "change of person-minutes at Fruin E/F"),
    ):
        print(f"\n| venue | intervention | zones most apart: {what}, twin vs reference |")
        print("| --- | --- | --- |")
        for venue, report in reports.items():
            for item in report["interventions"]:
                apart = "; ".join(
                    f"{r['zone']} {r['twin']:+,.0f} vs {r['reference']:+,.0f}"
                    for r in zone_rows(item, 3, of)
                )
                print(f"| {venue} | {item['name']} | {apart} |")


def _short(value: object) -> str:
    if not isinstance(value, (int, float)):
        return "—"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


if __name__ == "__main__":
    main()
