"""Reading visit logs and turning them into model inputs (``llm.data``, ``llm.vocab``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from llm.data import blocks, encode, split
from llm.features import (
    N_CROWD,
    dwell_bucket,
    option_state,
    stay_bucket,
    tod_bucket,
    wait_level,
    zone_crowd,
)
from llm.logs import Columns, LogError, check_zones, read_logs
from llm.logschema import write_visits
from llm.vocab import UNKNOWN_ZONE, ZoneVocab
from twin import Levers, Scenario, VenueModel, load_venue

T0 = pd.Timestamp("2026-06-06T18:00:00")


# ============================================================================ helpers
@pytest.fixture(scope="module")
def twin_visits() -> pd.DataFrame:
    """A small concert: 300 avatars for an hour (about 1,600 visits)."""
    return (
        VenueModel(
            Scenario(venue="concert_hall", avatars=300, hours=1.0, seed=1, policy="scripted")
        )
        .run()
        .visits()
    )


def venue_vocab(name: str) -> ZoneVocab:
    return load_venue(name).vocabulary()


def write_csv(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def log_frame(rows: list[tuple], **extra: list) -> pd.DataFrame:
    """A log from (avatar, seconds after T0, zone) rows, ISO-8601 timestamps."""
    frame = pd.DataFrame(
        {
            "avatar_id": [r[0] for r in rows],
            "timestamp": [(T0 + pd.Timedelta(seconds=r[1])).isoformat() for r in rows],
            "zone": [r[2] for r in rows],
        }
    )
    for name, values in extra.items():
        frame[name] = values
    return frame


def read_frame(tmp_path, frame: pd.DataFrame, name: str = "log.csv") -> pd.DataFrame:
    path = tmp_path / name
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return read_logs([path])


def by_avatar(frame: pd.DataFrame, column: str) -> dict[str, list]:
    return {str(a): list(g[column]) for a, g in frame.groupby(frame["avatar_id"].astype(str))}


# ============================================================================ the twin's logs
@pytest.mark.parametrize("name", ["visits.parquet", "visits.csv"])
def test_the_twins_logs_read_back_as_written(tmp_path, twin_visits, name):
    path = write_visits(twin_visits, tmp_path / name)
    read = read_logs([path])
    assert len(read) == len(twin_visits)
    assert read["trajectory"].nunique() == twin_visits["avatar_id"].nunique() == 300
    written = twin_visits.sort_values(["avatar_id", "timestamp"])
    # Every avatar's trajectory: the same zones in the same order, the same dwell and
    # occupancy, the same zone kinds.
    for column in ("zone", "occupancy", "zone_kind"):
        assert by_avatar(read, column) == by_avatar(written, column), column
    w_dwell, r_dwell = by_avatar(written, "dwell_s"), by_avatar(read, "dwell_s")
    assert all(np.allclose(r_dwell[a], w_dwell[a], atol=1e-9) for a in w_dwell)
    # Timestamps survive (CSV keeps microseconds), so do the time features.
    tolerance = pd.Timedelta(0) if name.endswith(".parquet") else pd.Timedelta("1us")
    w_time, r_time = by_avatar(written, "timestamp"), by_avatar(read, "timestamp")
    worst = max(abs(r - w) for a in w_time for r, w in zip(r_time[a], w_time[a], strict=True))
    assert worst <= tolerance
    first = read.groupby("trajectory")["timestamp"].transform("min")
    assert np.allclose(read["since_arrival_s"], (read["timestamp"] - first).dt.total_seconds())
    assert (read["since_arrival_s"] >= 0).all()
    # The concert opens at 18:00: every visit is between 18:00 and 19:00 (plus leaving).
    assert read["seconds_of_day"].min() >= 18 * 3600
    assert read["seconds_of_day"].max() < 20 * 3600
    assert set(read["run_id"]) == {"0:default-s1"}  # prefixed with the file's index


def test_the_twins_moves_are_legal_in_its_venue(twin_visits, tmp_path):
    """simulate -> train closes: the twin's log fits the venue's vocabulary and every move
    it logs is one the venue allows (else the next-zone loss would be infinite)."""
    read = read_logs([write_visits(twin_visits, tmp_path / "v.parquet")])
    vocab = venue_vocab("concert_hall")
    check_zones(read, vocab, "v.parquet", "concert_hall")
    seqs = encode(read, vocab)
    corridors = read["zone"].map(dict(zip(vocab.names, vocab.kinds, strict=True))) == "corridor"
    assert 0 < corridors.sum() < len(read)  # the hall's corridors are walked through ...
    assert seqs.n_visits == (~corridors).sum() and len(seqs) == 300  # ... and are no token
    assert not vocab.passage[seqs.features["zone"]].any()
    for zones in seqs.trajectories():
        assert vocab.destinations[zones[:-1], zones[1:]].all()
        assert vocab.kinds[zones[0]] == "entrance"


def test_destinations_are_moves_or_walks_through_corridors_only():
    """The model's choices from a zone: the places one move away, or beyond corridors."""
    vocab = venue_vocab("concert_hall")
    at = vocab.index
    dest = vocab.destinations
    # foyer -> corridor_west -> main_hall / restrooms_west / hall_bar: one choice each.
    for place in ("main_hall", "restrooms_west", "hall_bar", "restrooms_east", "foyer_bar"):
        assert dest[at["foyer"], at[place]]
    assert not dest[:, at["corridor_west"]].any()  # a corridor is never a destination
    # Never through another place: from the gate, the foyer (a hall) comes first.
    assert not dest[at["gate_main"], at["main_hall"]]
    assert dest[at["gate_main"], at["foyer"]]
    assert dest[at["foyer"], at["foyer"]]  # out to a corridor and back is a visit again


def test_two_runs_with_the_same_run_id_stay_apart(tmp_path, twin_visits):
    other = Scenario(
        venue="concert_hall",
        avatars=300,
        hours=1.0,
        seed=1,
        levers=Levers(capacity_caps={"merch": 5}),
    )
    b = VenueModel(other).run().visits()
    assert set(b["run_id"]) == set(twin_visits["run_id"])  # same scenario name and seed
    a_path = write_visits(twin_visits, tmp_path / "a.parquet")
    b_path = write_visits(b, tmp_path / "b.parquet")
    vocab = venue_vocab("concert_hall")
    alone = encode(read_logs([a_path]), vocab)
    both = encode(read_logs([a_path, b_path]), vocab)
    assert len(both) == 600
    # Crowd levels of the first run must not count the second run's visitors.
    np.testing.assert_array_equal(both.options[: alone.n_visits], alone.options)


# ============================================================================ columns
def test_other_column_names_read_with_a_mapping(tmp_path):
    path = write_csv(
        tmp_path,
        "ext.csv",
        "visitor,ts,room\nv1,2026-06-06T18:00:00,gate\nv1,2026-06-06T18:05:00,hall\n"
        "v2,2026-06-06T18:01:00,gate\n",
    )
    read = read_logs([path], Columns("visitor", "ts", "room"))
    assert list(read["avatar_id"]) == ["v1", "v1", "v2"]
    assert list(read["zone"]) == ["gate", "hall", "gate"]
    assert list(read["dwell_s"]) == [0.0, 0.0, 0.0]  # one timestamp a visit: no stay known


@pytest.mark.parametrize(
    ("columns", "missing", "flag"),
    [
        (Columns(timestamp="ts", zone="room"), "avatar_id", "--id-col"),
        (Columns(avatar_id="visitor", zone="room"), "timestamp", "--time-col"),
        (Columns(avatar_id="visitor", timestamp="ts"), "zone", "--zone-col"),
    ],
)
def test_a_missing_column_names_the_column_and_the_flag(tmp_path, columns, missing, flag):
    path = write_csv(tmp_path, "ext.csv", "visitor,ts,room\nv1,2026-06-06T18:00:00,gate\n")
    with pytest.raises(LogError) as err:
        read_logs([path], columns)
    message = str(err.value)
    assert str(path) in message
    assert f"column {missing!r} is missing" in message
    assert flag in message
    assert "visitor, ts, room" in message  # the columns it does have


