"""``venuetwin venue from-pois``: a venue from a POI table and its visits; bad tables refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llm.data import encode
from llm.logs import Columns, read_logs
from twin import cli
from twin.from_pois import PoiColumns, PoiError, build_venue, corner, kind_of_theme
from twin.model import VenueModel
from twin.scenario import Scenario
from twin.validate import validate
from twin.venue import VenueError, load_venue, venue_from_json

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "realvisits"
TORONTO = ["--id-col", "userID", "--session-col", "seqID", "--time-col", "dateTaken"]
TORONTO += ["--zone-col", "poiID", "--tz", "America/Toronto"]

#: A small park: a gate-less square of four places 100 m apart (0.0009 degrees of latitude
#: is 100 m) and a café.
POIS = """id;name;lat;lon;theme;ride_min
A;Big Wheel;45.0000;7.0000;Amusement ride;4
B;Castle;45.0009;7.0000;Heritage;
C;Noodle Bar;45.0009;7.00127;Restaurant;
D;Gift Shop;45.0000;7.00127;Souvenir shop;
E;Pond;45.00045;7.000635;Moon garden;
"""


def write(tmp_path: Path, pois: str = POIS, trajectories: list[list[str]] | None = None) -> tuple:
    (tmp_path / "pois.csv").write_text(pois)
    trajectories = trajectories or [["A", "B", "C"], ["A", "C"], ["B", "D", "E"], ["A", "E", "D"]]
    rows = []
    for k, places in enumerate(trajectories * 3):
        for j, place in enumerate(places):
            start = 10 * 3600 + 600 * k + 1200 * j
            for photo in range(2):  # two photos 300 s apart: a stay of 300 s
                rows.append((f"u{k}", "2024-05-04", start + 300 * photo, place))
    log = pd.DataFrame(rows, columns=["visitor", "day", "seconds", "poi"])
    log["timestamp"] = pd.to_datetime(log["day"]) + pd.to_timedelta(log["seconds"], unit="s")
    log[["visitor", "timestamp", "poi"]].to_csv(tmp_path / "visits.csv", index=False)
    return tmp_path / "pois.csv", tmp_path / "visits.csv"


COLUMNS = Columns("visitor", "timestamp", "poi")


def test_places_kinds_streets_and_gates_come_from_the_table_and_the_visits(
    tmp_path: Path,
) -> None:
    pois, visits = write(tmp_path)
    built = build_venue(
        pois, [visits], log_columns=COLUMNS, poi_columns=PoiColumns(duration="ride_min")
    )
    venue = built.venue
    kinds = dict(zip(venue.zones, venue.kinds, strict=True))
    assert {z: kinds[z] for z in "ABCDE"} == {
        "A": "booth",  # a ride: a booth with a queue
        "B": "booth",
        "C": "bar",
        "D": "shop",
        "E": "hall",
    }
    node = venue.graph.nodes
    assert node["A"]["servers"] == 20 and node["A"]["service_s"] == 240.0  # 4 min ride
    assert venue.is_service[venue.index["A"]] and not venue.is_service[venue.index["B"]]
    assert node["A"]["label"] == "Big Wheel"
    # Positions in metres: B is 100 m north of A, C 100 m east of B.
    assert node["B"]["y"] - node["A"]["y"] == pytest.approx(100.0, abs=0.5)
    assert node["C"]["x"] - node["B"]["x"] == pytest.approx(100.0, abs=1.0)
    street = venue.graph.edges[corner("A"), corner("B")]
    assert street["length"] == pytest.approx(100.0, abs=0.5)
    # Every place can follow every other, through the streets, as in the log.
    vocab = venue.vocabulary()
    places = [vocab.index[z] for z in "ABCDE"]
    assert vocab.destinations[np.ix_(places, places)].all()
    # The entrance joins the corners where trajectories begin: A (twice) and B.
    joined = {n for n in venue.graph.neighbors("entrance")}
    assert joined == {corner("A"), corner("B")}
    assert {n for n in venue.graph.neighbors("exit")} == {corner("C"), corner("E"), corner("D")}
    # The café's service comes from the visits (stays of 300 s), the shop's too.
    assert node["C"]["service_s"] == 300.0 and node["D"]["service_s"] == 300.0
    assert not built.warnings  # every theme maps
    assert built.scenario.avatars == 12 and built.scenario.shows == []
    assert built.scenario.opening.startswith("2024-05-04T10:00")


def test_an_unmapped_theme_is_a_booth_named_in_a_warning_and_kinds_override(
    tmp_path: Path,
) -> None:
    pois, visits = write(tmp_path, POIS.replace("Heritage", "Mystery"))
    built = build_venue(pois, [visits], log_columns=COLUMNS)
    assert built.venue.graph.nodes["B"]["kind"] == "booth"
    assert len(built.warnings) == 1 and "'Mystery'" in built.warnings[0]
    built = build_venue(pois, [visits], log_columns=COLUMNS, kinds={"Mystery": "stage"})
    assert built.venue.graph.nodes["B"]["kind"] == "stage" and not built.warnings
    assert kind_of_theme("Roller coaster", {}) == "ride"
    assert kind_of_theme("Railway Station", {}) == "hall"


@pytest.mark.parametrize(
    ("theme", "kind"),
    [
        # theme parks' ride categories, and what a park's table lists beside them
        *[(t, "ride") for t in ("Family", "Kids", "Kiddie", "Water", "Thrill", "Dark ride")],
        ("Parade", "stage"),
        ("Character meet", "booth"),
        ("Ice cream", "bar"),
        # museums, fairs, campuses and cities
        ("Art", "booth"),
        ("Science centre", "booth"),
        ("Pavilion", "booth"),
        ("Lecture room", "booth"),
        ("Lecture theatre", "stage"),
        ("Cafeteria", "bar"),
        ("Quad", "hall"),
        ("Historic site", "booth"),
        ("Waterfront", "hall"),
        ("Harbour", "hall"),
    ],
)
def test_the_words_of_parks_museums_fairs_campuses_and_cities_have_kinds(theme, kind):
    assert kind_of_theme(theme, {}) == kind


def test_x_y_in_metres_and_given_entrances(tmp_path: Path) -> None:
    table = "id,x,y\nA,0,0\nB,0,100\nC,100,100\nD,100,0\nE,50,50\n"
    pois, visits = write(tmp_path, table)
    built = build_venue(
        pois,
        [visits],
        log_columns=COLUMNS,
        poi_columns=PoiColumns(x="x", y="y"),
        entrances=["D"],
    )
    venue = built.venue
    assert venue.graph.edges[corner("A"), corner("E")]["length"] == pytest.approx(70.71, abs=0.01)
    assert set(venue.graph.neighbors("entrance")) == {corner("D")}


def test_a_places_only_log_is_read_with_an_entrance_before_and_an_exit_after(
    tmp_path: Path,
) -> None:
    pois, visits = write(tmp_path)
    venue = build_venue(pois, [visits], log_columns=COLUMNS).venue
    vocab = venue.vocabulary()
    seqs = encode(read_logs([visits], COLUMNS), vocab)
    names = np.array(vocab.names)
    for trajectory in seqs.trajectories():
        zones = names[trajectory]
        assert zones[0] == "entrance" and zones[-1] == "exit"
        assert "entrance" not in zones[1:] and "exit" not in zones[:-1]
    assert len(seqs) == 12 and seqs.n_visits == 12 * 2 + 3 * (3 + 2 + 3 + 3)
    # A twin's own log begins at its gates: read as it is.
    run = VenueModel(Scenario(venue="concert_hall", avatars=50, hours=1, policy="scripted"))
    own = run.run().visits()
    path = tmp_path / "own.csv"
    own.to_csv(path, index=False)
    hall = load_venue("concert_hall").vocabulary()
    frame = read_logs([path])
    assert encode(frame, hall).n_visits == int((~hall.passage[hall.lookup(frame["zone"])[0]]).sum())


BAD_TABLES = [
    (POIS.replace("lat;", "latt;"), "error", "no latitude column"),
    (POIS.replace("45.0009;7.0000", "95.0009;7.0000"), "error", "row 3, column 'lat'"),
    (POIS.replace("45.0009;7.0000", "north;7.0000"), "error", "'north' is not a latitude"),
    (POIS.replace("C;Noodle", "B;Noodle"), "error", "id 'B' is defined twice (rows 3, 4)"),
    (POIS.replace("E;Pond;45.00045;7.000635;Moon garden;\n", ""), "error", "'E'"),
    (POIS + "F;Hut;45.0002;7.0002;Shop;\n", "error", "1 POI(s) no visitor"),
    (POIS.replace(";4\n", ";-4\n"), "error", "not a positive duration (minutes)"),
]


@pytest.mark.parametrize(("table", "unvisited", "message"), BAD_TABLES)
def test_bad_tables_are_refused_by_file_and_column(
    tmp_path: Path, table: str, unvisited: str, message: str
) -> None:
    pois, visits = write(tmp_path, table)
    with pytest.raises(PoiError) as caught:
        build_venue(
            pois,
            [visits],
            log_columns=COLUMNS,
            poi_columns=PoiColumns(duration="ride_min"),
            unvisited=unvisited,
        )
    text = str(caught.value)
    assert message in text and ("pois.csv" in text or "visits.csv" in text), text


def test_unvisited_pois_are_kept_or_dropped_on_request(tmp_path: Path) -> None:
    pois, visits = write(tmp_path, POIS + "F;Hut;45.0002;7.0002;Shop;\n")
    kept = build_venue(pois, [visits], log_columns=COLUMNS, unvisited="keep").venue
    dropped = build_venue(pois, [visits], log_columns=COLUMNS, unvisited="drop").venue
    assert "F" in kept.zones and "F" not in dropped.zones


def test_the_command_writes_venue_and_scenario_or_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pois, visits = write(tmp_path)
    out = tmp_path / "park.json"
    args = ["venue", "from-pois", str(pois), "--visits", str(visits), "--id-col", "visitor"]
    args += ["--zone-col", "poi", "--duration-col", "ride_min"]
    assert cli.main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "5 places" in printed and "1 from the duration column" in printed
    venue = load_venue(out)
    assert venue.n_zones == 5 + 5 + 2
    scenario = Scenario.from_toml(tmp_path / "park.toml")
    assert scenario.venue == str(out) and scenario.shows == []
    kpis = VenueModel(scenario.replace(policy="scripted", avatars=40)).run().kpis()
    assert kpis["avatars"] == 40 and kpis["inside_at_end"] < 40
    # Bad input: one line naming the file and the field, status 2, nothing written.
    bad = tmp_path / "bad.csv"
    bad.write_text(POIS.replace("45.0009;7.0000", "45.0009;200"))
    out2 = tmp_path / "bad.json"
    assert cli.main([*args[:2], str(bad), *args[3:], "--out", str(out2)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.csv: row 3, column 'lon'" in err
    assert not out2.exists() and not (tmp_path / "bad.toml").exists()
    assert cli.main([*args, "--out", str(tmp_path)]) == 2  # a folder
    assert "--out" in capsys.readouterr().err
    for table, _, message in BAD_TABLES:
        bad.write_text(table)
        assert cli.main([*args[:2], str(bad), *args[3:], "--out", str(out2)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and message in err and not out2.exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("city", "tz"), [("toronto", "America/Toronto"), ("melbourne", "Australia/Melbourne")]
)
def test_the_worked_example_runs_from_pois_to_validate(tmp_path: Path, city: str, tz: str) -> None:
    """README's four commands on a shipped city sample (a short training), then the twin
    against the held-out visitors."""
    log = [*TORONTO[:-1], tz]
    venue, model = tmp_path / f"{city}.json", tmp_path / "model"
    pois, train, test = (EXAMPLES / f"{city}-{p}.csv" for p in ("pois", "train", "test"))
    assert (
        cli.main(
            ["venue", "from-pois", str(pois), "--visits", str(train), *log]
            + ["--unvisited", "keep", "--out", str(venue)]
        )
        == 0
    )
    assert (
        cli.main(
            ["train", str(train), "--venue", str(venue), *log, "--out", str(model)]
            + ["--max-steps", "150", "--quiet"]
        )
        == 0
    )
    run = tmp_path / "run"
    ckpt = str(model / "model.safetensors")
    scenario = str(tmp_path / f"{city}.toml")
    simulate = ["simulate", scenario, "--model", ckpt, "--avatars", "300", "--quiet"]
    assert cli.main([*simulate, "--out", str(run)]) == 0
    visits = pd.read_parquet(run / "visits.parquet")
    kinds = dict(zip(load_venue(venue).zones, load_venue(venue).kinds, strict=True))
    assert set(visits["zone"]) <= set(kinds)
    assert visits.groupby("avatar_id")["zone"].first().map(kinds).eq("entrance").all()
    report_path = tmp_path / "report.json"
    validate_ = ["validate", "--venue", str(venue), "--model", ckpt, "--reference", str(test)]
    validate_ += [*log, "--avatars", "600", "--seeds", "1", "--quiet", "--json", str(report_path)]
    assert cli.main(validate_) == 0
    report = json.loads(report_path.read_text())
    # Far nearer the held-out visitors than uniform choice over the places (0.14 Toronto,
    # 0.23 Melbourne on the full logs).
    assert report["zone_share_js"]["distance"] < 0.10
    assert report["hour_share_js"]["distance"] < 0.05
    assert report["visits_per_avatar"]["rel_error"] == pytest.approx(0.0, abs=0.35)


def test_rides_queue_and_a_real_place_has_no_invented_shows(tmp_path: Path) -> None:
    """A booth that states servers serves through a queue (a ride); one with servers but
    no service time is refused; the venue's own (empty) programme replaces the default."""
    pois, visits = write(tmp_path)
    venue = build_venue(pois, [visits], log_columns=COLUMNS).venue
    data = venue.to_json()
    for node in data["nodes"]:
        if node["id"] == "A":
            del node["service_s"]
    with pytest.raises(VenueError, match="zone 'A': a booth with a queue needs both"):
        venue_from_json(data, "park.json")
    venue.graph.nodes["B"]["kind"] = "stage"
    assert Scenario(venue=venue).programme(venue) == []
    assert Scenario(venue="concert_hall").programme(load_venue("concert_hall"))


def test_validate_runs_markov_avatars_beside_the_gpt(tmp_path: Path) -> None:
    """``validate(policy="markov")``: the twin's avatars are a chain fitted on the
    scenario's logs, scored against the log like the GPT's."""
    pois, visits = write(tmp_path)
    venue_path = tmp_path / "park.json"
    build_venue(pois, [visits], log_columns=COLUMNS).venue.save(venue_path)
    frame = read_logs([visits], COLUMNS)
    canonical = tmp_path / "canonical.csv"
    frame[["trajectory", "timestamp", "zone"]].rename(columns={"trajectory": "avatar_id"}).to_csv(
        canonical, index=False
    )
    report = validate(
        str(venue_path),
        policy="markov",
        scenario=Scenario(markov_logs=[str(canonical)]),
        reference=[str(visits)],
        columns=COLUMNS,
        avatars=200,
        seeds=1,
    )
    assert report["policy"] == "markov" and report["model"] is None
    # The chain learnt 2.75 places per trajectory and the twin's visitors make about that.
    assert report["visits_per_avatar"]["reference"] == pytest.approx(2.75)
    assert report["visits_per_avatar"]["twin"] == pytest.approx(2.75, rel=0.2)
    assert report["zone_share_js"]["distance"] < 0.05
