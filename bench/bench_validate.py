"""Fidelity of the shipped models at the venues' design crowds: ``venuetwin validate`` on
each built-in venue, 2 seeds, every intervention, printed as the tables of bench/README.md.

    .venv/bin/python bench/bench_validate.py [--out runs/validate] [--seeds 2] [--workers 2]
        [--venues concert_hall expo festival]

Writes ``OUT/<venue>.json`` and ``OUT/<venue>.html`` (the reports) and prints one markdown
table of the figures and one of the interventions.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from llm.fileio import write_text_atomic
from twin.validate import validate
from twin.validate_report import LABELS, html, intervention_rows, table

#: The crowds the issue names: (avatars, hours) per venue.
DESIGN = {"concert_hall": (2500, 4.0), "expo": (10_000, 4.0), "festival": (30_000, 6.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/validate"))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--venues", nargs="+", default=list(DESIGN))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    reports = {}
    for venue in args.venues:
        avatars, hours = DESIGN[venue]
        started = time.perf_counter()
        report = validate(
            venue, avatars=avatars, hours=hours, seeds=args.seeds, workers=args.workers
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


def _short(value: object) -> str:
    if not isinstance(value, (int, float)):
        return "—"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


if __name__ == "__main__":
    main()