# ============================================================================ timestamps
EPOCH_18H = int(pd.Timestamp("2026-06-06T18:00:00", tz="UTC").timestamp())
OFFSETS_S = [300, 0, 45, 3600 + 7]  # given out of order; avatar a at 0, 45, 300, 3607 s
ZONES = ["c", "a", "b", "d"]


def _stamps(style: str) -> list:
    if style == "unix_s":
        return [EPOCH_18H + s for s in OFFSETS_S]
    if style == "unix_ms":
        return [(EPOCH_18H + s) * 1000 for s in OFFSETS_S]
    fmt = {"iso": "", "iso_z": "Z", "iso_offset": "+02:00", "iso_space": ""}[style]
    sep = " " if style == "iso_space" else "T"
    return [(T0 + pd.Timedelta(seconds=s)).isoformat(sep=sep) + fmt for s in OFFSETS_S]


@pytest.mark.parametrize("style", ["unix_s", "unix_ms", "iso", "iso_z", "iso_offset", "iso_space"])
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_timestamp_styles_give_the_same_times(tmp_path, style, suffix):
    frame = pd.DataFrame({"avatar_id": 7, "timestamp": _stamps(style), "zone": ZONES})
    read = read_frame(tmp_path, frame, "log" + suffix)
    # Sorted by time; an offset keeps the local wall-clock time (18:00 at the venue).
    assert list(read["zone"]) == ["a", "b", "c", "d"]
    assert list(read["row"]) == [2, 3, 1, 4]  # rows in the file, 1-based
    assert read["seconds_of_day"].tolist() == [64800.0, 64845.0, 65100.0, 68407.0]
    assert read["since_arrival_s"].tolist() == [0.0, 45.0, 300.0, 3607.0]
    assert read["dwell_s"].tolist() == [0.0, 0.0, 0.0, 0.0]


def test_native_parquet_datetimes_are_used_as_they_are(tmp_path):
    frame = pd.DataFrame(
        {
            "avatar_id": [1, 1],
            "timestamp": pd.to_datetime(["2026-06-06 18:00:00", "2026-06-06 18:00:30"]),
            "zone": ["a", "b"],
        }
    )
    read = read_frame(tmp_path, frame, "log.parquet")
    assert read["seconds_of_day"].tolist() == [64800.0, 64830.0]


def test_iso_timestamps_across_a_daylight_saving_change(tmp_path):
    path = write_csv(
        tmp_path,
        "dst.csv",
        "avatar_id,timestamp,zone\n1,2026-03-29T01:30:00+01:00,a\n1,2026-03-29T03:30:00+02:00,b\n",
    )
    read = read_logs([path])
    assert read["seconds_of_day"].tolist() == [5400.0, 12600.0]  # local wall-clock


# ============================================================================ derived columns
def test_dwell_is_the_span_of_a_visits_own_rows(tmp_path):
    """Without a stated dwell, a visit lasts from its first row to its last (consecutive
    rows at one zone are one visit), never until the next visit: that holds the walk there
    and is not known when the visitor chooses it (``llm.causal``)."""
    rows = [(1, 0, "gate"), (2, 10, "gate"), (1, 30, "gate"), (1, 60, "hall"), (1, 100, "hall")]
    rows += [(2, 70, "bar"), (1, 180, "out")]
    read = read_frame(tmp_path, log_frame(rows))
    assert by_avatar(read, "zone") == {"1": ["gate", "hall", "out"], "2": ["gate", "bar"]}
    assert by_avatar(read, "dwell_s") == {"1": [30.0, 40.0, 0.0], "2": [0.0, 0.0]}
    assert by_avatar(read, "row") == {"1": [1, 4, 7], "2": [2, 6]}  # a visit's first row


def test_given_dwell_is_kept_and_blank_cells_are_no_stay(tmp_path):
    rows = [(1, 0, "gate"), (1, 60, "hall"), (1, 180, "out")]
    read = read_frame(tmp_path, log_frame(rows, dwell_s=[12.5, None, 4.0]))
    assert read["dwell_s"].tolist() == [12.5, 0.0, 4.0]


def test_a_burst_with_stated_dwells_lasts_until_its_last_row_ends(tmp_path):
    rows = [(1, 0, "hall"), (1, 40, "hall"), (1, 100, "bar")]
    read = read_frame(tmp_path, log_frame(rows, dwell_s=[30.0, 50.0, 5.0]))
    assert read["zone"].tolist() == ["hall", "bar"]
    assert read["dwell_s"].tolist() == [90.0, 5.0]


def test_occupancy_is_derived_from_overlapping_visits(tmp_path):
    # Hall visits: A [0, 100], B [50, 150], C [100, 200], D [300, 310]; a bar visit by C.
    rows = [
        ("A", 0, "hall"),
        ("A", 100, "out"),
        ("B", 50, "hall"),
        ("B", 150, "out"),
        ("C", 100, "hall"),
        ("C", 200, "bar"),
        ("C", 260, "out"),
        ("D", 300, "hall"),
        ("D", 310, "out"),
    ]
    dwell = [100.0, 0.0, 100.0, 0.0, 100.0, 60.0, 0.0, 10.0, 0.0]
    read = read_frame(tmp_path, log_frame(rows, dwell_s=dwell))
    occupancy = {(r.avatar_id, r.zone): r.occupancy for r in read.itertuples()}
    # On entry: A alone; B with A; C with A (leaving that moment) and B; D alone again.
    assert occupancy[("A", "hall")] == 1
    assert occupancy[("B", "hall")] == 2
    assert occupancy[("C", "hall")] == 3
    assert occupancy[("D", "hall")] == 1
    assert occupancy[("C", "bar")] == 1
    assert all(occupancy[(a, "out")] == 1 for a in "ABCD")  # never below the visitor itself


def test_given_occupancy_is_kept(tmp_path):
    rows = [(1, 0, "gate"), (1, 60, "hall")]
    read = read_frame(tmp_path, log_frame(rows, occupancy=[40, 7]), "log.parquet")
    assert read["occupancy"].tolist() == [40, 7]


# ============================================================================ errors
HEADER = "avatar_id,timestamp,zone"


def _error(tmp_path, name: str, content: str | bytes, columns: Columns = Columns()) -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(LogError) as err:
        read_logs([path], columns)
    message = str(err.value)
    assert str(path) in message
    return message


def test_an_unreadable_timestamp_names_its_row_and_column(tmp_path):
    text = f"{HEADER}\n1,2026-06-06T18:00:00,a\n1,2026-06-06T18:01:00,b\n1,half past six,c\n"
    message = _error(tmp_path, "log.csv", text)
    assert "row 3, column 'timestamp'" in message
    assert "'half past six'" in message
    text = "who,when,where\n1,2026-06-06T18:00:00,a\n1,noon,b\n"
    message = _error(tmp_path, "mapped.csv", text, Columns("who", "when", "where"))
    assert "row 2, column 'when'" in message


