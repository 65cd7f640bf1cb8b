"""The fidelity report as figures and tables: what ``venuetwin validate --html`` writes and
the dashboard's Validate section shows (one definition of each chart).

``figures(report)`` gives plotly figures: visit shares by kind side by side, occupancy of
each kind of zone over the day, dwell distributions, show attendance per stage, the
interventions' changes. ``table(report)`` gives the compared KPIs as rows,
``attendance_rows`` who attended the shows, ``intervention_rows`` each what-if's cells and
``zone_rows`` where a what-if's response parts from the reference's; ``html(report)`` one
self-contained page.
"""

from __future__ import annotations

import html as escape
import math
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from twin.validate import OCCUPANCY_BIN_S, TARGETS, ZONE_ROWS

TWIN, REFERENCE = "#1f77b4", "#7f7f7f"
#: The compared KPIs, in the order a reader takes them, with their labels.
LABELS: dict[str, str] = {
    "zone_share_js": "zone shares (Jensen-Shannon)",
    "kind_share_js": "kind shares (Jensen-Shannon)",
    "hour_share_js": "hour-of-day shares (Jensen-Shannon)",
    "visits_per_avatar": "visits per visitor",
    "mean_dwell_s": "mean dwell (s)",
    "mean_wait_s": "mean queue wait (s)",
    "p95_wait_s": "95th percentile wait (s)",
    "los_ef_person_minutes": "crowd risk (person-minutes at Fruin E/F)",
    "mean_satisfaction": "mean satisfaction",
    "occupancy_nrmse": "occupancy per kind per 15 min (NRMSE)",
}


