"""``venuetwin export``: a run as a glTF 2.0 binary scene that standard tools can open:
the structure is valid (buffers, views, accessors, animation channels), and a sampled
avatar's keyframes are its visit log; a zone's colour follows its Fruin level."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pygltflib as gl
import pytest

from twin import cli, load_venue
from twin.scene import footprints, spot

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("export")
    run = root / "run"
    argv = ["simulate", "--venue", "concert_hall", "--avatars", "400", "--hours", "1"]
    assert cli.main([*argv, "--policy", "scripted", "--quiet", "--out", str(run)]) == 0
    scene = root / "scene.glb"
    assert cli.main(["export", str(run), "--avatars", "50", "--out", str(scene)]) == 0
    return run, scene


def accessor_data(doc: gl.GLTF2, blob: bytes, index: int) -> np.ndarray:
    accessor = doc.accessors[index]
    view = doc.bufferViews[accessor.bufferView]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[accessor.type]
    dtype = {gl.FLOAT: np.float32, gl.UNSIGNED_SHORT: np.uint16}[accessor.componentType]
    start = view.byteOffset + (accessor.byteOffset or 0)
    data = np.frombuffer(blob, dtype=dtype, count=accessor.count * width, offset=start)
    return data.reshape(accessor.count, width)


def test_the_glb_is_a_valid_gltf_2_scene(exported) -> None:
    _, scene = exported
    raw = scene.read_bytes()
    magic, version, length = struct.unpack("<4sII", raw[:12])
    assert magic == b"glTF" and version == 2 and length == len(raw)
    doc = gl.GLTF2().load_binary(str(scene))
    blob = doc.binary_blob()
    assert doc.asset.version == "2.0" and doc.buffers[0].byteLength == len(blob)
    for view in doc.bufferViews:
        assert view.byteOffset + view.byteLength <= len(blob) and view.byteOffset % 4 == 0
    sizes = {"SCALAR": 1, "VEC3": 3}
    for accessor in doc.accessors:
        view = doc.bufferViews[accessor.bufferView]
        assert (
            accessor.count
            * sizes[accessor.type]
            * 4
            // (2 if accessor.componentType == gl.UNSIGNED_SHORT else 1)
            <= view.byteLength
        )
    for mesh in doc.meshes:
        for primitive in mesh.primitives:
            assert doc.accessors[primitive.attributes.POSITION].min is not None  # required
            assert primitive.material < len(doc.materials)
    (animation,) = doc.animations
    for channel in animation.channels:
        assert 0 <= channel.target.node < len(doc.nodes)
        sampler = animation.samplers[channel.sampler]
        times = accessor_data(doc, blob, sampler.input)[:, 0]
        assert (np.diff(times) > 0).all()  # strictly increasing keyframe times
        assert len(accessor_data(doc, blob, sampler.output)) == len(times)
    names = [n.name for n in doc.nodes]
    venue = load_venue("concert_hall")
    assert all(zone in names for zone in venue.zones)
    assert sum(name.startswith("avatar ") for name in names) == 50


def test_a_sampled_avatars_keyframes_are_its_visits(exported) -> None:
    run, scene = exported
    doc = gl.GLTF2().load_binary(str(scene))
    blob = doc.binary_blob()
    visits = pd.read_parquet(run / "visits.parquet")
    opening = pd.Timestamp(json.loads((run / "kpis.json").read_text())["opening"])
    venue = load_venue("concert_hall")
    centres, side = footprints(venue)
    (animation,) = doc.animations
    node = next(i for i, n in enumerate(doc.nodes) if (n.name or "").startswith("avatar "))
    avatar = int(doc.nodes[node].name.split()[1])
    channel = next(
        c for c in animation.channels if c.target.node == node and c.target.path == "translation"
    )
    sampler = animation.samplers[channel.sampler]
    times = accessor_data(doc, blob, sampler.input)[:, 0]
    points = accessor_data(doc, blob, sampler.output)
    trip = visits[visits["avatar_id"] == avatar].sort_values("timestamp")
    start = (trip["timestamp"] - opening).dt.total_seconds().to_numpy()
    np.testing.assert_allclose(times[0], start[0], atol=1e-2)
    for begin, zone in zip(start, trip["zone"], strict=True):
        k = int(np.argmin(np.abs(times - begin)))
        assert abs(times[k] - begin) < 1e-2
        z = venue.index[zone]
        expected = centres[z] + spot(np.array([avatar]))[0] * side[z]
        np.testing.assert_allclose(points[k][[0, 2]], [expected[0], -expected[1]], atol=1e-3)


def test_a_zones_colour_follows_its_fruin_level(exported) -> None:
    run, scene = exported
    doc = gl.GLTF2().load_binary(str(scene))
    blob = doc.binary_blob()
    zones = pd.read_parquet(run / "zones.parquet")
    busy = zones.groupby("zone")["fruin"].nunique().idxmax()
    levels = zones[zones["zone"] == busy].sort_values("time_s")
    (animation,) = doc.animations
    for level in levels["fruin"].unique():
        node = next(i for i, n in enumerate(doc.nodes) if n.name == f"{busy} Fruin {level}")
        channel = next(c for c in animation.channels if c.target.node == node)
        sampler = animation.samplers[channel.sampler]
        assert sampler.interpolation == "STEP"
        times = accessor_data(doc, blob, sampler.input)[:, 0]
        shown = accessor_data(doc, blob, sampler.output)[:, 0] > 0
        expected = (levels["fruin"] == level).to_numpy()
        np.testing.assert_array_equal(shown, expected)
        np.testing.assert_allclose(times, levels["time_s"].to_numpy(), atol=1e-3)


def test_exporting_what_is_not_a_run_is_refused(tmp_path, capsys) -> None:
    assert cli.main(["export", str(tmp_path), "--out", str(tmp_path / "s.glb")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert not (tmp_path / "s.glb").exists()