def test_a_bad_cell_among_unix_seconds_names_its_row(tmp_path):
    text = f"{HEADER}\n1,1780768800,a\n1,1780768860,b\n1,oops,c\n"
    message = _error(tmp_path, "log.csv", text)
    assert "row 3, column 'timestamp'" in message


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("header_only.csv", f"{HEADER}\n", "the log is empty"),
        ("zero.csv", b"", "the log is empty"),
        ("zero.parquet", b"", "not a readable Parquet table"),
        ("noise.parquet", bytes(range(256)) * 4, "not a readable Parquet table"),
        ("ragged.csv", f"{HEADER}\n1,2026-06-06T18:00:00,a\n1,2,3,4,5\n", "not a readable CSV"),
        ("quote.csv", f'{HEADER}\n1,"2026-06-06T18:00:00,a\n', "not a readable CSV table"),
        ("binary.csv", bytes([0xFF, 0xFE, 0x00, 0x81]) * 64, "not a readable CSV table"),
        ("log.json", '{"avatar_id": 1}', "expected a .csv or .parquet file"),
        ("blank_zone.csv", f"{HEADER}\n1,2026-06-06T18:00:00,a\n2,2026-06-06T18:00:00,\n", "row 2"),
    ],
)
def test_unusable_files_are_refused_naming_the_file(tmp_path, name, content, expected):
    assert expected in _error(tmp_path, name, content)


def test_a_negative_dwell_names_its_file_row(tmp_path):
    # Row 3 of the file is avatar 1's first visit once sorted: the row is the file's.
    text = (
        "avatar_id,timestamp,zone,dwell_s\n2,2026-06-06T18:00:00,a,5\n"
        "1,2026-06-06T18:10:00,b,3\n1,2026-06-06T18:00:00,a,-4\n"
    )
    message = _error(tmp_path, "log.csv", text)
    assert "row 3, column 'dwell_s'" in message
    assert "-4" in message


def test_a_negative_occupancy_is_refused(tmp_path):
    text = f"{HEADER},occupancy\n1,2026-06-06T18:00:00,a,3\n1,2026-06-06T18:01:00,b,-1\n"
    assert "row 2, column 'occupancy'" in _error(tmp_path, "log.csv", text)


def test_missing_files_folders_and_no_files_are_refused(tmp_path):
    with pytest.raises(LogError, match="no such file") as err:
        read_logs([tmp_path / "nope.csv"])
    assert "nope.csv" in str(err.value)
    with pytest.raises(LogError, match="is a folder"):
        read_logs([tmp_path])
    with pytest.raises(LogError, match="no visit logs"):
        read_logs([])


def test_trailing_commas_do_not_shift_columns(tmp_path):
    path = write_csv(
        tmp_path, "t.csv", f"{HEADER}\n1,2026-06-06T18:00:00,a,\n1,2026-06-06T18:01:00,b,\n"
    )
    read = read_logs([path])
    assert list(read["zone"]) == ["a", "b"]


def test_check_zones_names_the_first_unknown_zone(tmp_path, twin_visits):
    frame = twin_visits.copy()
    frame["zone"] = frame["zone"].astype(object)
    frame.loc[5, "zone"] = "vip_deck"
    frame.loc[9, "zone"] = "roof"
    path = write_visits(frame, tmp_path / "v.parquet")
    read = read_logs([path])
    with pytest.raises(LogError) as err:
        check_zones(read, venue_vocab("concert_hall"), str(path), "concert_hall")
    message = str(err.value)
    assert str(path) in message
    assert "row 6, column 'zone'" in message  # frame row 5 is the file's 6th data row
    assert "'vip_deck'" in message and "'concert_hall'" in message


def test_split_refuses_a_single_avatar(tmp_path):
    read = read_frame(tmp_path, log_frame([(1, 0, "a"), (1, 60, "b"), (1, 90, "c")]))
    seqs = encode(read, ZoneVocab.from_log(read))
    with pytest.raises(LogError, match="1 visitor: need at least 2"):
        split(seqs)


# ============================================================================ vocabulary
def test_vocab_from_log_infers_kinds_and_observed_moves(tmp_path):
    rows = [
        (1, 0, "west_gate"),
        (1, 10, "hall"),
        (1, 20, "bar"),
        (1, 30, "hall"),
        (1, 40, "exit"),
        (2, 0, "east_gate"),
        (2, 10, "hall"),
        (2, 20, "exit"),
        (3, 0, "west_gate"),
        (3, 10, "bar"),
    ]
    read = read_frame(tmp_path, log_frame(rows))
    vocab = ZoneVocab.from_log(read, min_visitors=1)
    assert vocab.names == ("bar", "east_gate", "exit", "hall", "west_gate", UNKNOWN_ZONE)
    # Gates only start trajectories, "exit" only ends them; "bar" ends one (avatar 3) but
    # is also visited mid-way, yet never starts one: it counts as an exit.
    assert dict(zip(vocab.names, vocab.kinds, strict=True)) == {
        "bar": "exit",
        "east_gate": "entrance",
        "exit": "exit",
        "hall": "hall",
        "west_gate": "entrance",
        UNKNOWN_ZONE: "hall",
    }
    # A log shows moves, not which are impossible: any place may follow another.
    expected = ~np.eye(6, dtype=bool)
    expected[5, 5] = True  # two unseen zones in a row
    np.testing.assert_array_equal(vocab.legal, expected)
    assert (vocab.area >= 1.0).all()
    assert vocab.source == "log"
    # Zones fewer than two visitors went to are unseen by default.
    common = ZoneVocab.from_log(read)
    assert common.names == ("bar", "exit", "hall", "west_gate", UNKNOWN_ZONE)
    zone, known = common.lookup(pd.Series(["east_gate", "hall", "roof"]))
    assert zone.tolist() == [4, 2, 4] and known.tolist() == [False, True, False]


def test_vocab_from_log_takes_kinds_from_zone_kind(tmp_path):
    rows = [(1, 0, "g"), (1, 10, "s"), (1, 20, "x"), (2, 0, "g"), (2, 5, "x")]
    kinds = ["entrance", "stage", "exit", "entrance", "exit"]
    read = read_frame(tmp_path, log_frame(rows, zone_kind=kinds))
    assert ZoneVocab.from_log(read, min_visitors=1).kinds == ("entrance", "stage", "exit", "hall")


def test_vocab_json_round_trip():
    for vocab in (venue_vocab("expo"), venue_vocab("concert_hall")):
        again = ZoneVocab.from_json(json.loads(vocab.dumps()))
        assert again == vocab
        assert again.source == vocab.source
        assert again.index == vocab.index
    expo = venue_vocab("expo")
    assert len(expo) == 37 and expo.legal.sum() > 0
    assert expo != venue_vocab("concert_hall")


def test_log_vocab_json_round_trip_keeps_areas_and_crowd_levels(twin_visits, tmp_path):
    read = read_logs([write_visits(twin_visits, tmp_path / "v.parquet")])
    vocab = ZoneVocab.from_log(read)
    again = ZoneVocab.from_json(json.loads(vocab.dumps()))
    assert (again.names, again.kinds) == (vocab.names, vocab.kinds)
    np.testing.assert_array_equal(again.legal, vocab.legal)
    np.testing.assert_array_equal(
        encode(read, again).features["crowd"], encode(read, vocab).features["crowd"]
    )
    assert again == vocab


# ============================================================================ encode, split
def test_split_is_by_trajectory_and_deterministic(twin_visits, tmp_path):
    read = read_logs([write_visits(twin_visits, tmp_path / "v.parquet")])
    seqs = encode(read, venue_vocab("concert_hall"))
    train, val, test = split(seqs, seed=3)
    assert (len(train), len(val), len(test)) == (240, 30, 30)
    keys = [set(part.keys) for part in (train, val, test)]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    assert keys[0] | keys[1] | keys[2] == set(seqs.keys)
    assert train.n_visits + val.n_visits + test.n_visits == seqs.n_visits
    # A trajectory keeps all its visits, in order.
    whole = dict(zip(seqs.keys, seqs.trajectories(), strict=True))
    for part in (train, val, test):
        for key, zones in zip(part.keys, part.trajectories(), strict=True):
            np.testing.assert_array_equal(zones, whole[key])
    again = split(seqs, seed=3)
    assert all(list(a.keys) == list(b.keys) for a, b in zip(again, (train, val, test), strict=True))
    assert list(split(seqs, seed=4)[2].keys) != list(test.keys)


