"""The venue in 3D (pydeck, which ships with Streamlit): zones as extruded footprints at
their x, y, coloured by Fruin level and raised by occupancy, passages as links, and a
sample of the avatars as points, in their zones or on their walks between them, at any
moment of the run.

Positions are the venue's metres, drawn as small offsets of longitude and latitude near
(0, 0) with no base map (nothing is fetched). A footprint's side is the square root of the
zone's area, scaled down where footprints would overlap their neighbours. At most
``MAX_DRAWN`` avatars are drawn (a fixed sample, the same at every moment), so that a
30,000-avatar festival plays back as smoothly as a concert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import pydeck as pdk

from twin import Venue
from twin.scene import footprints
from twin.scene import spot as spot_of

#: The most avatars drawn: a sample, fixed for the run.
MAX_DRAWN = 2_000
#: Metres per degree near (0, 0) (WGS84).
M_PER_DEG_LON, M_PER_DEG_LAT = 111_320.0, 110_574.0
FRUIN_RGB: dict[str, list[int]] = {
    "A": [26, 152, 80],
    "B": [145, 207, 96],
    "C": [217, 239, 139],
    "D": [254, 224, 139],
    "E": [252, 141, 89],
    "F": [215, 48, 39],
}
CAMERAS = ("Overview", "Follow an avatar", "A zone close up")


@dataclass
class Walks:
    """The sampled avatars' visits, one row each, sorted by avatar and time: zone,
    start and end in seconds since opening, and the next visit's zone and start."""

    avatar: np.ndarray
    zone: np.ndarray
    start: np.ndarray
    end: np.ndarray
    next_zone: np.ndarray  # -1: the last visit
    next_start: np.ndarray

    @classmethod
    def of(
        cls, visits: pd.DataFrame, venue: Venue, opening: datetime, most: int = MAX_DRAWN
    ) -> Walks:
        ids = np.sort(visits["avatar_id"].unique())
        if len(ids) > most:  # a fixed sample, the same at every moment
            ids = np.sort(np.random.default_rng(0).choice(ids, most, replace=False))
        rows = visits[visits["avatar_id"].isin(ids)].sort_values(["avatar_id", "timestamp"])
        start = (rows["timestamp"] - pd.Timestamp(opening.replace(tzinfo=None))).dt.total_seconds()
        start = start.to_numpy()
        end = start + rows["dwell_s"].to_numpy()
        zone = rows["zone"].map(venue.index).to_numpy(dtype=np.int64)
        avatar = rows["avatar_id"].to_numpy()
        same = np.r_[avatar[1:] == avatar[:-1], False]
        next_zone = np.where(same, np.r_[zone[1:], -1], -1)
        next_start = np.where(same, np.r_[start[1:], np.inf], np.inf)
        return cls(avatar, zone, start, end, next_zone, next_start)

    def at(self, t: float, centres: np.ndarray, spread: np.ndarray) -> pd.DataFrame:
        """Where each sampled avatar is at ``t`` (seconds since opening): in a zone (a
        fixed spot in its footprint) or on the way to the next (along the straight line
        between the two); those not yet arrived or gone are not drawn."""
        inside = (self.start <= t) & (t < self.end)
        walking = (self.end <= t) & (t < self.next_start) & (self.next_zone >= 0)
        spot = spot_of(self.avatar)  # (N, 2) in [-0.5, 0.5]
        here = centres[self.zone] + spot * spread[self.zone, None]
        there = (
            centres[np.maximum(self.next_zone, 0)]
            + spot * spread[np.maximum(self.next_zone, 0), None]
        )
        share = np.clip((t - self.end) / np.maximum(self.next_start - self.end, 1e-9), 0, 1)
        position = np.where(walking[:, None], here + (there - here) * share[:, None], here)
        shown = inside | walking
        return pd.DataFrame(
            {
                "avatar": self.avatar[shown],
                "lon": position[shown, 0] / M_PER_DEG_LON,
                "lat": position[shown, 1] / M_PER_DEG_LAT,
                "walking": walking[shown],
                "zone": np.where(walking, -1, self.zone)[shown],
            }
        )


