"""The crowd a log shows (``twin.log_crowd``) and how sure each figure against it is
(``twin.noise_floor``): the hours a place keeps found under a log's stray clocks, a twin
sample large enough for a photo log, and noise floors that tell met from chance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twin import Scenario, VenueModel
from twin.cli import main
from twin.log_crowd import SAMPLE_VISITORS, OpenHours, open_hours, parse_open, sample_size
from twin.noise_floor import TOO_NOISY, annotate, halves_floor, pair_floor, status
from twin.scenario import ScenarioError
from twin.validate import TARGETS, validate

pytestmark = pytest.mark.usefixtures("one_thread")

HOUR = 3600.0


def park_times(rng: np.random.Generator, opening_h: float, hours: float, n: int, stray: float):
    """Visit times of day of a place open ``hours`` from ``opening_h``, busiest at midday,
    with a share ``stray`` scattered over the whole clock (camera clocks)."""
    inside = opening_h * HOUR + rng.beta(2, 2, n) * hours * HOUR
    scattered = rng.uniform(0, 24 * HOUR, n)
    return np.mod(np.where(rng.random(n) < stray, scattered, inside), 24 * HOUR)


@pytest.mark.parametrize(("opening_h", "hours"), [(9.0, 13.0), (20.0, 8.0), (10.5, 4.0)])
def test_the_hours_a_place_keeps_are_found_under_stray_clocks(opening_h, hours):
    """A park open 09:00-22:00 whose photos scatter a fifth of their times over the whole
    clock is found open 09:00-22:00 (within the half hour its quietest edges take), as is a
    night venue across midnight and a short fair opening at half past ten."""
    rng = np.random.default_rng(4)
    found = open_hours(park_times(rng, opening_h, hours, 5000, stray=0.2))
    assert found.opening_s == pytest.approx(opening_h * HOUR, abs=0.5 * HOUR)
    assert found.hours == pytest.approx(hours, abs=1.0)
    assert not found.all_day


def test_a_log_without_a_daily_rhythm_is_open_all_day_and_a_clear_one_is_not():
    rng = np.random.default_rng(5)
    assert open_hours(rng.uniform(0, 24 * HOUR, 3000)).all_day
    assert open_hours(np.array([])).all_day
    assert not open_hours(park_times(rng, 9, 13, 300, stray=0.1)).all_day


def test_opening_hours_as_typed():
    assert parse_open("09:00-22:00") == OpenHours(9 * HOUR, 13.0)
    late = parse_open("22:30-02:00")
    assert late == OpenHours(22.5 * HOUR, 3.5) and late.text() == "22:30-02:00"
    assert late.clock_hours() == [0, 1, 22, 23]
    assert late.holds(np.array([23 * HOUR, 1 * HOUR, 3 * HOUR])).tolist() == [True, True, False]
    assert parse_open("00:00-24:00").all_day
    for bad in ("9-22", "25:00-26:00", "09:70-10:00", ""):
        with pytest.raises(ScenarioError, match="--open"):
            parse_open(bad)


def test_the_twin_samples_at_least_the_logs_trajectories_up_to_its_limit():
    assert sample_size(crowd_per_day=1, trajectories=488) == 488  # a photo log
    assert sample_size(crowd_per_day=1, trajectories=50_000) == SAMPLE_VISITORS
    assert sample_size(crowd_per_day=30_000, trajectories=270_000) == 30_000  # a whole crowd
    assert sample_size(crowd_per_day=400, trajectories=400) == 400


def test_a_floor_above_its_target_is_too_noisy_to_call():
    assert status(passed=True, floor=0.05, target=0.02) == TOO_NOISY
    assert status(passed=False, floor=0.05, target=0.02) == TOO_NOISY
    assert status(passed=True, floor=0.01, target=0.02) == "met"
    assert status(passed=False, floor=None, target=0.02) == "missed"
    report = {"zone_share_js": {"distance": 0.03, "passed": False}}
    annotate(report, {"reference": {"zone_share_js": 0.04}, "twin": {}}, TARGETS)
    assert report["zone_share_js"]["noise_floor"] == 0.04
    assert report["zone_share_js"]["noise"] == {"reference": 0.04, "twin": None}
    assert report["zone_share_js"]["status"] == TOO_NOISY


def test_halves_of_few_visitors_are_further_apart_than_halves_of_many():
    """The floor between random halves of a log falls as the log grows (about as one over
    its visitors for a Jensen-Shannon distance), and pairs of samples give their median."""
    rng = np.random.default_rng(6)
    places = np.array(list("ABCDEFGHIJ"))
    weights = np.linspace(1, 3, len(places)) / np.linspace(1, 3, len(places)).sum()

    def log(visitors: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "visitor": np.repeat(np.arange(visitors), 3),
                "zone": rng.choice(places, 3 * visitors, p=weights),
            }
        )

    def counts(frame: pd.DataFrame) -> dict[str, int]:
        return frame["zone"].value_counts().to_dict()

    def measure(a: dict, b: dict) -> dict[str, float]:
        from twin.validate import jensen_shannon

        return {"zone_share_js": jensen_shannon(a, b)}

    small = halves_floor(log(100), counts, measure)["zone_share_js"]
    large = halves_floor(log(10_000), counts, measure)["zone_share_js"]
    assert small > 20 * large and 0.005 < small < 0.05
    pairs = pair_floor([{"A": 1}, {"A": 1}, {"B": 1}], measure)["zone_share_js"]
    assert pairs == pytest.approx(np.log(2))  # median of (0, ln 2, ln 2)


def photo_log(tmp_path: Path, stray: float = 0.1) -> tuple[Path, pd.DataFrame]:
    """A scripted run of the concert hall written as a photo log: each visitor on a day of
    their own (one a day, as a photo log's crowd reads), a tenth of the visits stamped at
    a stray hour of the night."""
    run = VenueModel(
        Scenario(venue="concert_hall", avatars=300, hours=1.5, seed=3, policy="scripted")
    ).run()
    log = run.visits()[["avatar_id", "timestamp", "zone"]].copy()
    rng = np.random.default_rng(7)
    visitors = log["avatar_id"].astype("category").cat.codes.to_numpy()
    stamps = pd.to_datetime(log["timestamp"]) + pd.to_timedelta(visitors, unit="D")
    night = rng.random(len(log)) < stray
    stamps = stamps.where(~night, stamps.dt.normalize() + pd.Timedelta(hours=3))
    log["timestamp"] = stamps.dt.strftime("%Y-%m-%dT%H:%M:%S")
    path = tmp_path / "photos.csv"
    log.to_csv(path, index=False)
    return path, log


def test_against_a_photo_log_the_twin_samples_enough_and_each_figure_says_how_sure(tmp_path):
    """A log of one visitor a day: the twin runs as many visitors as the log has
    trajectories, from the hours the visits keep (the night's stray photos left out of the
    hour-of-day shares, and said), and every figure carries its noise floor and a status
    that follows it."""
    path, log = photo_log(tmp_path)
    report = validate("concert_hall", reference=[str(path)], seeds=2)
    trajectories = log["avatar_id"].nunique()
    assert report["avatars"] == trajectories  # not the log's one visitor a day
    assert report["log"]["visitors_per_day"] == 1 and report["log"]["days"] == trajectories
    assert report["log"]["open"].startswith("18:00")
    assert report["log"]["outside_hours_share"] == pytest.approx(0.1, abs=0.02)
    for key in ("zone_share_js", "kind_share_js", "hour_share_js", "visits_per_avatar"):
        item = report[key]
        assert item["noise"]["reference"] > 0 and item["noise"]["twin"] > 0
        assert item["noise_floor"] == max(item["noise"].values())
        expected = TOO_NOISY if item["noise_floor"] > TARGETS[key] else None
        assert expected is None or item["status"] == expected
        assert (key in report["passed"]["too_noisy"]) == (item["status"] == TOO_NOISY)
    # The scripted visitors' own log against their twin: zone shares within the floor's
    # reach, hours of the day as the log keeps them.
    assert report["hour_share_js"]["distance"] < 0.05
    assert set(report["hour_share_js"]["reference"]) <= {"18", "19"}


def test_open_hours_are_given_on_the_command_line_or_refused(tmp_path, capsys):
    path, _ = photo_log(tmp_path, stray=0.0)
    out = tmp_path / "r.json"
    args = ["validate", "--venue", "concert_hall", "--reference", str(path), "--seeds", "1"]
    assert main([*args, "--open", "18:00-20:00", "--json", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "open 18:00-20:00" in printed and "noise floor" in printed
    assert main([*args, "--open", "6pm-8pm", "--json", str(tmp_path / "x.json")]) == 2
    assert "--open" in capsys.readouterr().err and not (tmp_path / "x.json").exists()
    scripted = ["validate", "--venue", "concert_hall", "--open", "18:00-20:00"]
    assert main([*scripted, "--json", str(tmp_path / "y.json")]) == 2
    assert "only against a log" in capsys.readouterr().err