def test_split_of_three_avatars_fills_every_part(tmp_path):
    rows = [(a, t, z) for a in (1, 2, 3) for t, z in ((0, "g"), (10, "x"))]
    read = read_frame(tmp_path, log_frame(rows))
    parts = split(encode(read, ZoneVocab.from_log(read)))
    assert [len(p) for p in parts] == [1, 1, 1]
    assert len({p.keys[0] for p in parts}) == 3


def test_encode_features_follow_the_visits(tmp_path):
    rows = [(1, 0, "g"), (1, 40, "s"), (1, 2000, "x"), (2, 3600, "g"), (2, 3610, "x")]
    dwell = [40.0, 1960.0, 0.0, 10.0, 0.0]
    read = read_frame(tmp_path, log_frame(rows, occupancy=[1, 30, 1, 1, 1], dwell_s=dwell))
    vocab = ZoneVocab.from_venue(
        ["g", "s", "x"], ["entrance", "stage", "exit"], [10.0, 50.0, 10.0], np.ones((3, 3))
    )
    seqs = encode(read, vocab)
    f = seqs.features
    assert f["zone"].tolist() == [0, 1, 2, 0, 2]
    assert f["kind"].tolist() == [0, 4, 1, 0, 1]
    assert f["tod"].tolist() == tod_bucket(np.array([64800, 64840, 66800, 68400, 68410])).tolist()
    # 18:00 is the 216th five-minute bucket of the day.
    assert f["tod"].tolist() == [216, 216, 222, 228, 228]
    assert f["stay"].tolist() == stay_bucket(np.array([0, 40, 2000, 0, 10])).tolist()
    assert f["crowd"].tolist() == [0, 2, 0, 0, 0]  # 30 persons on 50 m2 is level C
    assert f["dwell"].tolist() == dwell_bucket(np.array([40, 1960, 0, 10, 0])).tolist()
    # The clock when each visit ended: 18:00:00 + 40 s, 18:00:40 + 1960 s = 18:33:20, ...
    assert f["end_tod"].tolist() == [216, 222, 222, 228, 228]
    assert seqs.offsets.tolist() == [0, 3, 5]


@pytest.mark.parametrize(("others", "level"), [(2, 0), (4, 1), (8, 3), (20, 4)])
def test_options_counts_visits_overlapping_the_decision(tmp_path, others, level):
    """Avatar 0 leaves the foyer at t=50 and chooses: the stage (10 m2) then holds the
    ``others`` visitors there at that moment, plus one who left before and one who came
    after (neither counts)."""
    rows = [(0, 0, "foyer"), (0, 50, "exit")]
    dwell = [50.0, 0.0]
    for a in range(1, others + 1):
        rows += [(a, 10, "stage"), (a, 100, "exit")]
        dwell += [90.0, 0.0]
    rows += [(90, 0, "stage"), (90, 40, "exit"), (91, 60, "stage"), (91, 90, "exit")]
    dwell += [40.0, 0.0, 30.0, 0.0]
    read = read_frame(tmp_path, log_frame(rows, dwell_s=dwell))
    vocab = ZoneVocab.from_venue(
        ["exit", "foyer", "stage"], ["exit", "hall", "stage"], [5.0, 1000.0, 10.0], np.ones((3, 3))
    )
    seqs = encode(read, vocab)
    decision = int(np.flatnonzero(seqs.keys == "0:log.csv/0")[0])
    at = seqs.offsets[decision]  # avatar 0's foyer visit
    assert seqs.features["zone"][at] == 1
    expected = zone_crowd(np.array([others]), np.array([10.0]))[0]
    assert expected == level
    assert seqs.options[at, 2] == level
    assert seqs.options[at, 1] == 0  # the foyer: avatar 0 alone on 1000 m2
    assert seqs.options.shape == (seqs.n_visits, 3)


@pytest.mark.parametrize(("decide_at", "wait_level_seen"), [(50, 5), (400, 3), (500, 0)])
def test_options_show_the_queue_wait_a_newcomer_would_have(tmp_path, decide_at, wait_level_seen):
    """A bar where the last of three visitors queued from t=20 until t=520: avatar 0,
    choosing at ``decide_at``, sees the wait until then (470 s: level 5, < 15 min; 120 s:
    level 3, < 3 min; 20 s is none). Visitors who join after the decision do not count."""
    rows = [(0, 0, "foyer"), (0, decide_at, "exit")]
    dwell, wait = [float(decide_at), 0.0], [0.0, 0.0]
    for a, (t, w) in enumerate([(0, 100.0), (10, 300.0), (20, 500.0), (600, 900.0)], start=1):
        rows += [(a, t, "bar"), (a, t + w + 60, "exit")]
        dwell += [w + 60, 0.0]
        wait += [w, 0.0]
    read = read_frame(tmp_path, log_frame(rows, dwell_s=dwell, wait_s=wait))
    vocab = ZoneVocab.from_venue(
        ["bar", "exit", "foyer"], ["bar", "exit", "hall"], [500.0, 5.0, 1000.0], np.ones((3, 3))
    )
    seqs = encode(read, vocab)
    at = seqs.offsets[int(np.flatnonzero(seqs.keys == "0:log.csv/0")[0])]
    assert seqs.options[at, 0] == option_state(np.array(0), np.array(520.0 - decide_at))
    assert seqs.options[at, 0] // N_CROWD == wait_level_seen
    assert seqs.options[at, 0] % N_CROWD == 0  # a handful on 500 m2: crowd level A


def test_a_wait_longer_than_the_visit_is_refused_by_row(tmp_path):
    frame = log_frame([(1, 0, "bar"), (1, 60, "exit")], dwell_s=[60.0, 0.0], wait_s=[90.0, 0.0])
    with pytest.raises(LogError, match=r"row 1, column 'wait_s': 90.0"):
        read_frame(tmp_path, frame)


@pytest.mark.parametrize("bad", [-5.0, 90.0, "soon"])
def test_a_wait_to_leave_outside_the_visit_is_refused_by_row(tmp_path, bad):
    frame = log_frame(
        [(1, 0, "bar"), (1, 60, "exit")], dwell_s=[60.0, 0.0], leave_wait_s=[bad, 0.0]
    )
    with pytest.raises(LogError, match=rf"log.csv: row 1, column 'leave_wait_s': {bad!r}"):
        read_frame(tmp_path, frame)


def test_a_token_is_what_the_visitor_knew_when_choosing(tmp_path):
    """A visit of 600 s whose last 240 s were spent waiting to leave (a door's queue):
    its token holds the 360 s stay and the clock at the choice, and the venue as it was
    then (the bar's queue had cleared by the time the visitor got out)."""
    rows = [(0, 0, "foyer"), (0, 600, "exit"), (1, 0, "bar"), (1, 500, "exit")]
    read = read_frame(
        tmp_path,
        log_frame(
            rows,
            dwell_s=[600.0, 0.0, 500.0, 0.0],
            wait_s=[0.0, 0.0, 450.0, 0.0],
            leave_wait_s=[240.0, 0.0, 0.0, 0.0],
        ),
    )
    vocab = ZoneVocab.from_venue(
        ["bar", "exit", "foyer"], ["bar", "exit", "hall"], [500.0, 5.0, 1000.0], np.ones((3, 3))
    )
    seqs = encode(read, vocab)
    at = seqs.offsets[int(np.flatnonzero(seqs.keys == "0:log.csv/0")[0])]
    assert seqs.dwell_s[at] == 360.0
    assert seqs.features["dwell"][at] == dwell_bucket(np.array(360.0))
    start = read.loc[read["avatar_id"] == "0", "seconds_of_day"].iloc[0]
    assert seqs.features["end_tod"][at] == tod_bucket(np.array(start + 360.0))
    assert seqs.options[at, 0] // N_CROWD == wait_level(np.array(450.0 - 360.0))  # not 0


