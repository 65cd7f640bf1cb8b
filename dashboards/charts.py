"""The dashboard's figures: pure functions from the twin's tables and explanations to plotly
figures. Nothing here runs a simulation or touches Streamlit, so every figure is tested
on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from agents.explain import Explanation
from twin import Venue

#: Fruin level of service -> marker colour (green: free flow ... red: crush).
FRUIN_COLOURS: dict[str, str] = {
    "A": "#1a9850",
    "B": "#91cf60",
    "C": "#d9ef8b",
    "D": "#fee08b",
    "E": "#fc8d59",
    "F": "#d73027",
}
#: Smallest and largest zone marker on the map (pixels); size grows with sqrt(occupancy).
MARKER_MIN, MARKER_MAX = 8.0, 44.0
#: At most this many time frames on the map (evenly spread over the run, last included).
MAP_FRAMES = 150
CHOSEN_COLOUR, OTHER_COLOUR = "#d62728", "#1f77b4"
#: Scatter plots of more points than this are drawn with WebGL.
WEBGL_ABOVE = 5000


def clock(opening: datetime, time_s: Any) -> pd.DatetimeIndex | pd.Timestamp:
    """Seconds after opening as wall-clock times."""
    return pd.Timestamp(opening) + pd.to_timedelta(time_s, unit="s")


def clock_label(opening: datetime, time_s: float) -> str:
    return clock(opening, time_s).strftime("%H:%M")


# ============================================================================ venue map
def map_times(zones: pd.DataFrame, max_frames: int = MAP_FRAMES) -> np.ndarray:
    """The recorded times the map shows: all of them, or ``max_frames`` evenly spread."""
    times = np.sort(zones["time_s"].unique())
    if len(times) <= max_frames:
        return times
    pick = np.unique(np.round(np.linspace(0, len(times) - 1, max_frames)).astype(int))
    return times[pick]


def marker_sizes(occupancy: np.ndarray, most: float) -> np.ndarray:
    """Marker sizes: ``MARKER_MIN`` when empty, ``MARKER_MAX`` at the run's ``most``."""
    share = np.sqrt(np.clip(np.asarray(occupancy, dtype=float), 0, None) / max(most, 1.0))
    return MARKER_MIN + (MARKER_MAX - MARKER_MIN) * share


def zone_trace(venue: Venue, at: pd.DataFrame, most: float) -> go.Scatter:
    """The zones as markers at (x, y): colour by Fruin level, size by occupancy."""
    rows = at.set_index("zone").reindex(list(venue.zones))
    occupancy = rows["occupancy"].fillna(0).to_numpy()
    fruin = rows["fruin"].fillna("A").tolist()
    hover = [
        f"<b>{zone}</b> ({kind})<br>{int(o)} persons, {d:.2f} p/m² (Fruin {f})<br>queue {int(q)}"
        for zone, kind, o, d, f, q in zip(
            venue.zones,
            venue.kinds,
            occupancy,
            rows["density"].fillna(0),
            fruin,
            rows["queue"].fillna(0),
            strict=True,
        )
    ]
    return go.Scatter(
        x=venue.xy[:, 0],
        y=venue.xy[:, 1],
        mode="markers+text",
        text=list(venue.zones),
        textposition="top center",
        textfont={"size": 10},
        hovertext=hover,
        hoverinfo="text",
        marker={
            "color": [FRUIN_COLOURS[f] for f in fruin],
            "size": marker_sizes(occupancy, most),
            "line": {"width": 1, "color": "#333"},
        },
        customdata=occupancy,
        name="zones",
        showlegend=False,
    )


