"""The KPI cards of a run: which of ``model.kpis()`` are shown, with what label and unit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Card:
    label: str
    value: str
    help: str


def kpi_cards(kpis: dict[str, Any]) -> list[Card]:
    """One card per headline KPI, values formatted as shown on the page."""
    peak_zone = kpis.get("peak_density_zone") or "-"
    return [
        Card("Visitors", f"{kpis['avatars']:,}", "avatars who arrived"),
        Card("Left", f"{kpis['left']:,}", f"{kpis['inside_at_end']:,} still inside at the end"),
        Card("Visits", f"{kpis['visits']:,}", "completed zone visits"),
        Card("Mean wait", f"{kpis['mean_wait_s']:.1f} s", "mean queue wait, all services"),
        Card("p95 wait", f"{kpis['p95_wait_s']:.1f} s", "95th percentile of queue waits"),
        Card("Mean gate wait", f"{kpis['mean_gate_wait_s']:.1f} s", "queue wait at entrances"),
        Card(
            "Person-min at E/F",
            f"{kpis['person_minutes_los_ef']:,.1f}",
            "person-minutes spent at Fruin level E or F",
        ),
        Card("Peak density (p/m²)", f"{kpis['peak_density']:.2f}", f"persons/m², in {peak_zone}"),
        Card("Mean satisfaction", f"{kpis['mean_satisfaction']:.3f}", "scored by the twin"),
    ]