# ============================================================================ blocks
def _long_and_short(tmp_path):
    """One 20-visit trajectory through 20 distinct zones and one of 3 visits."""
    rows = [(1, 30 * i, f"z{i:02d}") for i in range(20)]
    rows += [(2, 7 * i, f"s{i}") for i in range(3)]
    read = read_frame(tmp_path, log_frame(rows))
    vocab = ZoneVocab.from_log(read, min_visitors=1)
    return encode(read, vocab), vocab


@pytest.mark.parametrize("block_size", [1, 3, 7, 8, 32])
def test_blocks_count_every_target_once(tmp_path, block_size):
    seqs, vocab = _long_and_short(tmp_path)
    data = blocks(seqs, block_size)
    zone, target = data["zone"].numpy(), data["next_zone"].numpy()
    n_windows = zone.shape[0]
    assert zone.shape == (n_windows, block_size)
    assert data["options"].shape == (n_windows, block_size, len(vocab))
    dwell_of = dict(
        zip(seqs.features["zone"].tolist(), seqs.features["dwell"].tolist(), strict=True)
    )
    seen: dict[tuple[str, str], int] = {}
    for w in range(n_windows):
        length = int(data["length"][w])
        assert 1 <= length <= block_size
        assert (target[w, length:] == -1).all() and (data["next_dwell"][w, length:] == -1).all()
        for p in np.flatnonzero(target[w] >= 0):
            assert p < length
            pair = (vocab.names[zone[w, p]], vocab.names[target[w, p]])
            seen[pair] = seen.get(pair, 0) + 1
            assert data["next_dwell"][w, p] == dwell_of[target[w, p]]  # the next visit's
    expected = {(f"z{i:02d}", f"z{i + 1:02d}") for i in range(19)} | {("s0", "s1"), ("s1", "s2")}
    assert set(seen) == expected  # targets are the next visit's zone
    assert all(count == 1 for count in seen.values())  # each exactly once


def test_blocks_of_a_long_trajectory_overlap_by_half(tmp_path):
    seqs, vocab = _long_and_short(tmp_path)
    data = blocks(seqs, 8)
    first_zone = [vocab.names[z] for z in data["zone"][:, 0].tolist()]
    # Windows of the long trajectory start every 4 visits until one reaches its end.
    assert first_zone == ["z00", "z04", "z08", "z12", "s0"]
    assert data["length"].tolist() == [8, 8, 8, 8, 3]
    # Window contents are the trajectory's visits with their crowd options.
    np.testing.assert_array_equal(data["zone"][2].numpy(), seqs.features["zone"][8:16])
    np.testing.assert_array_equal(data["options"][2].numpy(), seqs.options[8:16])
    # Padding: features 0, targets -1.
    assert (data["zone"][4, 3:] == 0).all() and (data["next_zone"][4, 2:] == -1).all()


def test_one_column_for_two_roles_is_refused_by_name(tmp_path):
    frame = log_frame([(1, 0, "hall"), (1, 60, "exit")])
    path = tmp_path / "log.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(LogError, match="must be different columns"):
        read_logs([path], Columns("avatar_id", "avatar_id", "zone"))


# ============================================================================ profiles
def test_a_profile_is_what_the_visitor_stated_on_its_first_row(tmp_path):
    """The ``profile`` column's tags and ``column=value`` tags of attribute columns, as the
    trajectory's first row states them: a later row's value (bought on the way) is not
    read, and a visitor without one has an empty profile."""
    from llm.features import N_TAG_BUCKETS, profile_vectors, tag_bucket

    rows = [(1, 0, "g"), (1, 40, "s"), (1, 90, "x"), (2, 10, "g"), (2, 30, "x")]
    frame = log_frame(
        rows,
        profile=["s|vip", "s|vip|late", None, None, "s"],
        ticket=["day", "day", "day", None, "week"],
    )
    path = tmp_path / "log.csv"
    frame.to_csv(path, index=False)
    read = read_logs([path], Columns(attributes=("ticket",)))
    first = read.groupby("avatar_id")["profile"].first().to_dict()
    assert first == {"1": "s|vip|ticket=day", "2": ""}  # 2: nothing stated on its first row
    vocab = ZoneVocab.from_venue(
        ["g", "s", "x"], ["entrance", "stage", "exit"], [10.0, 50.0, 10.0], np.ones((3, 3))
    )
    seqs = encode(read, vocab)
    assert seqs.profiles.shape == (2, 3 + N_TAG_BUCKETS)
    assert np.flatnonzero(seqs.profiles[0]).tolist() == sorted(
        [1, 3 + tag_bucket("vip"), 3 + tag_bucket("ticket=day")]
    )
    assert not seqs.profiles[1].any()
    data = blocks(seqs, 4)
    assert data["profile"].shape[0] == len(data["length"])
    assert (data["profile"][0].numpy() == seqs.profiles[0]).all()
    np.testing.assert_array_equal(profile_vectors([""], vocab.index), 0)
    plain = read_logs([write_csv(tmp_path, "plain.csv", "avatar_id,timestamp,zone\n1,0,g\n")])
    assert plain["profile"].tolist() == [""]


def test_a_missing_attribute_column_is_named(tmp_path):
    path = write_csv(tmp_path, "log.csv", "avatar_id,timestamp,zone\n1,0,g\n")
    with pytest.raises(LogError, match=r"log.csv: attribute column 'ticket' is missing"):
        read_logs([path], Columns(attributes=("ticket",)))


def test_the_twin_writes_each_visitors_declared_profile(twin_visits):
    """The twin's log states what each scripted visitor declared: the zones it cares for
    (interest >= 0.3, worth a visit) and the shows it came for; the same on all its rows."""
    from agents.needs import DECLARED_INTEREST
    from agents.scripted import MIN_INTEREST

    assert DECLARED_INTEREST == MIN_INTEREST  # it declares what it would go and see
    profiles = twin_visits.groupby("avatar_id")["profile"].nunique()
    assert (profiles == 1).all()
    tags = twin_visits["profile"].str.split("|").explode()
    zones = set(load_venue("concert_hall").zones)
    assert tags.isin(zones).any()
    assert tags.str.startswith("show=main_hall@").any()
    assert not tags[tags != ""].str.contains("thirst|bladder|fatigue").any()


def test_the_dwell_the_model_predicts_leaves_the_queue_to_the_twin(tmp_path):
    """A next visit's dwell target is its stay from the start of service (the dwell less
    the stated queue wait): the twin adds the queue it has when the avatar gets there."""
    rows = [(1, 0, "g"), (1, 100, "b"), (1, 500, "x")]
    read = read_frame(
        tmp_path, log_frame(rows, dwell_s=[100.0, 400.0, 0.0], wait_s=[0.0, 300.0, 0.0])
    )
    vocab = ZoneVocab.from_venue(
        ["g", "b", "x"], ["entrance", "bar", "exit"], [10.0, 50.0, 10.0], np.ones((3, 3))
    )
    seqs = encode(read, vocab)
    assert seqs.features["dwell"][1] == dwell_bucket(np.array([400.0]))[0]  # what it did
    assert seqs.served_dwell[1] == dwell_bucket(np.array([100.0]))[0]  # what is predicted
    assert blocks(seqs, 4)["next_dwell"][0, 0] == seqs.served_dwell[1]