def venue_map(venue: Venue, zones: pd.DataFrame, opening: datetime) -> go.Figure:
    """The venue drawn at its zones' x, y with passages as lines, coloured by Fruin level
    and sized by occupancy, with a time slider and a play button over ``zones`` (the
    twin's zones table). It opens at the busiest moment."""
    xy = venue.xy
    ex: list[float | None] = []
    ey: list[float | None] = []
    for u, v in venue.edge_list:
        ex += [xy[u, 0], xy[v, 0], None]
        ey += [xy[u, 1], xy[v, 1], None]
    edges = go.Scatter(
        x=ex, y=ey, mode="lines", line={"color": "#aaa", "width": 2}, hoverinfo="skip"
    )
    edges.showlegend = False
    times = map_times(zones)
    most = float(zones["occupancy"].max()) if len(zones) else 1.0
    by_time = {t: frame for t, frame in zones.groupby("time_s")}
    busiest = int(np.argmax([by_time[t]["occupancy"].sum() for t in times]))
    labels = [clock_label(opening, t) for t in times]
    frames = [
        go.Frame(data=[zone_trace(venue, by_time[t], most)], traces=[1], name=label)
        for t, label in zip(times, labels, strict=True)
    ]
    legend = [
        go.Scatter(
            x=[None],
            y=[None],
            mode="markers",
            marker={"color": colour, "size": 12},
            name=f"Fruin {level}",
        )
        for level, colour in FRUIN_COLOURS.items()
    ]
    fig = go.Figure(data=[edges, frames[busiest].data[0], *legend], frames=frames)
    animate = {"mode": "immediate", "frame": {"duration": 0, "redraw": True}}
    fig.update_layout(
        height=600,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        title=f"{venue.name}: zones by Fruin level, size by occupancy",
        xaxis={"visible": False},
        yaxis={"visible": False, "scaleanchor": "x"},
        legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right"},
        sliders=[
            {
                "active": busiest,
                "currentvalue": {"prefix": "time "},
                "pad": {"t": 30},
                "steps": [
                    {"label": label, "method": "animate", "args": [[label], animate]}
                    for label in labels
                ],
            }
        ],
        updatemenus=[
            {
                "type": "buttons",
                "direction": "left",
                "x": 0,
                "y": 0,
                "xanchor": "left",
                "yanchor": "top",
                "pad": {"t": 60},
                "buttons": [
                    {
                        "label": "Play",
                        "method": "animate",
                        "args": [
                            None,
                            {**animate, "frame": {"duration": 200}, "fromcurrent": True},
                        ],
                    },
                    {"label": "Pause", "method": "animate", "args": [[None], animate]},
                ],
            }
        ],
    )
    return fig


# ============================================================================ time series
VENUE_SERIES = (
    ("inside", "Visitors inside"),
    ("queueing", "Visitors queueing"),
    ("mean_satisfaction", "Mean satisfaction"),
    ("person_minutes_los_ef", "Person-minutes at Fruin E/F (cumulative)"),
)