def deck(
    venue: Venue,
    zones_now: pd.DataFrame,
    avatars: pd.DataFrame,
    camera: str = "Overview",
    follow: int | None = None,
    close_up: str | None = None,
) -> pdk.Deck:
    """The scene at one moment: ``zones_now`` the zones table's rows of that moment,
    ``avatars`` ``Walks.at``'s points; the camera over all, on one avatar or one zone."""
    centres, side = footprints(venue)
    capacity = np.maximum(venue.capacity.astype(float), 1.0)
    now = zones_now.set_index("zone").reindex(venue.zones)
    occupancy = now["occupancy"].fillna(0).to_numpy(dtype=float)
    fruin = now["fruin"].fillna("A").to_numpy()
    height = 4.0 + 40.0 * np.clip(occupancy / capacity, 0, 1.5)
    polygons = []
    for z, name in enumerate(venue.zones):
        x, y, h = centres[z, 0], centres[z, 1], side[z] / 2
        ring = [[x - h, y - h], [x + h, y - h], [x + h, y + h], [x - h, y + h]]
        polygons.append(
            {
                "zone": name,
                "kind": venue.kinds[z],
                "polygon": [[px / M_PER_DEG_LON, py / M_PER_DEG_LAT] for px, py in ring],
                "height": float(height[z]),
                "occupancy": int(occupancy[z]),
                "fruin": str(fruin[z]),
                "colour": [*FRUIN_RGB.get(str(fruin[z]), [128, 128, 128]), 200],
            }
        )
    links = [
        {
            "from": [centres[u, 0] / M_PER_DEG_LON, centres[u, 1] / M_PER_DEG_LAT],
            "to": [centres[v, 0] / M_PER_DEG_LON, centres[v, 1] / M_PER_DEG_LAT],
        }
        for u, v in venue.edge_list
    ]
    on_top = np.where(avatars["zone"] >= 0, height[np.maximum(avatars["zone"], 0)], 0.0) + 0.5
    dots = avatars.assign(
        z=on_top,  # on their zone's roof, where they can be seen; walkers on the ground
        colour=[
            [230, 30, 30, 255] if a == follow else ([90, 90, 220, 230] if w else [40, 40, 40, 230])
            for a, w in zip(avatars["avatar"], avatars["walking"], strict=True)
        ],
    )
    layers = [
        pdk.Layer(
            "PolygonLayer",
            polygons,
            id="zones",
            get_polygon="polygon",
            get_fill_color="colour",
            get_elevation="height",
            extruded=True,
            pickable=True,
            get_line_color=[60, 60, 60],
        ),
        pdk.Layer(
            "LineLayer",
            links,
            id="passages",
            get_source_position="from",
            get_target_position="to",
            get_color=[120, 120, 120],
            get_width=2,
        ),
        pdk.Layer(
            "ScatterplotLayer",
            dots,
            id="avatars",
            get_position=["lon", "lat", "z"],
            get_fill_color="colour",
            get_radius=0.9,
            radius_min_pixels=1.5,
            pickable=True,
        ),
    ]
    return pdk.Deck(
        layers=layers,
        initial_view_state=view(venue, centres, side, camera, avatars, follow, close_up),
        map_style=None,  # no base map: nothing is fetched
        tooltip={"text": "{zone} ({kind}): {occupancy} inside, Fruin {fruin}"},
    )


def view(
    venue: Venue,
    centres: np.ndarray,
    side: np.ndarray,
    camera: str,
    avatars: pd.DataFrame,
    follow: int | None,
    close_up: str | None,
) -> pdk.ViewState:
    """Overview: the whole venue, tilted; an avatar: close behind it; a zone: its
    footprint filling the view."""
    low = (centres - side[:, None] / 2).min(axis=0)
    high = (centres + side[:, None] / 2).max(axis=0)
    middle, extent = (low + high) / 2, float(np.max(high - low)) or 50.0
    target, span, pitch = middle, extent, 45
    if camera == CAMERAS[1] and follow is not None and (avatars["avatar"] == follow).any():
        row = avatars[avatars["avatar"] == follow].iloc[0]
        target = np.array([row["lon"] * M_PER_DEG_LON, row["lat"] * M_PER_DEG_LAT])
        span, pitch = max(extent / 8, 30.0), 60
    elif camera == CAMERAS[2] and close_up in venue.index:
        z = venue.index[close_up]
        target, span, pitch = centres[z], max(float(side[z]) * 2.5, 20.0), 50
    # Web Mercator: at zoom z the equator is 512 * 2**z pixels; fit ``span`` metres (and a
    # margin) in some 900 pixels.
    zoom = float(np.log2(M_PER_DEG_LON * 360 * 900 / (512 * span * 1.4)))
    return pdk.ViewState(
        longitude=float(target[0] / M_PER_DEG_LON),
        latitude=float(target[1] / M_PER_DEG_LAT),
        zoom=zoom,
        pitch=pitch,
        bearing=-20,
    )