# ============================================================================ programme
def test_show_states_follow_the_clock_and_the_visitors_bookings():
    from llm.features import (
        SHOW_ENDING_S,
        SHOW_GRACE_S,
        SHOW_SOON_S,
        SHOW_STATES,
        WANTED_ENDING,
        cap_show_states,
        show_states,
    )

    state = {name: i for i, name in enumerate(SHOW_STATES)}
    start, end = np.array([72000.0]), np.array([75600.0])  # 20:00 to 21:00 on zone 1
    now = np.array(
        [72000 - SHOW_SOON_S - 1, 72000 - 60, 72000 - 60, 74000, 75600 + SHOW_ENDING_S, 60000]
        + [72000 - 2700, 72000 - 7200, 72000 - 7201, 75600, 75600 + SHOW_ENDING_S - 1]
        + [75600 - SHOW_ENDING_S - 1, 75600 - SHOW_ENDING_S]
    )
    wanted = np.array([1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1], dtype=bool)
    got = show_states(now, np.array([1]), start, end, wanted[:, None], 3)
    assert got[:, 1].tolist() == [
        state["wanted in 15-20 min"],
        state["wanted soon"],
        state["show soon"],
        state["wanted on"],
        state["wanted over"],  # booked, over two minutes after 21:00
        state["none"],  # not booked, not soon
        state["wanted in 40-50 min"],  # booked, 45 minutes to go
        state["wanted in 90-120 min"],  # two hours to go: the last of the minutes
        state["wanted later"],  # a second more
        state["wanted ending"],  # at 21:00 on the second: its audience is leaving
        state["show on"],  # not booked: on until the window is out
        state["wanted on"],  # a visitor leaving now walks out of a show still on
        state["wanted ending"],  # ... and two minutes before the end, leaves at its end
    ]
    assert not got[:, [0, 2]].any()
    # Models before "wanted ending" read a show as on until a minute after its end.
    grace = show_states(now[9:], np.array([1]), start, end, wanted[9:, None], 3, SHOW_GRACE_S)
    assert cap_show_states(grace, WANTED_ENDING)[:, 1].tolist() == [
        state["wanted on"],
        state["none"],  # not booked: over a minute after the end
        state["wanted on"],
        state["wanted on"],
    ]
    # Models before the grace (``show_grace_s``: 0) saw a show over at its end.
    at_end = show_states(now[9:11], np.array([1]), start, end, wanted[9:11, None], 3, grace_s=0.0)
    assert at_end[:, 1].tolist() == [state["wanted over"], state["none"]]


def test_a_wanted_show_on_says_whether_another_booked_there_is_to_come():
    """During a concert hall's first set, a visitor who booked the second too sees "wanted
    on, another after" (back after the interval), one who booked only the first "wanted on"
    (home); a show booked at another stage does not count. In the minutes around the set's
    end the same read "wanted ending, another after" and "wanted ending". A model before
    the states sees them as "wanted on"."""
    from llm.features import (
        SHOW_ENDING_S,
        SHOW_STATES,
        WANTED_ENDING,
        WANTED_ON_MORE,
        cap_show_states,
        show_states,
    )

    state = {name: i for i, name in enumerate(SHOW_STATES)}
    stage = np.array([0, 0, 1])
    start, end = np.array([1000.0, 5000.0, 6000.0]), np.array([2000.0, 6000.0, 7000.0])
    wanted = np.array(
        [[True, True, False], [True, False, False], [True, False, True], [False, True, False]]
    )
    during = show_states(np.full(4, 1500.0), stage, start, end, wanted, 2)
    assert during[:, 0].tolist() == [
        state["wanted on, another after"],
        state["wanted on"],
        state["wanted on"],  # its next show is at the other stage
        state["wanted in 50-60 min"],  # only the second booked: the first is another's
    ]
    assert during[2, 1] == state["wanted in 60-75 min, after another"]
    at_end = show_states(np.full(4, 1990.0), stage, start, end, wanted, 2)
    assert at_end[:, 0].tolist() == [
        state["wanted ending, another after"],
        state["wanted ending"],
        state["wanted ending"],
        state["wanted in 50-60 min"],
    ]
    assert cap_show_states(at_end, WANTED_ENDING)[:3, 0].tolist() == [
        state["wanted on, another after"],
        state["wanted on"],
        state["wanted on"],
    ]
    for got in (during, at_end):
        assert (cap_show_states(got, WANTED_ON_MORE)[:, 0] == state["wanted on"])[:3].all()
    # Until two minutes after the first set's end its audience reads it as ending; then the
    # second set is what is wanted, in 50-60 minutes.
    moments = np.array([2000 + SHOW_ENDING_S - 1, 2000 + SHOW_ENDING_S])
    later = show_states(moments, stage, start, end, wanted[[0, 0]], 2)
    assert later[:, 0].tolist() == [
        state["wanted ending, another after"],
        state["wanted in 40-50 min"],
    ]


def test_a_stage_shows_its_most_pressing_show_and_old_models_see_what_they_knew():
    """Two shows on one stage: a booked one over and another on: the one on wins over the
    one over, and a booked one later wins over another on. A model of six states (before
    "wanted over") sees a booked show that is over as "none", and one of seven (before the
    minutes) a booked show in 58 minutes as "wanted later", as each was shown then."""
    from llm.features import SHOW_STATES, cap_show_states, show_states

    state = {name: i for i, name in enumerate(SHOW_STATES)}
    stage = np.array([0, 0])
    start, end = np.array([1000.0, 5000.0]), np.array([2000.0, 6000.0])
    now = np.array([5500.0, 5500.0, 3000.0, 1500.0])
    wanted = np.array([[True, False], [False, False], [True, False], [False, True]])
    got = show_states(now, stage, start, end, wanted, 1)[:, 0]
    assert got.tolist() == [
        state["show on"],  # the second, not the booked first that is over
        state["show on"],
        state["wanted over"],
        state["wanted in 50-60 min"],  # booked later beats another's show on now
    ]
    old = cap_show_states(got, 6)
    assert old.tolist() == [
        state["show on"],
        state["show on"],
        state["none"],
        state["wanted later"],
    ]
    seven = cap_show_states(got, 7)
    assert seven.tolist() == [
        state["show on"],
        state["show on"],
        state["wanted over"],
        state["wanted later"],
    ]
    assert cap_show_states(got, len(SHOW_STATES)) is got


def test_a_programme_file_is_read_and_bad_rows_are_named(tmp_path):
    from llm.features import Programme, read_programme, show_tag

    path = write_csv(tmp_path, "shows.csv", "stage,start,end\nmain,20:00,21:30\ntent,23:30,00:30\n")
    programme = read_programme(path)
    assert programme.stages == ("main", "tent")
    assert programme.start_s == (72000.0, 84600.0)
    assert programme.end_s == (77400.0, 88200.0)  # past midnight
    assert programme.tags() == [show_tag("main", 72000.0), "show=tent@23:30"]
    wanted = programme.wanted(["show=tent@23:30|booth_a", "", "show=main@20:00"])
    assert wanted.tolist() == [[False, True], [False, False], [True, False]]
    assert Programme.from_json(programme.to_json()) == programme
    bad = write_csv(tmp_path, "bad.csv", "stage,start,end\nmain,8pm,21:30\n")
    with pytest.raises(ValueError, match=r"bad.csv: row 2, column 'start': '8pm'"):
        read_programme(bad)