def table(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per compared KPI: twin, reference, error (relative or distance), target, met,
    its noise floor (the same figure between samples that differ by chance alone: None
    where not measured, ``twin.noise_floor``) and status (met, missed or too noisy)."""
    rows = []
    for key, label in LABELS.items():
        item = report.get(key)
        if item is None:
            continue
        distance = "distance" in item
        value = item["distance"] if distance else item["rel_error"]
        rows.append(
            {
                "key": key,
                "figure": label,
                "twin": _number(item["twin"]),
                "reference": _number(item["reference"]),
                "error": value,
                "error_kind": "distance" if distance else "relative",
                "target": (f"< {TARGETS[key]}" if distance else f"within ±{TARGETS[key]:.0%}")
                if key in TARGETS
                else "",
                "met": item["passed"],
                "noise_floor": item.get("noise_floor"),
                "status": item.get("status") or ("met" if item["passed"] else "missed"),
            }
        )
    return rows


def readable_table(report: dict[str, Any]) -> list[dict[str, str]]:
    """``table`` as a reader takes it: values with their units and sensible rounding, the
    noise floor beside the error, the status in words ("MISSED" stands out)."""
    return [
        {
            "figure": r["figure"],
            "twin": value_text(r["key"], r["twin"]),
            "reference": value_text(r["key"], r["reference"]),
            "difference": error_text(r["error"], r["error_kind"]),
            "noise floor": error_text(r["noise_floor"], r["error_kind"], floor=True),
            "target": r["target"],
            "status": "MISSED" if r["status"] == "missed" else r["status"],
        }
        for r in table(report)
    ]


def value_text(key: str, value: Any) -> str:
    """A figure's value with its unit: "—" for a distribution (its chart shows it)."""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "—"
    if key.endswith("_s"):
        return f"{value:,.0f} s" if abs(value) >= 100 else f"{value:.1f} s"
    if key == "visits_per_avatar":
        return f"{value:.2f}"
    if key == "mean_satisfaction":
        return f"{value:.3f}"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def error_text(value: Any, kind: str, floor: bool = False) -> str:
    """A difference (or a noise floor): a relative error in percent, a distance to four
    decimals; "—" where there is none."""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "—"
    if kind == "relative":
        return f"±{value:.1%}" if floor else f"{value:+.1%}"
    return f"{value:.4f}"


def model_text(report: dict[str, Any]) -> str:
    """The model the twin's avatars decided with, as a reader names it."""
    if report.get("policy") != "gpt":
        return f"{report.get('policy')} avatars (no model)"
    model = report.get("model")
    if model in (None, "", "shipped"):
        return "the venue's shipped model"
    return str(model)


def log_text(report: dict[str, Any]) -> str:
    """Against a log: its hours, crowd and what the twin ran (empty against scripted
    visitors)."""
    log = report.get("log")
    if not log:
        return ""
    outside = log["outside_hours_share"]
    return (
        f"The log: {log['trajectories']:,} trajectories over {log['days']:,} day(s) "
        f"({log['visitors_per_day']:,} a day), open {log['open']}"
        + (
            f" ({outside:.0%} of its visits outside those hours, left out of the hour-of-day "
            "shares)"
            if outside >= 0.005
            else ""
        )
        + f"; the twin ran {report['avatars']:,} visitors a day for {len(report['seeds'])} "
        "seed(s). A figure whose noise floor is above its target is too noisy to call met "
        "or missed."
    )


def intervention_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (intervention, KPI): the twin's change, the reference's, their ratio."""
    rows = []
    for item in report.get("interventions", []):
        for kpi, change in item["twin_change"].items():
            ratio = item["ratio"][kpi]
            rows.append(
                {
                    "intervention": item["name"],
                    "kpi": LABELS.get(kpi, kpi),
                    "twin_change": change,
                    "reference_change": item["reference_change"][kpi],
                    "ratio": ratio,
                    "reference_noise": item["reference_noise"][kpi],
                    "within_noise": item["within_noise"][kpi],
                    "met": item["passed"][kpi],
                }
            )
    return rows


def attendance_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (stage, booked or others): the share who attended its shows, twin and
    reference, the relative error and whether it is met."""
    rows = []
    for stage, item in (report.get("show_attendance") or {}).items():
        for side, label in (("booked", "who booked"), ("others", "the others")):
            if side in item:
                figure = item[side]
                rows.append(
                    {
                        "stage": stage,
                        "who": label,
                        "twin": figure["twin"],
                        "reference": figure["reference"],
                        "error": figure["rel_error"],
                        "met": figure["passed"],
                    }
                )
    return rows


def zone_rows(
    item: dict[str, Any], n: int = ZONE_ROWS, of: str = "zone_visits"
) -> list[dict[str, Any]]:
    """The ``n`` zones whose change under one intervention differs most between the twin
    and the reference: of visits (``of="zone_visits"``) or of crowd risk, person-minutes
    at Fruin E/F (``"zone_crowd_risk"``; reports before it have none)."""
    return list(item.get(of) or [])[:n]


def _number(value: Any) -> Any:
    return value if isinstance(value, (int, float)) or value is None else "—"


def figures(report: dict[str, Any]) -> dict[str, go.Figure]:
    """The report's charts, by title."""
    out: dict[str, go.Figure] = {}
    shares = report["kind_share_js"]
    if shares.get("twin") and shares.get("reference"):
        kinds = sorted(set(shares["twin"]) | set(shares["reference"]))
        fig = go.Figure(
            [
                go.Bar(name="twin (GPT)", x=kinds, y=[shares["twin"].get(k, 0) for k in kinds]),
                go.Bar(
                    name="reference",
                    x=kinds,
                    y=[shares["reference"].get(k, 0) for k in kinds],
                    marker_color=REFERENCE,
                ),
            ]
        )
        fig.update_layout(barmode="group", yaxis_title="share of visits", height=380)
        out["Where visitors go: share of visits by kind of zone"] = fig
    occupancy = report.get("occupancy") or {}
    if occupancy.get("reference"):
        out["Occupancy of each kind of zone (mean persons per 15 minutes)"] = _occupancy(
            occupancy["twin"] or {}, occupancy["reference"]
        )
    dwell = report.get("dwell_quantiles") or {}
    if dwell.get("reference"):
        out["How long visits last: dwell quantiles (5%..95%) by kind"] = _dwell(
            dwell["twin"] or {}, dwell["reference"]
        )
    shown = attendance_rows(report)
    if shown:
        labels = [f"{r['stage']}<br>{r['who']}" for r in shown]
        fig = go.Figure(
            [
                go.Bar(name="twin (GPT)", x=labels, y=[r["twin"] for r in shown]),
                go.Bar(
                    name="reference",
                    x=labels,
                    y=[r["reference"] for r in shown],
                    marker_color=REFERENCE,
                ),
            ]
        )
        fig.update_layout(barmode="group", yaxis_title="share who attended", height=380)
        out["Who attends the shows: per stage, of those who booked them and of the others"] = fig
    rows = intervention_rows(report)
    if rows:
        labels = [f"{r['intervention']}<br>{r['kpi']}" for r in rows]
        fig = go.Figure(
            [
                go.Bar(
                    name="twin (GPT)", y=labels, x=[r["twin_change"] for r in rows], orientation="h"
                ),
                go.Bar(
                    name="reference",
                    y=labels,
                    x=[r["reference_change"] for r in rows],
                    orientation="h",
                    marker_color=REFERENCE,
                ),
            ]
        )
        fig.update_layout(barmode="group", height=120 + 45 * len(rows), xaxis_title="change")
        out["What-ifs: each intervention's change of each KPI"] = fig
    return out


def _occupancy(twin: dict[str, dict], reference: dict[str, dict]) -> go.Figure:
    kinds = sorted(reference)
    cols = 3
    fig = make_subplots(rows=math.ceil(len(kinds) / cols), cols=cols, subplot_titles=kinds)
    for i, kind in enumerate(kinds):
        row, col = i // cols + 1, i % cols + 1
        for name, curve, color in (
            ("reference", reference[kind], REFERENCE),
            ("twin (GPT)", twin.get(kind, {}), TWIN),
        ):
            bins = sorted(int(b) for b in curve)
            fig.add_trace(
                go.Scatter(
                    x=[_clock(b) for b in bins],
                    y=[curve[b] if b in curve else curve[str(b)] for b in bins],
                    name=name,
                    line={"color": color},
                    showlegend=i == 0,
                ),
                row=row,
                col=col,
            )
    fig.update_layout(height=260 * math.ceil(len(kinds) / cols))
    return fig


def _dwell(twin: dict[str, list], reference: dict[str, list]) -> go.Figure:
    kinds = sorted(reference)
    fig = go.Figure()
    for name, data, color in (("reference", reference, REFERENCE), ("twin (GPT)", twin, TWIN)):
        fig.add_trace(
            go.Box(
                name=name,
                x=[k for k in kinds for _ in data.get(k, [])],
                y=[v for k in kinds for v in data.get(k, [])],
                marker_color=color,
            )
        )
    fig.update_layout(boxmode="group", yaxis_type="log", yaxis_title="dwell (s)", height=420)
    return fig


def _clock(bin_index: int) -> str:
    minutes = int(bin_index * OCCUPANCY_BIN_S // 60)
    return f"{minutes // 60 % 24:02d}:{minutes % 60:02d}"


def html(report: dict[str, Any]) -> str:
    """The whole report as one HTML page (plotly.js included once)."""
    verdict = report["passed"]
    head = (
        f"<h1>venuetwin validate: {escape.escape(str(report['venue']))}</h1>"
        f"<p>Twin: GPT avatars ({escape.escape(model_text(report))}); reference: "
        f"{escape.escape(str(report['reference']))}; {report['avatars']:,} visitors, "
        f"{report['hours']} h, seeds {report['seeds']}. "
        f"<b>{'All targets met' if verdict['all'] else 'Some targets missed'}</b> "
        f"({sum(verdict['figures'].values())} of {len(verdict['figures'])}"
        + (f"; {len(verdict['too_noisy'])} too noisy to tell" if verdict.get("too_noisy") else "")
        + f").</p><p>{escape.escape(log_text(report))}</p>"
    )
    readable = readable_table(report)
    columns = list(readable[0]) if readable else []
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape.escape(r[c])}</td>" for c in columns) + "</tr>"
        for r in readable
    )
    kpis = (
        "<table border=1 cellpadding=4><tr>"
        + "".join(f"<th>{escape.escape(c)}</th>" for c in columns)
        + f"</tr>{rows}</table>"
    )
    what_ifs = "".join(
        f"<tr><td>{escape.escape(r['intervention'])}</td><td>{escape.escape(r['kpi'])}</td>"
        f"<td>{_fmt(r['twin_change'])}</td><td>{_fmt(r['reference_change'])}</td>"
        f"<td>{_fmt(r['ratio'])}</td><td>{'within noise' if r['within_noise'] else ''}</td>"
        f"<td>{'met' if r['met'] else 'MISSED'}</td></tr>"
        for r in intervention_rows(report)
    )
    if what_ifs:
        cells = verdict.get("intervention_cells", {})
        what_ifs = (
            f"<h2>Interventions: {cells.get('met', 0)} of {cells.get('of', 0)} cells met</h2>"
            "<p>A cell is met when the twin's change is 0.67 to 1.5 times the reference's, or "
            "both are within the reference's seed noise.</p>"
            "<table border=1 cellpadding=4><tr><th>intervention</th>"
            "<th>KPI</th><th>twin change</th><th>reference change</th><th>ratio</th>"
            f"<th></th><th></th></tr>{what_ifs}</table>"
        )
        for item in report.get("interventions", []):
            for of, what in (
                ("zone_visits", "visits per zone"),
                ("zone_crowd_risk", "crowd risk per zone (person-minutes at Fruin E/F)"),
            ):
                zones = "".join(
                    f"<tr><td>{escape.escape(r['zone'])}</td><td>{_fmt(r['twin'])}</td>"
                    f"<td>{_fmt(r['reference'])}</td></tr>"
                    for r in zone_rows(item, of=of)
                )
                if zones:
                    what_ifs += (
                        f"<h3>{escape.escape(item['name'])}: {what}, change</h3>"
                        "<table border=1 cellpadding=4><tr><th>zone</th><th>twin</th>"
                        f"<th>reference</th></tr>{zones}</table>"
                    )
    shows = "".join(
        f"<tr><td>{escape.escape(r['stage'])}</td><td>{escape.escape(r['who'])}</td>"
        f"<td>{_fmt(r['twin'], 'share')}</td><td>{_fmt(r['reference'], 'share')}</td>"
        f"<td>{_fmt(r['error'], 'relative')}</td><td>{'met' if r['met'] else 'MISSED'}</td></tr>"
        for r in attendance_rows(report)
    )
    if shows:
        shows = (
            "<h2>Who attends the shows</h2><p>The share of visitors present for at least half "
            "of a stage's shows, of those who booked them and of the others.</p><table border=1 "
            "cellpadding=4><tr><th>stage</th><th>visitors</th><th>twin</th><th>reference</th>"
            f"<th>error</th><th></th></tr>{shows}</table>"
        )
    charts = "".join(
        f"<h2>{escape.escape(title)}</h2>" + fig.to_html(full_html=False, include_plotlyjs=i == 0)
        for i, (title, fig) in enumerate(figures(report).items())
    )
    body = f"{head}{kpis}{shows}{what_ifs}{charts}"
    return f"<html><head><meta charset='utf-8'></head><body>{body}</body></html>\n"


def _fmt(value: Any, kind: str = "") -> str:
    if value is None or isinstance(value, str):
        return escape.escape(str(value if value is not None else "—"))
    if kind == "relative":
        return f"{value:+.1%}"
    if kind == "share":
        return f"{value:.1%}"
    if isinstance(value, float) and not math.isfinite(value):
        return "—"
    return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