def venue_timeline(model_vars: pd.DataFrame, opening: datetime) -> go.Figure:
    """The whole venue over time: inside, queueing, satisfaction, crowding (the twin's
    model variables, one row per step)."""
    fig = make_subplots(
        rows=2,
        cols=2,
        shared_xaxes=True,
        subplot_titles=[title for _, title in VENUE_SERIES],
        vertical_spacing=0.12,
    )
    x = clock(opening, model_vars["time_s"].to_numpy())
    for i, (column, title) in enumerate(VENUE_SERIES):
        fig.add_trace(
            go.Scatter(x=x, y=model_vars[column], mode="lines", name=title, showlegend=False),
            row=i // 2 + 1,
            col=i % 2 + 1,
        )
    fig.update_layout(height=520, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


ZONE_SERIES: dict[str, str] = {
    "occupancy": "Occupancy (persons)",
    "queue": "Queue (persons)",
    "mean_wait_s": "Mean wait of those who joined the queue (s)",
    "density": "Density (persons/m²)",
}


def zone_timeline(zones: pd.DataFrame, column: str, opening: datetime) -> go.Figure:
    """One line per zone of ``column`` of the zones table over time; zones where it is
    always zero or unknown (e.g. waits where nobody queues) are left out."""
    fig = go.Figure()
    for zone, rows in zones.groupby("zone", sort=False):
        values = rows[column]
        if not (values.fillna(0) != 0).any():
            continue
        fig.add_trace(
            go.Scatter(
                x=clock(opening, rows["time_s"].to_numpy()),
                y=values,
                mode="lines+markers" if column == "mean_wait_s" else "lines",
                marker={"size": 4},
                name=str(zone),
                connectgaps=False,
            )
        )
    fig.update_layout(
        title=ZONE_SERIES.get(column, column),
        height=420,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig


# ============================================================================ attention
def context_labels(exp: Explanation) -> list[str]:
    """The context's visits, numbered so that two equal visits stay two rows."""
    return [f"{i + 1}. {label}" for i, label in enumerate(exp.context)]


def attention_heatmap(exp: Explanation, layer: int, head: int) -> go.Figure:
    """One head: how much each visit (row) attends to each visit before it (column)."""
    labels = context_labels(exp)
    fig = go.Figure(
        go.Heatmap(
            z=exp.attention[layer, head],
            x=labels,
            y=labels,
            zmin=0.0,
            zmax=1.0,
            colorscale="Blues",
            hovertemplate="%{y}<br>attends to %{x}<br>weight %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Layer {layer + 1}, head {head + 1}",
        height=max(360, 60 + 34 * len(labels)),
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        yaxis={"autorange": "reversed"},
    )
    return fig


def attention_grid(exp: Explanation) -> go.Figure:
    """Every layer (rows) and head (columns) at a glance, on one colour scale."""
    layers, heads = exp.attention.shape[:2]
    labels = context_labels(exp)
    fig = make_subplots(
        rows=layers,
        cols=heads,
        subplot_titles=[
            f"L{layer + 1} H{head + 1}" for layer in range(layers) for head in range(heads)
        ],
        horizontal_spacing=0.02,
        vertical_spacing=0.05,
    )
    for layer in range(layers):
        for head in range(heads):
            fig.add_trace(
                go.Heatmap(
                    z=exp.attention[layer, head],
                    x=labels,
                    y=labels,
                    coloraxis="coloraxis",
                    hovertemplate="%{y}<br>attends to %{x}<br>%{z:.3f}<extra></extra>",
                ),
                row=layer + 1,
                col=head + 1,
            )
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, autorange="reversed")
    fig.update_layout(
        coloraxis={"colorscale": "Blues", "cmin": 0.0, "cmax": 1.0},
        height=170 * layers + 60,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig


def candidate_bars(exp: Explanation) -> go.Figure:
    """The probability of every place that could come next, best first, with what each
    showed the avatar (crowd level, queue); the place it chose in red."""
    names = [zone for zone, _ in exp.candidates]
    probs = [p for _, p in exp.candidates]
    shown = exp.shown or [""] * len(names)
    fig = go.Figure(
        go.Bar(
            x=probs,
            y=[
                f"{zone} · {what}" if what else zone
                for zone, what in zip(names, shown, strict=True)
            ],
            orientation="h",
            marker={"color": [CHOSEN_COLOUR if z == exp.chosen else OTHER_COLOUR for z in names]},
            text=[f"{p:.1%}" for p in probs],
            textposition="auto",
            customdata=names,
            hovertemplate="%{customdata}: %{x:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Next zone: chose {exp.chosen}" if exp.chosen else "Next zone",
        xaxis={"title": "probability", "range": [0, 1]},
        yaxis={"autorange": "reversed"},
        height=max(240, 60 + 32 * len(names)),
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig


def avatar_scatter(visits: pd.DataFrame, avatars: Sequence[int]) -> go.Figure:
    """Avatars by arrival time and number of visits; a point's customdata is its id, so
    clicking one picks the avatar."""
    chosen = visits[visits["avatar_id"].isin(list(avatars))]
    per = chosen.groupby("avatar_id").agg(
        arrived=("timestamp", "min"), visits=("zone", "size"), last=("zone", "last")
    )
    scatter = go.Scattergl if len(per) > WEBGL_ABOVE else go.Scatter
    fig = go.Figure(
        scatter(
            x=per["arrived"],
            y=per["visits"],
            mode="markers",
            marker={"size": 7, "opacity": 0.6},
            customdata=per.index.to_numpy(),
            hovertemplate="avatar %{customdata}<br>arrived %{x|%H:%M}<br>%{y} visits"
            "<extra></extra>",
        )
    )
    fig.update_layout(
        title="GPT avatars (click one to explain it)",
        xaxis={"title": "arrival"},
        yaxis={"title": "visits"},
        height=320,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig


# ============================================================================ training
def loss_curve(history: Sequence[dict[str, Any]]) -> go.Figure:
    """Training and validation next-zone loss at every evaluation."""
    steps = [row["step"] for row in history]
    fig = go.Figure()
    for key, name in (("train_zone_loss", "train"), ("val_zone_loss", "validation")):
        fig.add_trace(
            go.Scatter(x=steps, y=[row[key] for row in history], mode="lines+markers", name=name)
        )
    fig.update_layout(
        title="Next-zone loss",
        xaxis={"title": "step"},
        yaxis={"title": "cross-entropy"},
        height=360,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig


def visits_per_zone(frame: pd.DataFrame, top: int = 40) -> go.Figure:
    """How often each zone is visited in a log (the ``top`` most visited)."""
    counts = frame["zone"].astype(str).value_counts().head(top)
    fig = go.Figure(go.Bar(x=counts.index.tolist(), y=counts.to_numpy()))
    fig.update_layout(
        title="Visits per zone",
        height=320,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig
