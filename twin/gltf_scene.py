"""The glTF 2.0 document of a run's scene, built with ``pygltflib`` (``twin.export3d``
reads the run and calls it; kept apart so that the command line does not import it to
start). Metres, Y up; see ``twin.export3d`` for what the scene holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pygltflib as gl

from twin.scene import spot
from twin.venue import Venue

FRUIN_RGBA: dict[str, tuple[float, float, float, float]] = {
    "A": (0.10, 0.60, 0.31, 1.0),
    "B": (0.57, 0.81, 0.38, 1.0),
    "C": (0.85, 0.94, 0.55, 1.0),
    "D": (1.00, 0.88, 0.55, 1.0),
    "E": (0.99, 0.55, 0.35, 1.0),
    "F": (0.84, 0.19, 0.15, 1.0),
}
ZONE_HEIGHT_M, AVATAR_M = 3.0, 0.8


class Builder:
    """The glTF document as it is built: nodes, meshes and one binary buffer."""

    def __init__(self) -> None:
        self.doc = gl.GLTF2(asset=gl.Asset(generator="venuetwin", version="2.0"))
        self.doc.scenes = [gl.Scene(nodes=[])]
        self.doc.scene = 0
        self.blob = bytearray()
        self.channels: list[gl.AnimationChannel] = []
        self.samplers: list[gl.AnimationSampler] = []
        vertices, indices = self.box_mesh_data()  # one box, shared by every mesh
        self.geometry = (
            self.accessor(vertices, gl.VEC3, gl.ARRAY_BUFFER),
            self.accessor(indices, gl.SCALAR, gl.ELEMENT_ARRAY_BUFFER),
        )
        self.meshes: dict[tuple[float, ...], int] = {}  # by colour

    # -------------------------------------------------------------- buffers
    def accessor(
        self, array: np.ndarray, kind: str, target: int | None = None, bounds: bool = False
    ) -> int:
        data = np.ascontiguousarray(array)
        while len(self.blob) % 4:
            self.blob.append(0)
        offset = len(self.blob)
        self.blob.extend(data.tobytes())
        self.doc.bufferViews.append(
            gl.BufferView(buffer=0, byteOffset=offset, byteLength=data.nbytes, target=target)
        )
        component = {np.dtype(np.float32): gl.FLOAT, np.dtype(np.uint16): gl.UNSIGNED_SHORT}
        count = data.shape[0]
        accessor = gl.Accessor(
            bufferView=len(self.doc.bufferViews) - 1,
            componentType=component[data.dtype],
            count=count,
            type=kind,
        )
        if bounds or target == gl.ARRAY_BUFFER:
            flat = data.reshape(count, -1)
            accessor.min = [float(v) for v in flat.min(axis=0)]
            accessor.max = [float(v) for v in flat.max(axis=0)]
        self.doc.accessors.append(accessor)
        return len(self.doc.accessors) - 1

    @staticmethod
    def box_mesh_data() -> tuple[np.ndarray, np.ndarray]:
        """A unit cube from (-0.5, 0, -0.5) to (0.5, 1, 0.5): 24 vertices, 36 indices."""
        corners = np.array(
            [[x, y, z] for x in (-0.5, 0.5) for y in (0.0, 1.0) for z in (-0.5, 0.5)],
            dtype=np.float32,
        )
        faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
        vertices, indices = [], []
        for face in faces:
            base = len(vertices)
            vertices += [corners[i] for i in face]
            indices += [base, base + 1, base + 2, base, base + 2, base + 3]
        return np.array(vertices, dtype=np.float32), np.array(indices, dtype=np.uint16)

    def mesh(self, rgba: tuple[float, ...]) -> int:
        """The unit box in one colour (one material per colour, the geometry shared)."""
        if rgba not in self.meshes:
            self.doc.materials.append(
                gl.Material(
                    pbrMetallicRoughness=gl.PbrMetallicRoughness(
                        baseColorFactor=list(rgba), metallicFactor=0.0, roughnessFactor=0.9
                    )
                )
            )
            position, indices = self.geometry
            primitive = gl.Primitive(
                attributes=gl.Attributes(POSITION=position),
                indices=indices,
                material=len(self.doc.materials) - 1,
            )
            self.doc.meshes.append(gl.Mesh(primitives=[primitive]))
            self.meshes[rgba] = len(self.doc.meshes) - 1
        return self.meshes[rgba]

    def node(self, **kwargs) -> int:  # noqa: ANN003
        self.doc.nodes.append(gl.Node(**kwargs))
        return len(self.doc.nodes) - 1

    def animate(
        self, node: int, path: str, times: np.ndarray, values: np.ndarray, how: str
    ) -> None:
        sampler = gl.AnimationSampler(
            input=self.accessor(times.astype(np.float32), gl.SCALAR, bounds=True),
            output=self.accessor(values.astype(np.float32), gl.VEC3),
            interpolation=how,
        )
        self.samplers.append(sampler)
        target = gl.AnimationChannelTarget(node=node, path=path)
        self.channels.append(gl.AnimationChannel(sampler=len(self.samplers) - 1, target=target))

    # -------------------------------------------------------------- the scene
    def venue(
        self, venue: Venue, centres: np.ndarray, side: np.ndarray, zones: pd.DataFrame
    ) -> None:
        root = self.node(name=venue.name, children=[])
        self.doc.scenes[0].nodes.append(root)
        times = np.sort(zones["time_s"].unique()).astype(np.float32)
        levels = zones.pivot_table(index="time_s", columns="zone", values="fruin", aggfunc="first")
        for z, name in enumerate(venue.zones):
            x, y = float(centres[z, 0]), float(centres[z, 1])
            zone = self.node(
                name=name,
                translation=[x, 0.0, -y],
                scale=[float(side[z]), ZONE_HEIGHT_M, float(side[z])],
                children=[],
            )
            self.doc.nodes[root].children.append(zone)
            level_at = (
                levels[name].reindex(times).ffill().fillna("A").to_numpy()
                if name in levels
                else np.full(len(times), "A")
            )
            for level, rgba in FRUIN_RGBA.items():
                shown = (level_at == level).astype(np.float32)
                child = self.node(
                    name=f"{name} Fruin {level}",
                    mesh=self.mesh(rgba),
                    scale=[1.0, 1.0, 1.0] if shown[0] else [0.0, 0.0, 0.0],
                )
                self.doc.nodes[zone].children.append(child)
                if len(times) > 1 and shown.min() != shown.max():
                    self.animate(
                        child, "scale", times, np.repeat(shown[:, None], 3, axis=1), "STEP"
                    )
        grey = (0.55, 0.55, 0.55, 1.0)
        for u, v in venue.edge_list:
            a = np.array([centres[u, 0], -centres[u, 1]])
            b = np.array([centres[v, 0], -centres[v, 1]])
            middle, length = (a + b) / 2, float(np.linalg.norm(b - a))
            angle = float(np.arctan2(b[1] - a[1], b[0] - a[0]))
            rotation = [0.0, float(np.sin(-angle / 2)), 0.0, float(np.cos(-angle / 2))]
            link = self.node(
                name=f"{venue.zones[u]} - {venue.zones[v]}",
                mesh=self.mesh(grey),
                translation=[float(middle[0]), 0.0, float(middle[1])],
                rotation=rotation,
                scale=[max(length, 0.1), 0.2, 1.0],
            )
            self.doc.nodes[root].children.append(link)

    def avatars(
        self,
        visits: pd.DataFrame,
        venue: Venue,
        centres: np.ndarray,
        side: np.ndarray,
        opening: pd.Timestamp,
        most: int,
        seed: int,
    ) -> np.ndarray:
        """Markers for a sample of ``most`` avatars; returns their ids."""
        ids = np.sort(visits["avatar_id"].unique())
        if len(ids) > most:
            ids = np.sort(np.random.default_rng(seed).choice(ids, most, replace=False))
        group = self.node(name="avatars", children=[])
        self.doc.scenes[0].nodes.append(group)
        marker = self.mesh((0.15, 0.15, 0.75, 1.0))
        rows = visits[visits["avatar_id"].isin(ids)].sort_values(["avatar_id", "timestamp"])
        for avatar, trip in rows.groupby("avatar_id", sort=True):
            times, points = keyframes(trip, venue, centres, side, opening, int(avatar))
            node = self.node(
                name=f"avatar {avatar}",
                mesh=marker,
                scale=[AVATAR_M] * 3,
                translation=points[0].tolist(),
            )
            self.doc.nodes[group].children.append(node)
            self.animate(node, "translation", times, points, "LINEAR")
            shown = np.array([[0.0] * 3, [AVATAR_M] * 3, [0.0] * 3], dtype=np.float32)
            self.animate(node, "scale", np.array([0.0, times[0], times[-1]]), shown, "STEP")
        return ids

    def save(self, path: Path) -> None:
        if self.channels:
            self.doc.animations = [
                gl.Animation(name="the event", channels=self.channels, samplers=self.samplers)
            ]
        self.doc.buffers = [gl.Buffer(byteLength=len(self.blob))]
        self.doc.set_binary_blob(bytes(self.blob))
        self.doc.save_binary(str(path))


def keyframes(
    trip: pd.DataFrame,
    venue: Venue,
    centres: np.ndarray,
    side: np.ndarray,
    opening: pd.Timestamp,
    avatar: int,
) -> tuple[np.ndarray, np.ndarray]:
    """One avatar's translation keyframes: (K,) seconds since opening and (K, 3) glTF
    positions, a key where each visit begins and ends, at its spot on the zone's roof."""
    start = (trip["timestamp"] - opening).dt.total_seconds().to_numpy()
    end = start + trip["dwell_s"].to_numpy()
    zone = trip["zone"].map(venue.index).to_numpy(dtype=np.int64)
    place = spot(np.array([avatar]))[0]
    xy = centres[zone] + place * side[zone, None]
    points = np.stack([xy[:, 0], np.full(len(zone), ZONE_HEIGHT_M), -xy[:, 1]], axis=1)
    times = np.stack([start, np.maximum(end, start + 1e-3)], axis=1).ravel()
    points = np.repeat(points, 2, axis=0)
    keep = np.r_[True, np.diff(times) > 0]  # strictly increasing, as glTF asks
    return times[keep].astype(np.float32), points[keep].astype(np.float32)
