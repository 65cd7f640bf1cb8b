"""``venuetwin validate``: the GPT twin beside its reference, and a broken model flagged."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from llm import checkpoint
from llm.features import profile_size
from llm.logs import read_logs
from llm.model import GPT, GPTConfig
from twin import Scenario, VenueModel, load_venue
from twin.attendance import show_attendance
from twin.cli import main
from twin.scenario import ScenarioError
from twin.validate import (
    INTERVENTION_KPIS,
    intervention_figures,
    jensen_shannon,
    occupancy_by_kind,
    occupancy_nrmse,
    validate,
)
from twin.whatifs import WHATIFS, interventions

pytestmark = pytest.mark.usefixtures("one_thread")

#: The JSON keys the issue names, each with the twin's and the reference's figure.
KEYS = (
    "zone_share_js",
    "kind_share_js",
    "hour_share_js",
    "visits_per_avatar",
    "mean_dwell_s",
    "mean_wait_s",
    "p95_wait_s",
    "los_ef_person_minutes",
    "mean_satisfaction",
    "occupancy_nrmse",
)


# ============================================================================ the figures
def test_jensen_shannon_is_zero_for_the_same_shares_and_ln2_for_disjoint_ones():
    assert jensen_shannon({"a": 2, "b": 6}, {"a": 1, "b": 3}) == pytest.approx(0.0)
    assert jensen_shannon({"a": 5}, {"b": 5}) == pytest.approx(math.log(2))
    assert 0 < jensen_shannon({"a": 1, "b": 1}, {"a": 1, "b": 3}) < math.log(2)


def test_occupancy_counts_persons_present_per_quarter_hour_of_the_clock():
    """Two visitors at a bar, one from 18:00 for 15 minutes, one from 18:15 for 30:
    one person on average in each of the three quarter hours; the NRMSE of a curve twice
    as high is their root mean square over their mean, of the same curve 0."""
    stamps = pd.Series(pd.to_datetime(["2026-06-06T18:00:00", "2026-06-06T18:15:00"]))
    curve = occupancy_by_kind(stamps, pd.Series([900.0, 1800.0]), pd.Series(["bar", "bar"]))
    bins = 18 * 4  # 18:00 is quarter hour 72 of the day
    assert [curve["bar"][b] for b in (bins, bins + 1, bins + 2)] == pytest.approx(
        [1.0, 1.0, 1.0], abs=0.07
    )
    double = {"bar": {b: 2 * v for b, v in curve["bar"].items()}}
    assert occupancy_nrmse(curve, curve)[0] == pytest.approx(0.0)
    values = np.array(list(curve["bar"].values()))  # the last sample, 19:00, is empty
    rms_over_mean = np.sqrt(np.mean(values**2)) / values.mean()
    assert occupancy_nrmse(double, curve)[0] == pytest.approx(rms_over_mean)
    assert occupancy_nrmse(double, curve)[1]["bar"] == pytest.approx(rms_over_mean)


def test_an_intervention_passes_when_the_twin_moves_each_kpi_alike():
    before = [{k: 10.0 for k in INTERVENTION_KPIS}] * 2
    base = {"twin": before, "reference": before}
    twin_after = [{k: 13.0 for k in INTERVENTION_KPIS}, {k: 13.0 for k in INTERVENTION_KPIS}]
    ref_after = [{k: 12.0 for k in INTERVENTION_KPIS}, {k: 14.0 for k in INTERVENTION_KPIS}]
    item = intervention_figures("x", base, {"twin": twin_after, "reference": ref_after})
    assert item["twin_change"]["mean_wait_s"] == 3.0
    assert item["reference_change"]["mean_wait_s"] == 3.0
    assert item["ratio"]["mean_wait_s"] == 1.0 and item["passed"]["mean_wait_s"]
    assert item["reference_noise"]["mean_wait_s"] == pytest.approx(1.0)  # sd 1.41 / sqrt 2
    opposite = [{k: 7.0 for k in INTERVENTION_KPIS}] * 2
    item = intervention_figures("x", base, {"twin": opposite, "reference": ref_after})
    assert not any(item["passed"].values())


def test_both_changes_within_the_references_noise_pass_and_zones_say_where_they_part():
    """A cell whose reference change is within its seed noise passes when the twin's is
    too, and fails when the twin moves beyond it; each zone's change of visits is listed,
    the largest gap between twin and reference first."""
    before = [{k: 10.0 for k in INTERVENTION_KPIS} | {"zone_counts": {"a": 5, "b": 5}}] * 2
    base = {"twin": before, "reference": before}
    noisy = [
        {k: 11.0 for k in INTERVENTION_KPIS} | {"zone_counts": {"a": 5, "b": 9}},
        {k: 9.0 for k in INTERVENTION_KPIS} | {"zone_counts": {"a": 5, "b": 8}},
    ]
    still = [{k: 10.5 for k in INTERVENTION_KPIS} | {"zone_counts": {"a": 2, "b": 5}}] * 2
    item = intervention_figures("x", base, {"twin": still, "reference": noisy}, "k")
    assert item["key"] == "k" and item["within_noise"]["mean_wait_s"]
    assert item["passed"]["mean_wait_s"]  # 0.5 against 0 +- 2 x 1.0
    moved = [{k: 14.0 for k in INTERVENTION_KPIS} | {"zone_counts": {"a": 5, "b": 5}}] * 2
    item = intervention_figures("x", base, {"twin": moved, "reference": noisy})
    assert not item["passed"]["mean_wait_s"]  # 4 against 0 +- 2
    rows = intervention_figures("x", base, {"twin": still, "reference": noisy})["zone_visits"]
    assert rows == [
        {"zone": "b", "twin": 0.0, "reference": 3.5},
        {"zone": "a", "twin": -3.0, "reference": 0.0},
    ]


def test_every_venue_gets_the_what_ifs_it_can_have():
    """Eight what-ifs, each defined from the venue and the scenario (no venue's names): on
    the expo all eight; the staff halved at bars and restrooms only, doubled at bars only;
    the zone closed serves most; the headline's stage and later shows move an hour and the
    day grows to keep them before closing; the crowd and arrivals scale the scenario's."""
    expo = load_venue("expo")
    base = Scenario(venue="expo", avatars=2000, hours=4.0)
    made = {i.key: i for i in interventions(expo, base)}
    assert list(made) == list(WHATIFS)
    halved = made["staff_halved"].levers.servers
    assert halved and all(
        n == max(1, int(expo.servers[expo.index[z]]) // 2) for z, n in halved.items()
    )
    assert {expo.kinds[expo.index[z]] for z in halved} == {"bar", "restroom"}
    doubled = made["bar_staff_doubled"].levers.servers
    assert {expo.kinds[expo.index[z]] for z in doubled} == {"bar"}
    assert all(n == 2 * int(expo.servers[expo.index[z]]) for z, n in doubled.items())
    assert made["gate_closed"].name.startswith("gate ")
    assert "capped at half" in made["stage_capped"].name
    closed = made["service_closed"].levers.capacity_caps
    (zone,) = closed
    assert closed[zone] == 0 and expo.kinds[expo.index[zone]] in ("bar", "shop")
    assert expo.servers[expo.index[zone]] == max(
        expo.servers[z] for z in range(len(expo.zones)) if expo.kinds[z] in ("bar", "shop")
    )
    crowd = made["crowd_130"].apply(base)
    assert crowd.avatars == 2600 and crowd.arrival_window_s == base.arrival_window_s
    assert made["arrivals_compressed"].apply(base).arrival_window_s == base.arrival_window_s / 2
    later = made["headline_later"].apply(base)
    shows, moved = base.programme(expo), later.programme(expo)
    stage = next(s for s in moved if s not in shows).stage
    for old, new in zip(shows, moved, strict=True):
        shift = 1.0 if old.stage == stage and new != old else 0.0
        assert new.start_h == pytest.approx(old.start_h + shift)
    assert later.hours >= max(s.end_h for s in moved) + 0.75 and later.hours >= base.hours
    assert later.arrival_window_s == base.arrival_window_s
    later.check(expo)  # every what-if is a scenario the twin runs
    for what in made.values():
        what.apply(base).check(expo)
    concert = load_venue("concert_hall")
    keys = [i.key for i in interventions(concert, Scenario(venue="concert_hall"), ["gate_closed"])]
    assert keys == ["gate_closed"]
    with pytest.raises(ScenarioError, match="unknown nonsense"):
        interventions(concert, Scenario(venue="concert_hall"), ["nonsense"])


def test_show_attendance_counts_who_watched_half_a_show_booked_or_not():
    """Booked visitors who stayed half the show or more attend; one who came late and one
    who stayed away do not; an unbooked visitor who watched counts among the others."""
    from llm.features import Programme

    programme = Programme(("stage",), (72000.0,), (75600.0,))  # 20:00-21:00
    rows = [
        (1, "2026-06-06T19:50:00", "stage", 3000.0, "show=stage@20:00"),  # stays to 20:40
        (2, "2026-06-06T20:40:00", "stage", 1200.0, "show=stage@20:00"),  # 20 minutes
        (3, "2026-06-06T20:00:00", "bar", 3600.0, "show=stage@20:00"),  # elsewhere
        (4, "2026-06-06T20:00:00", "stage", 900.0, ""),  # 15 minutes: not half
        (4, "2026-06-06T20:15:00", "stage", 1200.0, ""),  # ... 35 minutes in all
        (5, "2026-06-06T20:00:00", "bar", 60.0, ""),
    ]
    visits = pd.DataFrame(rows, columns=["avatar_id", "timestamp", "zone", "dwell_s", "profile"])
    visits["timestamp"] = pd.to_datetime(visits["timestamp"])
    counts = show_attendance(visits, programme)
    assert counts == {
        "stage": {"booked": 3, "attended_booked": 1, "others": 2, "attended_others": 1}
    }


# ============================================================================ end to end
def broken_model(venue: str, path) -> str:
    """An untrained GPT for ``venue``: what a training run gone wrong could ship."""
    vocab = load_venue(venue).vocabulary()
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_zones=len(vocab), n_profile=profile_size(len(vocab))))
    model.set_vocabulary(torch.from_numpy(vocab.kind_ids), torch.from_numpy(vocab.destinations))
    checkpoint.save(path, model, vocab, {"note": "untrained"})
    return str(path)


