"""Real logs as they come: several id columns and sessions, ``;`` separators, time zones,
unseen zones, out-of-range times, and ``evaluate`` reading them as ``train`` did."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llm import checkpoint
from llm.data import encode, visitor_digests
from llm.evaluate import evaluate_checkpoint
from llm.logs import Columns, LogError, read_logs
from llm.vocab import UNKNOWN_ZONE
from twin import cli

TINY = ["--n-layer", "1", "--n-embd", "32", "--n-head", "2", "--block-size", "16", "--quiet"]
#: The mapping of the photo-like logs below, as flags.
MAPPING = [
    "--id-col",
    "guest",
    "--session-col",
    "trip",
    "--time-col",
    "taken_at",
    "--zone-col",
    "attraction",
    "--tz",
    "Europe/Paris",
]
T0 = 1_780_000_000  # 2026-05-28 20:26:40 UTC


def photo_log(rng: np.random.Generator, guests: int, places: int, name: str) -> pd.DataFrame:
    """Guests' trips (two each) among ``places`` sights: a few photos at each sight, one
    timestamp a photo, in unix seconds (UTC); sight s is mostly followed by s + 1."""
    rows = []
    for g in range(guests):
        for trip in range(2):
            t = T0 + int(rng.integers(0, 20 * 86400))
            place = int(rng.integers(places))
            for _ in range(int(rng.integers(2, 7))):
                for _ in range(int(rng.integers(1, 4))):  # a burst of photos
                    rows.append((f"{name}{g}", f"{name}{g}-{trip}", t, f"sight{place:02d}"))
                    t += int(rng.integers(5, 120))
                t += int(rng.integers(600, 3600))
                step = 1 if rng.random() < 0.7 else int(rng.integers(2, places))
                place = (place + step) % places
    return pd.DataFrame(rows, columns=["guest", "trip", "taken_at", "attraction"])


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(4)
    photo_log(rng, 300, 12, "g").to_csv(folder / "train.csv", sep=";", index=False)
    later = photo_log(rng, 80, 12, "h")
    later.loc[later.index[3::40], "attraction"] = "new_museum"  # a sight training never saw
    later.to_csv(folder / "later.csv", sep=";", index=False)
    return folder


def test_photos_read_as_visits_of_trips_in_local_time(photos: Path) -> None:
    columns = Columns("guest", "taken_at", "attraction", session="trip", tz="Europe/Paris")
    read = read_logs([photos / "train.csv"], columns)
    raw = pd.read_csv(photos / "train.csv", sep=";")
    assert read["trajectory"].nunique() == raw["trip"].nunique() == 600
    assert read["visitor"].nunique() == 300  # two trips a guest: the split keeps them together
    assert len(read) < len(raw)  # bursts are one visit each
    same = read["trajectory"].to_numpy()[1:] == read["trajectory"].to_numpy()[:-1]
    assert not (same & (read["zone"].to_numpy()[1:] == read["zone"].to_numpy()[:-1])).any()
    first = raw.iloc[0]
    utc = pd.Timestamp(int(first["taken_at"]), unit="s", tz="UTC")
    local = utc.tz_convert("Europe/Paris")
    mine = read[read["trajectory"].str.endswith(f"/{first['guest']}/{first['trip']}")]
    assert mine["timestamp"].min() == local.tz_localize(None)  # wall clock in Paris
    assert (read["dwell_s"] < 3 * 120 + 1).all()  # a burst's span, never the walk after it


def test_several_id_columns_name_one_visitor(tmp_path: Path) -> None:
    path = tmp_path / "pings.csv"
    path.write_text(
        "site\tdevice\tts\tap\nA\t1\t2026-06-06T10:00:00\tx\nA\t1\t2026-06-06T10:05:00\ty\n"
        "B\t1\t2026-06-06T10:00:00\tx\n"
    )
    read = read_logs([path], Columns(("site", "device"), "ts", "ap"))
    assert sorted(read["avatar_id"].unique()) == ["A|1", "B|1"]
    assert read.groupby("avatar_id").size().to_dict() == {"A|1": 2, "B|1": 1}


def test_times_outside_what_a_log_can_hold_are_refused_by_row(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("userID;dateTaken;poiID\nu1;1300000000;3\nu-secret-7;79870630000;4\n")
    with pytest.raises(LogError) as err:
        read_logs([path], Columns("userID", "dateTaken", "poiID"))
    message = str(err.value)
    assert "row 2, column 'dateTaken'" in message and "79870630000" in message
    assert "u-secret-7" not in message  # a visitor's id is never echoed


def test_an_unknown_time_zone_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("avatar_id,timestamp,zone\n1,1300000000,a\n")
    with pytest.raises(LogError, match="unknown time zone 'Mars/Olympus'"):
        read_logs([path], Columns(tz="Mars/Olympus"))


def test_train_then_evaluate_reads_the_logs_as_trained_and_scores_the_unseen(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(photos)
    out = tmp_path / "model"
    code = cli.main(
        ["train", "train.csv", *MAPPING, "--max-steps", "60", "--eval-every", "30", *TINY]
        + ["--out", str(out)]
    )
    assert code == 0
    ckpt = checkpoint.load(out / "model.safetensors")
    assert ckpt.vocab.names[-1] == UNKNOWN_ZONE and len(ckpt.vocab) == 13
    assert ckpt.training["log_format"] == {
        "ids": ["guest"],
        "timestamp": "taken_at",
        "zone": "attraction",
        "session": "trip",
        "sep": None,
        "tz": "Europe/Paris",
        "attributes": [],
    }
    # The split is by guest: 240 train, 30 validation, 30 test, kept as digests only.
    sizes = {part: len(ckpt.visitors[part]) for part in checkpoint.SPLIT_PARTS}
    assert sizes == {"train": 240, "validation": 30, "test": 30}
    assert "g123" not in json.dumps(checkpoint.read_metadata(out / "model.safetensors"))
    capsys.readouterr()

    # Its own training log, spelt another way, read without the flags: the test guests only.
    report = tmp_path / "own.json"
    assert (
        cli.main(["evaluate", str(out / "model.safetensors"), "./train.csv", "--json", str(report)])
        == 0
    )
    own = json.loads(report.read_text())
    assert own["scored"]["visitors"] == 30 and own["scored"]["left_out_visitors"] == 270
    assert own["baselines_fitted_on"] == "training visitors of the model's training logs"
    read = read_logs([photos / "train.csv"], Columns.from_json(ckpt.training["log_format"]))
    test_guests = set(
        read["visitor"][np.isin(visitor_digests(read["visitor"]), ckpt.visitors["test"])]
    )
    assert own["scored"]["trajectories"] == 2 * len(test_guests) == 60

    # Later logs with a sight it never saw: all scored, finite perplexity, unseen counted.
    report = tmp_path / "later.json"
    assert (
        cli.main(["evaluate", str(out / "model.safetensors"), "later.csv", "--json", str(report)])
        == 0
    )
    later = json.loads(report.read_text())
    assert later["scored"]["visitors"] == 80 and later["scored"]["left_out_visitors"] == 0
    assert later["unseen_targets"] > 0
    assert math.isfinite(later["perplexity"])
    for name in ("markov1", "markov2", "popular"):
        assert math.isfinite(later["baselines"][name]["perplexity"])
    printed = capsys.readouterr().out
    assert "at zones the model never saw in training" in printed
    # sight s is mostly followed by s + 1: the model learnt it (chance is 1 in 12)
    assert later["acc1"] > 0.4


def test_evaluate_refuses_logs_it_was_trained_on_whole(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    args = ["train", str(photos / "train.csv"), *MAPPING, "--max-steps", "10", *TINY]
    assert cli.main([*args, "--test-fraction", "0", "--out", str(out)]) == 0
    with pytest.raises(LogError, match="trained on every visitor of these logs"):
        evaluate_checkpoint(checkpoint.load(out / "model.safetensors"), [photos / "train.csv"])
    code = cli.main(["evaluate", str(out / "model.safetensors"), str(photos / "train.csv")])
    assert code == 2


def test_unseen_zones_are_one_class_in_a_log_vocabulary(photos: Path, tmp_path: Path) -> None:
    columns = Columns("guest", "taken_at", "attraction", session="trip")
    out = tmp_path / "model"
    cli.main(
        ["train", str(photos / "train.csv"), *MAPPING, "--max-steps", "5", *TINY, "--out", str(out)]
    )
    vocab = checkpoint.load(out / "model.safetensors").vocab
    seqs = encode(read_logs([photos / "later.csv"], columns), vocab)
    unseen = ~seqs.known
    assert unseen.sum() >= 1
    assert (seqs.features["zone"][unseen] == vocab.unknown).all()
    assert (seqs.features["zone"][~unseen] != vocab.unknown).all()


def test_evaluate_takes_the_mapping_flags_for_its_logs_and_baseline_logs(
    photos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model"
    args = ["train", str(photos / "train.csv"), *MAPPING, "--max-steps", "5", *TINY]
    assert cli.main([*args, "--out", str(out)]) == 0
    for name in ("train", "later"):  # comma-separated, the visitor column renamed
        frame = pd.read_csv(photos / f"{name}.csv", sep=";").rename(columns={"guest": "who"})
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    report = tmp_path / "e.json"
    args = ["evaluate", str(out / "model.safetensors"), str(tmp_path / "later.csv")]
    args += ["--id-col", "who", "--json", str(report)]
    assert cli.main([*args, "--baseline-logs", str(tmp_path / "train.csv")]) == 0
    result = json.loads(report.read_text())
    assert result["baselines_fitted_on"] == "the baseline logs"
    assert result["scored"]["visitors"] == 80
    # Without them, the training logs named in the checkpoint, read as they were trained.
    assert cli.main(args) == 0
    result = json.loads(report.read_text())
    assert result["baselines_fitted_on"] == "training visitors of the model's training logs"
