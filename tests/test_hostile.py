"""Bad input, class by class: every number from a file or a flag is checked at the border,
and refused with one line naming the file and the field (exit 2 on the command line),
before any work and with nothing written. The cases are generated from each class's own
limits, so a field added later is tried too."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from llm import checkpoint
from llm.logs import LogError, read_log
from llm.model import CONFIG_LIMITS
from llm.train import OPTION_LIMITS, OptionError, build_parser, configs_from_args
from twin import cli
from twin.catalog import shipped_model_path
from twin.model import VenueModel
from twin.scenario import Scenario, ScenarioError
from twin.venue import LIMITS, MAX_ZONES, VenueError, load_venue, venue_from_json

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
CONCERT = json.loads((ROOT / "twin" / "venues" / "concert_hall.json").read_text())


def outside(least: float, most: float) -> list[float]:
    """Values every limit must refuse: not finite, just beyond each end, absurd."""
    below = least - 1 if least <= 0 else least / 10
    return [math.nan, math.inf, -math.inf, below, most * 10 + 1, 1e308]


def refused(argv: list[str], capsys: pytest.CaptureFixture, *needles: str) -> str:
    """Run the command line; it must exit 2 with one line that names each needle."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


# ============================================================================ venues
ZONE_FIELDS = {"area": 9, "capacity": 9, "servers": 3, "service_s": 3, "x": 0, "y": 0}
EDGE_FIELDS = ("length", "width")


@pytest.mark.parametrize(
    ("field", "value"),
    [(f, v) for f in (*ZONE_FIELDS, *EDGE_FIELDS) for v in outside(*LIMITS[f][:2])],
)
def test_every_venue_number_outside_its_limits_is_refused_naming_zone_and_field(field, value):
    data = json.loads(json.dumps(CONCERT))
    if field in ZONE_FIELDS:
        node = data["nodes"][ZONE_FIELDS[field]]
        node[field] = value
        where = f"zone {node['id']!r}"
    else:
        data["edges"][0][field] = value
        where = "edge"
    with pytest.raises(VenueError) as info:
        venue_from_json(data, source="hostile.json")
    message = str(info.value)
    assert message.startswith("hostile.json: ") and where in message and field in message
    assert LIMITS[field][2] in message  # the unit


@pytest.mark.parametrize("text", ['"12"', "true", "null", "[1]"])
def test_a_venue_number_that_is_not_a_number_is_refused(text):
    data = json.loads(json.dumps(CONCERT).replace('"area": 1200.0', f'"area": {text}'))
    with pytest.raises(VenueError, match="zone 'main_hall'.*area"):
        venue_from_json(data, source="v.json")


def test_venues_that_would_break_the_run_are_refused_before_it(tmp_path, capsys):
    """Zone ids equal as text, JSON nested too deep, more zones than the tables can hold:
    refused by the command line, exit 2, nothing written."""
    ids = json.loads(json.dumps(CONCERT))
    ids["nodes"][0]["id"], ids["nodes"][1]["id"] = 1, "1"
    for edge in ids["edges"]:
        for end in ("source", "target"):
            edge[end] = {"gate_main": 1, "gate_side": "1"}.get(edge[end], edge[end])
    many = {"nodes": [{"id": i} for i in range(MAX_ZONES + 1)], "edges": []}
    cases = {
        "ids.json": (json.dumps(ids), "differ as text"),
        "deep.json": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        "many.json": (json.dumps(many), f"{MAX_ZONES:,}"),
    }
    for name, (text, why) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        out = tmp_path / "out"
        argv = ["simulate", "--venue", str(path), "--avatars", "20", "--quiet", "--out", str(out)]
        refused(argv, capsys, str(path), why)
        assert not out.exists() or not any(out.iterdir())


# ============================================================================ scenarios
NUMBER_FIELDS = ("hours", "step_s", "js", "patience_s", "record_every_s", "temperature")