@pytest.mark.slow
def test_a_broken_model_is_flagged_and_the_shipped_one_is_not(tmp_path):
    """The expo's shipped model keeps the visitors' zone shares and visits (checked at a
    fifth of the design crowd, on a day as long as its training days: 4 hours); an
    untrained model is flagged on both. (A 2-hour day, shorter than any it learnt from,
    is not kept as well: visits per visitor +30%, `docs/ARCHITECTURE.md`.)"""
    common = {"avatars": 2000, "hours": 4.0, "seeds": 1, "with_interventions": False}
    shipped = validate("expo", **common)
    broken = validate("expo", model=broken_model("expo", tmp_path / "broken.safetensors"), **common)
    assert shipped["zone_share_js"]["distance"] < 0.02 and shipped["zone_share_js"]["passed"]
    assert broken["zone_share_js"]["distance"] > 5 * shipped["zone_share_js"]["distance"]
    assert not broken["zone_share_js"]["passed"]
    assert not broken["passed"]["all"]
    assert abs(broken["mean_satisfaction"]["rel_error"]) > abs(
        shipped["mean_satisfaction"]["rel_error"]
    )
    for report in (shipped, broken):
        assert report["zone_share_js"]["reference"] is None  # same reference both times
        assert report["mean_wait_s"]["reference"] == shipped["mean_wait_s"]["reference"]