def test_encoded_choices_see_the_shows_their_visitor_booked(tmp_path):
    """With a programme, each visit's choice sees every zone's show state at its moment:
    visitor 1 booked the 18:10 show on s and chooses at 18:00:40 (soon) and 18:33:20
    (on); visitor 2 booked nothing and sees the same show as anybody's."""
    from llm.features import SHOW_STATES, Programme

    state = {name: i for i, name in enumerate(SHOW_STATES)}
    rows = [(1, 0, "g"), (1, 40, "s"), (1, 2000, "x"), (2, 0, "g"), (2, 30, "x")]
    frame = log_frame(
        rows,
        dwell_s=[40.0, 1960.0, 0.0, 30.0, 0.0],
        profile=["show=s@18:10", "", "", "", ""],
    )
    read = read_frame(tmp_path, frame)
    vocab = ZoneVocab.from_venue(
        ["g", "s", "x"], ["entrance", "stage", "exit"], [10.0, 50.0, 10.0], np.ones((3, 3))
    )
    programme = Programme(("s",), (65400.0,), (67800.0,))  # 18:10 to 18:50
    seqs = encode(read, vocab, programme)
    assert seqs.shows[:, 1].tolist() == [
        state["wanted soon"],  # leaving g at 18:00:40
        state["wanted on"],  # leaving s at 18:33:20
        state["wanted on"],  # at the exit, 18:33:20
        state["show soon"],  # visitor 2 leaving g at 18:00:30
        state["show soon"],
    ]
    assert (seqs.shows[:, [0, 2]] == 0).all()
    assert blocks(seqs, 4)["shows"].shape == (2, 4, 3)


def test_each_log_is_read_with_its_own_days_programme(tmp_path):
    """Two days, the same visits, the show an hour apart: with one programme per log each
    day's choices see its own timetable; one programme for both sees the first's; a count
    of programmes that is not the logs' is refused."""
    from llm.features import SHOW_STATES, Programme

    state = {name: i for i, name in enumerate(SHOW_STATES)}
    rows = [(1, 0, "g"), (1, 40, "s"), (1, 2000, "x")]
    frame = log_frame(rows, dwell_s=[40.0, 1960.0, 0.0], profile=["show=s@18:10", "", ""])
    for name in ("day1.csv", "day2.csv"):
        frame.to_csv(tmp_path / name, index=False)
    read = read_logs([tmp_path / "day1.csv", tmp_path / "day2.csv"])
    vocab = ZoneVocab.from_venue(
        ["g", "s", "x"], ["entrance", "stage", "exit"], [10.0, 50.0, 10.0], np.ones((3, 3))
    )
    early = Programme(("s",), (65400.0,), (67800.0,))  # 18:10 to 18:50: booked
    late = Programme(("s",), (69000.0,), (71400.0,))  # 19:10 to 19:50: another's
    both = encode(read, vocab, [early, late]).shows[:, 1].tolist()
    assert both == [
        state["wanted soon"],
        state["wanted on"],
        state["wanted on"],
        state["none"],  # day 2: the show at 19:10 is nobody's booking, and not soon
        state["none"],
        state["none"],
    ]
    assert encode(read, vocab, early).shows[:, 1].tolist() == both[:3] * 2
    with pytest.raises(LogError, match="3 programmes for 2 logs"):
        encode(read, vocab, [early, late, late])


def test_a_token_is_its_own_array_never_the_callers() -> None:
    """The live policy writes into the tokens it builds (a visit read again keeps its old
    token): that must never change the avatars' zones it built them from."""
    from llm.features import visit_features

    zone = np.array([3, 5, 7], dtype=np.int64)
    token = visit_features(
        zone,
        np.arange(10),
        np.full(3, 36_000.0),
        np.zeros(3),
        np.zeros(3),
        np.full(3, 60.0),
        np.full((3, 3), np.nan),
    )
    token["zone"][1] = 0
    np.testing.assert_array_equal(zone, [3, 5, 7])
    np.testing.assert_array_equal(token["kind"], [3, 5, 7])


def test_how_long_ago_each_need_was_met_is_a_plain_loop_over_each_visitors_day() -> None:
    """``since_<kind>`` of a token is the time from the visitor's last choice to leave a
    place of that kind (this visit included) to this visit's choice, "never" (0) before
    the first, whatever other visitors' sequences lie before it; as a plain loop says, on
    random sequences."""
    from llm.features import (
        NEED_KIND_IDS,
        NEED_KINDS,
        needs_before,
        since_bucket,
        visit_features,
    )

    rng = np.random.default_rng(5)
    lengths = rng.integers(1, 12, size=40)
    n = int(lengths.sum())
    first_row = np.repeat(np.r_[0, np.cumsum(lengths)[:-1]], lengths)
    zone = rng.integers(0, 10, size=n)  # kinds: zone index = kind index
    dwell = rng.uniform(10, 2400, size=n)
    since_arrival = np.zeros(n)
    for row in range(n):
        if row != first_row[row]:
            since_arrival[row] = since_arrival[row - 1] + dwell[row - 1] + rng.uniform(0, 300)
    chose = since_arrival + dwell
    before = needs_before(zone, chose, first_row)
    token = visit_features(
        zone, np.arange(10), 36_000 + since_arrival, since_arrival, np.zeros(n), dwell, before
    )
    for k, (name, kind) in enumerate(zip(NEED_KINDS, NEED_KIND_IDS, strict=True)):
        for row in range(n):
            earlier = [r for r in range(first_row[row], row + 1) if zone[r] == kind]
            ago = chose[row] - chose[earlier[-1]] if earlier else np.nan
            assert token[f"since_{name}"][row] == since_bucket(np.array([ago]))[0]
            if earlier and earlier[-1] < row:
                assert before[row, k] == chose[earlier[-1]]
    assert {0, 1} <= set(token["since_bar"]) and token["since_bar"].max() >= 5
    np.testing.assert_array_equal(
        since_bucket(np.array([np.nan, 0, 599, 600, 7200, 1e5])), [0, 1, 1, 2, 8, 8]
    )


def test_show_states_are_each_zones_highest_over_its_shows() -> None:
    """Every zone shows the most pressing state of its shows (a visitor choosing sees the
    booked show about to begin on a stage over the unbooked one still on there, and either
    over a booked one that is over); a booked show to come that is not the visitor's next
    (another booked one is on, or starts before it) is "after another"; a booked show on
    where another booked there is to come, "wanted on, another after"; a booked show within
    ``SHOW_ENDING_S`` of its end, "wanted ending" (and "..., another after"), and a show
    reads as on until then. By a plain loop over shows and visitors, on random programmes
    with shared stages and shows on no zone. Older models see what they were shown: one of
    26 states (before "ending") the grace of ``SHOW_GRACE_S`` after the end with the
    ending read as on, one of sixteen (before "after another" and the grace) neither."""
    from llm.features import (
        SHOW_ENDING_S,
        SHOW_GRACE_S,
        SHOW_SOON_S,
        SHOW_STATE_RANK,
        SHOW_STATES,
        WANTED_AFTER,
        WANTED_ENDING,
        WANTED_ENDING_MORE,
        WANTED_IN,
        WANTED_ON_MORE,
        cap_show_states,
        show_grace_s,
        show_states,
    )

    def wanted_in(minutes: float) -> int:
        for i, name in enumerate(SHOW_STATES[WANTED_IN:WANTED_AFTER], start=WANTED_IN):
            lo, hi = name.removeprefix("wanted in ").removesuffix(" min").split("-")
            if float(lo) < minutes <= float(hi):
                return i
        return SHOW_STATES.index("wanted later")

    def by_loop(now, zone, start, end, wanted, zones, rules: str) -> np.ndarray:
        grace = {"ending": SHOW_ENDING_S, "grace": SHOW_GRACE_S, "before": 0.0}[rules]
        newest = rules != "before"
        expected = np.zeros((len(now), zones), dtype=np.int8)
        for v in range(len(now)):
            mine = [
                s for s in np.flatnonzero(zone >= 0) if wanted[v, s] and now[v] < end[s] + grace
            ]
            first = min((start[s] for s in mine), default=np.inf)
            for s in np.flatnonzero(zone >= 0):
                t, booked = now[v], wanted[v, s]
                if t >= end[s] + grace:
                    state = 6 if booked else 0
                elif t >= start[s]:
                    state = 5 if booked else 2
                    if booked and rules == "ending" and t >= end[s] - grace:
                        state = WANTED_ENDING
                elif t >= start[s] - SHOW_SOON_S:
                    state = 4 if booked else 1
                elif booked:
                    state = wanted_in((start[s] - t) / 60.0)
                    if newest and state >= WANTED_IN and start[s] > first:
                        state += WANTED_AFTER - WANTED_IN
                else:
                    state = 0
                if SHOW_STATE_RANK[state] > SHOW_STATE_RANK[expected[v, zone[s]]]:
                    expected[v, zone[s]] = state
            for z in range(zones):
                here = [s for s in np.flatnonzero(zone == z) if wanted[v, s] and now[v] < start[s]]
                if newest and expected[v, z] == 5 and here:
                    expected[v, z] = WANTED_ON_MORE
                if expected[v, z] == WANTED_ENDING and here:
                    expected[v, z] = WANTED_ENDING_MORE
        return expected

    rng = np.random.default_rng(0)
    after = more = ending = ending_more = 0
    for _ in range(200):
        shows, zones, visitors = int(rng.integers(0, 8)), 12, int(rng.integers(1, 40))
        zone = rng.integers(-1, zones, shows)
        start = rng.uniform(0, 20_000, shows)
        end = start + rng.uniform(600, 7_200, shows)
        now = rng.uniform(0, 30_000, visitors)
        # Some choices in the minutes around a show's end, where the rules part.
        near = rng.random(visitors) < 0.3
        if shows:
            now[near] = end[rng.integers(0, shows, near.sum())] + rng.uniform(-200, 200, near.sum())
        wanted = rng.random((visitors, shows)) < 0.5
        got = show_states(now, zone, start, end, wanted, zones)
        np.testing.assert_array_equal(got, by_loop(now, zone, start, end, wanted, zones, "ending"))
        for rules, n_states in (("grace", WANTED_ENDING), ("before", WANTED_AFTER)):
            old = show_states(now, zone, start, end, wanted, zones, show_grace_s(n_states))
            expected = by_loop(now, zone, start, end, wanted, zones, rules)
            np.testing.assert_array_equal(cap_show_states(old, n_states), expected)
        after += int(((got >= WANTED_AFTER) & (got < WANTED_ON_MORE)).sum())
        more += int((got == WANTED_ON_MORE).sum())
        ending += int((got == WANTED_ENDING).sum())
        ending_more += int((got == WANTED_ENDING_MORE).sum())
    # The rules were tried, not only the states without.
    assert after > 100 and more > 20 and ending > 20 and ending_more > 5