@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for f in NUMBER_FIELDS for v in ("nan", "inf", "-inf")]
)
def test_a_scenario_number_that_is_not_finite_is_refused(tmp_path, field, value):
    path = tmp_path / "s.toml"
    path.write_text(f'venue = "concert_hall"\n{field} = {value}\n')
    with pytest.raises(ScenarioError, match=f"{path}: {field} must be"):
        Scenario.from_toml(path)


@pytest.mark.parametrize("profile", ["[1.0, nan, 2.0]", "[inf, 1.0]", "[-1.0, 2.0]", "[0.0]"])
def test_an_arrival_profile_with_no_rates_to_draw_from_is_refused(tmp_path, profile):
    path = tmp_path / "s.toml"
    path.write_text(f'venue = "concert_hall"\narrival_profile = {profile}\n')
    with pytest.raises(ScenarioError, match="arrival_profile"):
        Scenario.from_toml(path).check(load_venue("concert_hall"), str(path))


# ============================================================================ timestamps
@pytest.fixture(scope="module")
def small_log(tmp_path_factory) -> pd.DataFrame:
    run = VenueModel(Scenario(venue="concert_hall", avatars=200, hours=1.0, policy="scripted"))
    return run.run().visits()


@pytest.mark.parametrize(
    "stamp",
    ["9999-12-31T23:59:59", "0001-01-01T00:00:00", "1500-06-01T12:00:00", 1e20, -1e18, 3e16],
)
def test_a_time_beyond_what_a_log_can_hold_is_refused_naming_row_and_column(
    tmp_path, small_log, stamp
):
    frame = small_log.copy()
    frame["timestamp"] = frame["timestamp"].astype(str).astype(object)
    frame.loc[frame.index[3], "timestamp"] = stamp
    path = tmp_path / "log.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(LogError, match=r"row \d+, column 'timestamp'"):
        read_log(path)


@pytest.mark.parametrize("factor", [1000, 1 / 1000])
def test_seconds_and_milliseconds_mixed_in_one_column_are_refused(tmp_path, small_log, factor):
    seconds = small_log["timestamp"].astype("datetime64[s]").astype("int64").to_numpy()
    stamps = seconds.astype(float)
    stamps[::3] *= factor
    frame = small_log.assign(timestamp=stamps.round().astype(np.int64))
    path = tmp_path / "log.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(LogError, match="mixes"):
        read_log(path)
    frame.assign(timestamp=seconds).to_csv(path, index=False)  # one unit: read
    assert len(read_log(path)) > 0