def test_the_command_writes_the_report_with_every_key(tmp_path, capsys):
    out, page = tmp_path / "report.json", tmp_path / "report.html"
    code = main(
        [
            "validate",
            "--venue",
            "concert_hall",
            "--avatars",
            "1200",
            "--hours",
            "1",
            "--seeds",
            "2",
            "--interventions",
            "gate_closed,staff_halved,stage_capped",
            "--json",
            str(out),
            "--html",
            str(page),
            "--quiet",
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    for key in KEYS:
        assert {"twin", "reference", "passed"} <= set(report[key]), key
        assert ("rel_error" in report[key]) != ("distance" in report[key])
    assert report["seeds"] == [0, 1] and report["avatars"] == 1200
    assert [i["key"] for i in report["interventions"]] == [
        "staff_halved",
        "gate_closed",
        "stage_capped",
    ]
    for item in report["interventions"]:
        assert set(item["twin_change"]) == set(item["reference_change"]) == set(INTERVENTION_KPIS)
        assert {r["zone"] for r in item["zone_visits"]} <= set(load_venue("concert_hall").zones)
        # Where crowd risk parts: the zones' changes add up to the crowd risk's change.
        for side in ("twin", "reference"):
            total = sum(r[side] for r in item["zone_crowd_risk"])
            change = item[f"{side}_change"]["los_ef_person_minutes"]
            assert total == pytest.approx(change, rel=1e-6, abs=1e-3)
    assert any(
        r["twin"] or r["reference"] for i in report["interventions"] for r in i["zone_crowd_risk"]
    )
    cells = report["passed"]["intervention_cells"]
    assert cells["of"] == 9 and cells["met"] == sum(
        ok for i in report["interventions"] for ok in i["passed"].values()
    )
    # Who attends the concerts: those who booked them nearly all, in twin and reference.
    booked = report["show_attendance"]["main_hall"]["booked"]
    assert booked["reference"] > 0.8 and booked["twin"] > 0.6
    assert "attendance at main_hall, booked" in report["passed"]["figures"]
    # The gate closed: everybody queues at the one left, for twin and reference alike.
    gate = next(i for i in report["interventions"] if i["name"].startswith("gate"))
    assert gate["reference_change"]["mean_wait_s"] > 0
    assert gate["twin_change"]["mean_wait_s"] > 0
    text = page.read_text()
    assert "Interventions: " in text and "plotly" in text and "Occupancy" in text
    assert "Who attends the shows" in text and "visits per zone, change" in text
    assert "crowd risk per zone (person-minutes at Fruin E/F), change" in text
    printed = capsys.readouterr().out
    assert "targets met" in printed and "zone shares" in printed
    assert "of 9 intervention cells met" in printed and "visits most apart" in printed
    strict = main(["validate", "--venue", "concert_hall", "--avatars", "300", "--hours", "1",
                   "--seeds", "1", "--no-interventions", "--json", str(tmp_path / "s.json"),
                   "--strict", "--quiet"])  # fmt: skip
    assert strict == (0 if json.loads((tmp_path / "s.json").read_text())["passed"]["all"] else 1)


def test_bad_input_is_one_line_and_status_2(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["validate", "--venue", "nowhere", "--json", str(out)]) == 2
    assert "nowhere" in capsys.readouterr().err
    missing = tmp_path / "none.safetensors"
    assert main(["validate", "--model", str(missing), "--json", str(out)]) == 2
    assert "none.safetensors" in capsys.readouterr().err
    assert main(["validate", "--seeds", "0", "--json", str(out), "--quiet"]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert main(["validate", "--interventions", "gate_closed,nope", "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--interventions: unknown nope" in err and "crowd_130" in err
    assert not out.exists()


def test_against_a_log_the_twin_runs_the_logs_crowd_on_its_zones(tmp_path):
    """A log as the reference: the twin runs as many visitors as the log has trajectories
    a day, from the log's opening, and is compared on the zones the log has; a log has no
    satisfaction or crowd risk to compare, and no interventions."""
    run = VenueModel(
        Scenario(venue="concert_hall", avatars=400, hours=1.5, seed=9, policy="scripted")
    ).run()
    log = run.visits()
    log = log[log["zone"] != "merch"]  # a log that never saw one zone
    path = tmp_path / "visits.csv"
    log.to_csv(path, index=False)
    report = validate("concert_hall", reference=[str(path)], seeds=1)
    assert report["avatars"] == log["avatar_id"].nunique()
    assert report["interventions"] == []
    assert "mean_satisfaction" not in report and "los_ef_person_minutes" not in report
    assert set(report["kind_share_js"]["reference"]) <= set(log["zone_kind"])
    # Rows at one zone on both sides of the dropped ones are one visit, as the reader has it.
    read = read_logs([path])
    assert report["mean_dwell_s"]["reference"] == pytest.approx(read["dwell_s"].mean())
    assert np.isfinite(report["zone_share_js"]["distance"])