def test_a_booked_show_after_another_says_so():
    """A visitor who booked 20:00 on stage 0 and 21:30 on stage 1 sees, at 19:00, stage
    0's show in 60 minutes and stage 1's in 150 minutes (later); at 20:15, during the
    first, stage 1's in 75 minutes after another; at 21:05, the first over, the second is
    its next. A visitor who booked only the second sees it as its next at 20:15."""
    from llm.features import SHOW_STATES, show_states

    state = {name: i for i, name in enumerate(SHOW_STATES)}
    start, end = np.array([72000.0, 77400.0]), np.array([75600.0, 81000.0])
    now = np.array([68400.0, 72900.0, 75900.0, 72900.0])
    wanted = np.array([[True, True], [True, True], [True, True], [False, True]])
    got = show_states(now, np.array([0, 1]), start, end, wanted, 2)
    assert got.tolist() == [
        [state["wanted in 50-60 min"], state["wanted later"]],
        [state["wanted on"], state["wanted in 60-75 min, after another"]],
        [state["wanted over"], state["wanted in 20-25 min"]],
        [state["show on"], state["wanted in 60-75 min"]],
    ]


def test_a_visit_that_stays_until_the_show_ends_is_marked(tmp_path):
    """With a programme, a visit at a stage whose choice to leave came at the end of the
    show there (within ``SHOW_END_TOLERANCE_S``; the wait at the door after it not
    counted) is the "until the show ends" target of the visit before it (class 0); one
    that stayed on through the interval to the end of the next show there is class 1; one
    that left ten minutes early, or a visit elsewhere, is none (-1); without a programme,
    none is."""
    from llm.features import Programme

    # The shows on s run 18:10 to 18:50 and 19:00 to 19:30 (T0 is 18:00). Visitor 1 stays
    # to the end of the first and waits 90 s at the door; visitor 2 leaves at 18:40;
    # visitor 3 stays for both.
    rows = [(1, 0, "g"), (1, 40, "s"), (1, 3090, "x"), (2, 0, "g"), (2, 30, "s"), (2, 2400, "x")]
    rows += [(3, 0, "g"), (3, 30, "s"), (3, 5400, "x")]
    frame = log_frame(
        rows,
        dwell_s=[40.0, 3050.0, 0.0, 30.0, 2370.0, 0.0, 30.0, 5370.0, 0.0],
        leave_wait_s=[0.0, 90.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        profile=["show=s@18:10", "", "", "", "", "", "", "", ""],
    )
    read = read_frame(tmp_path, frame)
    vocab = ZoneVocab.from_venue(
        ["g", "s", "x"], ["entrance", "stage", "exit"], [10.0, 50.0, 10.0], np.ones((3, 3))
    )
    programme = Programme(("s", "s"), (65400.0, 68400.0), (67800.0, 70200.0))
    seqs = encode(read, vocab, programme)
    assert seqs.show_left_s[[0, 1, 4, 7]].tolist() == [
        [np.inf, np.inf],
        [2960.0, 5360.0],
        [2970.0, 5370.0],
        [2970.0, 5370.0],
    ]
    assert seqs.show_end_class().tolist() == [-1, 0, -1, -1, -1, -1, -1, 1, -1]
    data = blocks(seqs, 4)
    assert data["next_show_end"].tolist() == [
        [0, -1, -1, -1],  # g -> s: stays until the show ends
        [-1, -1, -1, -1],  # g -> s: leaves ten minutes early
        [1, -1, -1, -1],  # g -> s: stays until the next show ends
    ]
    assert (blocks(encode(read, vocab), 4)["next_show_end"] == -1).all()


def test_a_zone_at_its_capacity_shows_full_in_a_log_read_with_capacities(tmp_path):
    """Read with the day's capacities, a zone that holds as many as it takes when a choice
    is made (or is closed) shows ``FULL_OPTION``; without them it shows its crowd; a count
    of capacities that is not the logs' is refused."""
    from llm.features import FULL_OPTION

    # b takes one: visitor 1 is in it (0-100 s) when visitor 2 chooses at 50 s; c is closed.
    rows = [(1, 0, "b"), (1, 100, "x"), (2, 0, "g"), (2, 50, "x"), (3, 0, "g"), (3, 150, "x")]
    frame = log_frame(rows, dwell_s=[100.0, 0.0, 50.0, 0.0, 150.0, 0.0])
    read = read_frame(tmp_path, frame)
    vocab = ZoneVocab.from_venue(
        ["g", "b", "c", "x"], ["entrance", "bar", "bar", "exit"], [10.0] * 4, np.ones((4, 4))
    )
    seqs = encode(read, vocab, None, {"b": 1, "c": 0})
    full = seqs.options == FULL_OPTION
    assert full[:, 2].all()  # closed
    # Tokens: 1's gate (choosing at 0 s, b still empty), b and its exit (at 100 s, 1 still
    # in b), 2's gate and exit (at 50 s: b full), 3's gate and exit (at 150 s: b empty).
    assert seqs.features["zone"].tolist() == [0, 1, 3, 3, 0, 3, 0, 3]
    assert full[:, 1].tolist() == [False, True, True, True, True, True, False, False]
    assert not (encode(read, vocab).options == FULL_OPTION).any()
    with pytest.raises(LogError, match="2 capacities for 1 logs"):
        encode(read, vocab, None, [{"b": 1}, {"b": 2}])