# ============================================================================ checkpoints
@pytest.fixture(scope="module")
def shipped() -> tuple[dict, dict[str, torch.Tensor]]:
    path = shipped_model_path("concert_hall")
    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()[checkpoint.METADATA_KEY])
        return meta, {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118


def write_checkpoint(path: Path, meta: dict, tensors: dict[str, torch.Tensor]) -> Path:
    save_file(tensors, str(path), metadata={checkpoint.METADATA_KEY: json.dumps(meta)})
    return path


@pytest.mark.parametrize(
    ("field", "value"),
    [
        *((f, v) for f, (lo, hi) in CONFIG_LIMITS.items() for v in outside(lo, hi)[3:5]),
        ("n_head", 3),  # does not divide the width
        ("n_embd", "64"),
        ("n_layer", 1.5),
    ],
)
def test_checkpoint_metadata_is_checked_before_anything_is_allocated(
    tmp_path, shipped, field, value
):
    meta, tensors = shipped
    bad = json.loads(json.dumps(meta))
    bad["config"][field] = value
    path = write_checkpoint(tmp_path / "m.safetensors", bad, tensors)
    with pytest.raises(checkpoint.CheckpointError, match=f"{path}: .*{field}"):
        checkpoint.load(path)


def test_a_checkpoint_whose_shapes_ask_for_more_than_its_tensors_is_refused(tmp_path, shipped):
    """A 2 KB file may claim any width: the shapes are compared before a model is made."""
    meta, tensors = shipped
    bad = json.loads(json.dumps(meta))
    bad["config"]["n_embd"] = 2048  # within the limits, not the file's
    path = write_checkpoint(tmp_path / "m.safetensors", bad, tensors)
    with pytest.raises(checkpoint.CheckpointError, match="has shape"):
        checkpoint.load(path)


@pytest.mark.parametrize("poison", [math.nan, math.inf])
def test_weights_that_are_not_finite_are_refused(tmp_path, shipped, capsys, poison):
    meta, tensors = shipped
    name = "blocks.1.mlp.c_fc.weight"
    bad = dict(tensors)
    bad[name] = tensors[name].clone()
    bad[name][3, 5] = poison
    path = write_checkpoint(tmp_path / "m.safetensors", meta, bad)
    out = tmp_path / "run"
    argv = ["simulate", "--venue", "concert_hall", "--avatars", "20", "--model", str(path)]
    refused([*argv, "--quiet", "--out", str(out)], capsys, str(path), name)
    assert not out.exists() or not any(out.iterdir())


# ============================================================================ training options
WHOLE_OPTIONS = {"max_steps", "batch_size", "grad_accum", "eval_every", "checkpoint_every"}
WHOLE_OPTIONS |= {"patience", "seed"}


def option_values(option: str, least: float, most: float) -> list[str]:
    if option in WHOLE_OPTIONS:  # argparse itself refuses "nan" for these (exit 2)
        return [str(int(least) - 1), str(int(most) * 2)]
    return ["nan", "inf", str(least / 10 if least > 0 else least - 1), str(most * 2)]


@pytest.mark.parametrize(
    ("option", "value"),
    [(k, v) for k, (lo, hi) in OPTION_LIMITS.items() for v in option_values(k, lo, hi)]
    + [("n_head", "0"), ("n_head", "3"), ("n_embd", "200000"), ("block_size", "0")]
    + [("dropout", "2"), ("dropout", "nan"), ("n_layer", "0"), ("n_layer", "100")],
)
def test_every_training_option_outside_its_limits_is_refused_naming_the_flag(option, value):
    flag = "--" + option.replace("_", "-")
    args = build_parser().parse_args(["log.csv", "--out", "o", flag, value])
    with pytest.raises(OptionError, match=flag):
        configs_from_args(args)


def test_training_or_scoring_on_trajectories_of_one_visit_is_refused(tmp_path, small_log, capsys):
    """No next place, nothing to learn or score: refused, not a perplexity over 0 targets."""
    one = tmp_path / "one.csv"
    small_log.groupby("avatar_id").head(1).to_csv(one, index=False)
    out = tmp_path / "model"
    refused(["train", str(one), "--max-steps", "2", "--quiet", "--out", str(out)], capsys, "two")
    assert not (out / "model.safetensors").exists()
    model = str(shipped_model_path("concert_hall"))
    refused(["evaluate", model, str(one)], capsys, str(one), "two visits")


# ============================================================================ output paths
def test_every_output_that_cannot_be_written_is_refused_before_any_work(
    tmp_path, capsys, monkeypatch
):
    """A file where a folder is wanted, a folder where a file is, a place nothing can be
    written (/proc): every command's output options, refused before the work starts."""

    def no_work(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("the work started")

    monkeypatch.setattr(VenueModel, "run", no_work)
    monkeypatch.setattr("llm.train.train", no_work)
    monkeypatch.setattr("llm.evaluate.evaluate_checkpoint", no_work)
    a_file, a_folder = tmp_path / "a_file", tmp_path / "a_folder"
    a_file.write_text("keep me")
    a_folder.mkdir()
    log = tmp_path / "log.csv"
    log.write_text("avatar_id,timestamp,zone\n1,2026-01-01T10:00:00,foyer\n")
    model = str(shipped_model_path("concert_hall"))
    sim = ["simulate", "--venue", "concert_hall", "--avatars", "20", "--quiet"]
    val = ["validate", "--venue", "concert_hall", "--avatars", "20", "--no-interventions"]
    cases = [
        ([*sim, "--out", str(a_file)], "--out"),
        ([*sim, "--out", "/proc/venuetwin"], "--out"),
        ([*sim, "--out", str(a_file / "below")], "--out"),
        (["train", str(log), "--out", str(a_file)], "--out"),
        (["train", str(log), "--out", "/proc/venuetwin"], "--out"),
        (["evaluate", model, str(log), "--json", str(a_folder)], "--json"),
        (["evaluate", model, str(log), "--json", "/proc/x.json"], "--json"),
        ([*val, "--json", str(a_folder)], "--json"),
        ([*val, "--json", str(tmp_path / "v.json"), "--html", "/proc/v.html"], "--html"),
        (["optimize", "--venue", "concert_hall", "--trials", "1", "--out", str(a_file)], "--out"),
        (["vocab", "concert_hall", "--out", str(a_folder)], "--out"),
    ]
    for argv, option in cases:
        refused(argv, capsys, option)
    assert a_file.read_text() == "keep me" and not any(a_folder.iterdir())


# ============================================================================ resuming
@pytest.mark.slow
def test_a_training_state_that_cannot_be_resumed_is_refused_and_kept(tmp_path, small_log, capsys):
    """``--resume`` from a truncated, pickled, empty or other-shape state: refused with
    one line naming the file, the state left as it was, nothing trained; a killed run's
    temporary files are removed by the next run."""
    import pickle

    log = tmp_path / "log.csv"
    small_log.to_csv(log, index=False)
    out = tmp_path / "model"
    train = ["train", str(log), "--checkpoint-every", "2", "--eval-every", "2", "--quiet"]
    assert cli.main([*train, "--max-steps", "4", "--out", str(out)]) == 0
    state = out / "train_state.safetensors"
    good = state.read_bytes()
    other = tmp_path / "other"
    assert cli.main([*train, "--max-steps", "2", "--n-embd", "32", "--out", str(other)]) == 0
    capsys.readouterr()
    model_before = (out / "model.safetensors").read_bytes()
    for bad in (
        good[: len(good) // 2],
        pickle.dumps({"step": 4}),
        b"",
        (other / "train_state.safetensors").read_bytes(),
    ):
        state.write_bytes(bad)
        argv = [*train, "--max-steps", "6", "--resume", "--out", str(out)]
        refused(argv, capsys, "--resume", str(state), "start afresh")
        assert state.read_bytes() == bad
        assert (out / "model.safetensors").read_bytes() == model_before
    stale = out / ".train_state.safetensors.x1y2.tmp"
    stale.write_bytes(b"half")
    state.write_bytes(good)
    assert cli.main([*train, "--max-steps", "6", "--resume", "--out", str(out)]) == 0
    assert not stale.exists()


def test_a_scenario_nested_too_deeply_is_refused_by_name(tmp_path, capsys):
    path = tmp_path / "deep.toml"
    path.write_text('venue = "concert_hall"\nx = ' + "[" * 100_000 + "]" * 100_000 + "\n")
    argv = ["simulate", str(path), "--avatars", "20", "--quiet", "--out", str(tmp_path / "o")]
    refused(argv, capsys, str(path), "nested too deeply")


@pytest.mark.parametrize(
    "search",
    [
        "servers = {foyer_bar = [1, 1e300]}",
        "servers = {foyer_bar = [1, nan]}",
        "servers = {foyer_bar = [1, 5000]}",
        "capacity_caps = {main_hall = [1, 1e12]}",
        "arrival_window_h = [inf, 1.0]",
    ],
)
def test_an_optimiser_range_beyond_its_lever_is_refused_before_any_trial(tmp_path, capsys, search):
    path = tmp_path / "s.toml"
    path.write_text(f'venue = "concert_hall"\navatars = 50\nhours = 0.5\n[search]\n{search}\n')
    argv = ["optimize", str(path), "--trials", "1", "--quiet", "--out", str(tmp_path / "o")]
    refused(argv, capsys, str(path), "search.")
    assert not (tmp_path / "o" / "study.db").exists()


def test_a_storage_that_cannot_be_opened_is_refused_on_one_line(tmp_path, capsys):
    argv = ["optimize", "--venue", "concert_hall", "--trials", "1", "--quiet"]
    refused(
        [*argv, "--storage", "sqlite:////proc/x/s.db", "--out", str(tmp_path)], capsys, "--storage"
    )
