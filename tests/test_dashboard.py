"""The Streamlit dashboard: its pages driven through ``AppTest`` (values shown equal the
twin's), its bad-input messages, and its figures as pure functions."""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from agents.explain import Explanation
from dashboards import cards, charts, exports, uploads
from dashboards.explain import decisions, gpt_avatars
from dashboards.state import WORKDIR_ENV
from llm.logs import Columns, LogError
from twin import Levers, Scenario, VenueModel, load_venue
from twin.catalog import shipped_model_path

pytestmark = pytest.mark.usefixtures("one_thread")

APP = str(Path(__file__).resolve().parents[1] / "dashboards" / "app.py")
TIMEOUT = 300  # seconds per script run: a simulation or a training runs inside one
SIM = {"venue": "concert_hall", "avatars": 300, "hours": 1.0, "seed": 1, "policy": "gpt"}


# ============================================================================ helpers
def widget(widgets: Sequence[Any], label: str) -> Any:
    found = [w for w in widgets if w.label == label]
    assert found, f"no widget {label!r} among {[w.label for w in widgets]}"
    return found[0]


def no_trouble(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def figure(at: AppTest, key: str) -> dict[str, Any]:
    """The plotly figure (as JSON) of the chart with ``key``."""
    charts_ = [c for c in at.get("plotly_chart") if c.key == key]
    assert charts_, f"no chart {key!r} among {[c.key for c in at.get('plotly_chart')]}"
    return json.loads(charts_[0].proto.spec)


def decoded(values: Any) -> np.ndarray:
    """Plotly JSON arrays come either as lists or as typed base64 buffers."""
    if isinstance(values, dict) and "bdata" in values:
        import base64

        array = np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"]))
        shape = values.get("shape")
        return array.reshape([int(n) for n in str(shape).split(",")]) if shape else array
    return np.asarray(values)


def new_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    no_trouble(at)
    return at


def simulate(at: AppTest, **scenario: Any) -> AppTest:
    """Fill the Simulate form and press Run."""
    widget(at.selectbox, "Venue").set_value(scenario["venue"]).run()
    widget(at.number_input, "Avatars").set_value(scenario["avatars"])
    widget(at.number_input, "Hours").set_value(scenario["hours"])
    widget(at.number_input, "Seed").set_value(scenario["seed"])
    widget(at.selectbox, "Policy").set_value(scenario["policy"])
    at.run()
    widget(at.button, "Run").click().run()
    no_trouble(at)
    assert not at.error, [e.value for e in at.error]
    steps = math.ceil(scenario["hours"] * 3600 / Scenario().step_s)
    (bar,) = at.progress
    assert (bar.value, bar.text) == (100, f"Done: {steps:,} steps")
    return at


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("dashboard")
    patch = pytest.MonkeyPatch()
    patch.setenv(WORKDIR_ENV, str(path))
    yield path
    patch.undo()


@pytest.fixture(scope="module")
def sim(workdir: Path) -> AppTest:
    """The app after running ``SIM`` on the Simulate page."""
    return simulate(new_app(), **SIM)


@pytest.fixture(scope="module")
def expected() -> VenueModel:
    """The same scenario run directly through the twin."""
    return VenueModel(Scenario(**SIM)).run()


@pytest.fixture(scope="module")
def scripted_log() -> pd.DataFrame:
    """A small visit log made by the twin itself."""
    scenario = Scenario(venue="concert_hall", avatars=200, hours=1.0, seed=5, policy="scripted")
    return VenueModel(scenario).run().visits()


# ============================================================================ Simulate
def test_simulate_shows_the_kpis_of_the_scenario_it_was_given(
    sim: AppTest, expected: VenueModel
) -> None:
    sim.switch_page("pages/simulate.py").run()
    no_trouble(sim)
    model = sim.session_state["run"]
    assert model.kpis() == expected.kpis()  # the same scenario, seed for seed
    k = expected.kpis()
    shown = {m.label: m.value for m in sim.metric}
    assert shown == {
        "Visitors": f"{k['avatars']:,}",
        "Left": f"{k['left']:,}",
        "Visits": f"{k['visits']:,}",
        "Mean wait": f"{k['mean_wait_s']:.1f} s",
        "p95 wait": f"{k['p95_wait_s']:.1f} s",
        "Mean gate wait": f"{k['mean_gate_wait_s']:.1f} s",
        "Person-min at E/F": f"{k['person_minutes_los_ef']:,.1f}",
        "Peak density (p/m²)": f"{k['peak_density']:.2f}",
        "Mean satisfaction": f"{k['mean_satisfaction']:.3f}",
    }
    assert int(shown["Visitors"].replace(",", "")) == 300
    assert float(shown["Mean wait"].removesuffix(" s")) == pytest.approx(k["mean_wait_s"], abs=0.05)
    assert [d.label for d in sim.get("download_button")] == [
        "Visit log (Parquet)",
        "Visit log (CSV)",
        "KPIs (JSON)",
    ]


def test_simulate_map_plays_back_the_zones_table(sim: AppTest, expected: VenueModel) -> None:
    sim.switch_page("pages/simulate.py").run()
    fig = figure(sim, "venue_map")
    zones = expected.zones_frame()
    times = np.sort(zones["time_s"].unique())
    assert len(fig["frames"]) == len(times) == 61  # 1 hour, a row every 60 s
    venue = expected.venue
    for frame, t in zip(fig["frames"], times, strict=True):
        at_t = zones[zones["time_s"] == t].set_index("zone").loc[list(venue.zones)]
        marker = frame["data"][0]["marker"]
        assert marker["color"] == [charts.FRUIN_COLOURS[f] for f in at_t["fruin"]]
        assert decoded(frame["data"][0]["customdata"]).tolist() == at_t["occupancy"].tolist()
    busiest = int(np.argmax([zones[zones["time_s"] == t]["occupancy"].sum() for t in times]))
    assert fig["layout"]["sliders"][0]["active"] == busiest
    timeline = figure(sim, "venue_timeline")
    inside = expected.datacollector.get_model_vars_dataframe()["inside"].to_numpy()
    assert decoded(timeline["data"][0]["y"]).tolist() == inside.tolist()


def test_simulate_form_starts_from_a_scenario_in_session_state(workdir: Path) -> None:
    """What the Optimise page does to apply its best trial."""
    levers = Levers(
        servers={"hall_bar": 9}, open_gates=["gate_main"], capacity_caps={"main_hall": 500}
    )
    best = Scenario(
        venue="concert_hall", avatars=123, hours=0.5, seed=7, policy="random", levers=levers
    )
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["scenario"] = best
    at.session_state["scenario_source"] = "optimise: trial 3"
    at.run()
    no_trouble(at)
    assert any("optimise: trial 3" in i.value for i in at.info)
    assert widget(at.selectbox, "Venue").value == "concert_hall"
    assert widget(at.selectbox, "Policy").value == "random"
    assert widget(at.number_input, "Avatars").value == 123
    assert widget(at.number_input, "Hours").value == 0.5
    assert widget(at.number_input, "Seed").value == 7
    assert widget(at.number_input, "hall_bar (bar)").value == 9
    assert widget(at.multiselect, "Open gates").value == ["gate_main"]
    assert widget(at.multiselect, "Capacity caps on").value == ["main_hall"]
    hall = load_venue("concert_hall")
    hard = int(hall.capacity[hall.index["main_hall"]])
    assert widget(at.number_input, f"cap of main_hall (hard {hard:,})").value == 500
    widget(at.button, "Run").click().run()
    no_trouble(at)
    run = at.session_state["run"]
    assert (run.scenario.avatars, run.scenario.seed, run.policy.name) == (123, 7, "random")
    assert run.scenario.levers == levers
    assert run.kpis() == VenueModel(best).run().kpis()
    # A run without GPT avatars cannot be explained, and the page says so.
    at.switch_page("pages/attention.py").run()
    no_trouble(at)
    assert any("Explanations need GPT avatars" in i.value for i in at.info)


def test_failed_runs_show_a_message_and_leave_the_app_usable(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = new_app()
    simulate(at, venue="concert_hall", avatars=50, hours=0.5, seed=3, policy="scripted")
    first = at.session_state["run"]
    # A model whose zones are not the venue's: refused before the run, by name.
    at.session_state["model_path"] = str(shipped_model_path("concert_hall"))
    widget(at.selectbox, "Venue").set_value("expo").run()
    widget(at.selectbox, "Policy").set_value("gpt").run()
    widget(at.button, "Run").click().run()
    no_trouble(at)
    (message,) = [e.value for e in at.error]
    assert message.startswith("Cannot run this scenario: ") and "concert_hall" in message
    assert at.session_state["run"] is first  # the last good run is still shown
    assert [m.value for m in at.metric][0] == f"{first.kpis()['avatars']:,}"
    # A run that breaks half-way says when, and the page goes on working.
    calls = {"n": 0}
    step = VenueModel.step

    def breaking_step(self: VenueModel) -> None:
        calls["n"] += 1
        if calls["n"] == 40:
            raise RuntimeError("the venue's floor gave way")
        step(self)

    monkeypatch.setattr(VenueModel, "step", breaking_step)
    widget(at.selectbox, "Venue").set_value("concert_hall").run()
    widget(at.selectbox, "Policy").set_value("random").run()
    widget(at.button, "Run").click().run()
    no_trouble(at)
    (message,) = [e.value for e in at.error]
    assert message == "The run failed at 18:03: RuntimeError: the venue's floor gave way"
    assert at.session_state["run"] is first
    monkeypatch.undo()
    widget(at.button, "Run").click().run()
    no_trouble(at)
    assert not at.error and at.session_state["run"] is not first


def test_the_form_follows_a_scenario_beyond_its_usual_bounds(workdir: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["scenario"] = Scenario(venue="concert_hall", avatars=2_000_000, hours=36.0)
    at.run()
    no_trouble(at)
    assert widget(at.number_input, "Avatars").value == 2_000_000
    assert widget(at.number_input, "Hours").value == 36.0


def test_scenario_toml_upload_fills_the_form_and_bad_ones_are_named(workdir: Path) -> None:
    at = new_app()
    good = b'venue = "concert_hall"\navatars = 222\nhours = 1.5\nseed = 4\npolicy = "scripted"\n'
    at.file_uploader[0].set_value(("friday.toml", good, "application/toml")).run()
    no_trouble(at)
    assert widget(at.number_input, "Avatars").value == 222
    assert widget(at.number_input, "Hours").value == 1.5
    assert widget(at.selectbox, "Policy").value == "scripted"
    assert any("uploaded friday.toml" in i.value for i in at.info)
    bad = b'venue = "concert_hall"\nvisitors = 10\n'
    at.file_uploader[0].set_value(("broken.toml", bad, "application/toml")).run()
    no_trouble(at)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "broken.toml" in errors[0] and "'visitors'" in errors[0]
    assert str(workdir) not in errors[0]  # the user's file name, not the server's path
    assert widget(at.number_input, "Avatars").value == 222  # the form kept the good one


# ============================================================================ Attention
def test_attention_shows_what_model_explain_returns(sim: AppTest) -> None:
    sim.switch_page("pages/attention.py").run()
    no_trouble(sim)
    model = sim.session_state["run"]
    visits = model.visits()
    avatars = gpt_avatars(visits)
    box = widget(sim.selectbox, f"Avatar ({len(avatars):,} decided with the GPT)")
    assert list(box.options) == [str(a) for a in avatars]
    avatar = avatars[7]
    box.set_value(avatar).run()
    made = decisions(model, visits, avatar)
    assert len(made) >= 2
    pick = made[-2]
    widget(sim.selectbox, f"Decision ({len(made)} of avatar {avatar})").set_value(pick).run()
    no_trouble(sim)
    why = model.explain(avatar, step=pick.step)
    assert why.visit == pick.visit and why.chosen == pick.next_zone  # as in the visit log

    context = next(d for d in sim.dataframe if list(d.value.columns) == ["visit"]).value
    assert context["visit"].tolist() == [f"{i + 1}. {c}" for i, c in enumerate(why.context)]
    table = next(d for d in sim.dataframe if "probability" in d.value.columns).value
    assert table["zone"].tolist() == [z for z, _ in why.candidates]
    assert table["probability"].tolist() == pytest.approx([p for _, p in why.candidates])
    assert table["showed"].tolist() == why.shown
    assert table["chosen"].tolist() == [z == why.chosen for z, _ in why.candidates]
    assert sum(table["probability"]) == pytest.approx(1.0, abs=1e-6)
    bars = figure(sim, "attention_candidates_chart")["data"][0]
    assert decoded(bars["x"]).tolist() == pytest.approx([p for _, p in why.candidates])
    assert bars["customdata"] == [z for z, _ in why.candidates]

    head = figure(sim, "attention_head")["data"][0]
    np.testing.assert_allclose(decoded(head["z"]), why.attention[0, 0], rtol=1e-6)
    widget(sim.selectbox, "Layer").set_value(1)
    widget(sim.selectbox, "Head").set_value(2).run()
    head = figure(sim, "attention_head")["data"][0]
    np.testing.assert_allclose(decoded(head["z"]), why.attention[1, 2], rtol=1e-6)
    grid = figure(sim, "attention_grid")["data"]
    layers, heads = why.attention.shape[:2]
    assert len(grid) == layers * heads
    np.testing.assert_allclose(decoded(grid[heads + 3]["z"]), why.attention[1, 3], rtol=1e-6)


# ============================================================================ Train
def test_train_on_an_uploaded_log_then_simulate_with_the_new_model(
    workdir: Path, scripted_log: pd.DataFrame
) -> None:
    renamed = scripted_log.rename(
        columns={"avatar_id": "visitor", "timestamp": "ts", "zone": "room"}
    )
    at = new_app()
    at.switch_page("pages/train.py").run()
    at.file_uploader[0].set_value(("hall.csv", renamed.to_csv(index=False).encode(), "text/csv"))
    at.run()
    no_trouble(at)
    (message,) = [e.value for e in at.error]  # the columns are not the standard ones
    assert "hall.csv" in message and "'avatar_id'" in message and "visitor" in message
    widget(at.selectbox, "Avatar id column").set_value("visitor")
    widget(at.selectbox, "Time column").set_value("ts")
    widget(at.selectbox, "Zone column").set_value("room").run()
    no_trouble(at)
    assert not at.error
    shown = {m.label: m.value for m in at.metric}
    assert shown["Visits"] == f"{len(scripted_log):,}"
    assert shown["Trajectories"] == f"{scripted_log['avatar_id'].nunique():,}"
    assert widget(at.selectbox, "Venue (its zones and legal moves)").value == "concert_hall"
    start = widget(at.selectbox, "Start from")
    assert start.value == "Fine-tune the shipped model of concert_hall"
    widget(at.number_input, "Steps").set_value(5)
    widget(at.number_input, "Evaluate every (steps)").set_value(2).run()
    widget(at.button, "Train").click().run()
    no_trouble(at)
    assert not at.error, [e.value for e in at.error]

    result = at.session_state["trained"]
    path = Path(result["path"])
    assert path.is_file() and path.is_relative_to(workdir)
    history = next(d for d in at.dataframe if "val_zone_loss" in d.value.columns).value
    assert history["step"].tolist() == [2, 4, 5]
    for column in ("train_zone_loss", "val_zone_loss", "val_perplexity"):
        assert all(math.isfinite(v) and v > 0 for v in history[column])
    assert history["val_perplexity"].tolist() == pytest.approx(
        np.exp(history["val_zone_loss"]).tolist(), rel=1e-3
    )
    curve = figure(at, "loss_curve")["data"]
    assert [t["name"] for t in curve] == ["train", "validation"]
    assert decoded(curve[1]["y"]).tolist() == history["val_zone_loss"].tolist()
    evaluation = next(d for d in at.dataframe if "perplexity" in d.value.columns).value
    assert evaluation.index.tolist() == ["model", "markov1", "markov2", "popular"]
    assert (evaluation["perplexity"] >= 1.0).all()
    assert evaluation.loc["markov2", "perplexity"] == pytest.approx(
        result["evaluation"]["baselines"]["markov2"]["perplexity"]
    )
    assert "held-out next-visit targets" in at.code[0].value

    widget(at.button, "Use this model on the Simulate page").click().run()
    no_trouble(at)
    assert at.session_state["model_path"] == str(path)
    assert any(str(path) in i.value for i in at.info)
    at.switch_page("pages/simulate.py").run()
    assert widget(at.checkbox, f"Use the model selected on the Train page ({path})").value
    simulate(at, venue="concert_hall", avatars=100, hours=0.5, seed=2, policy="gpt")
    run = at.session_state["run"]
    assert run.scenario.model == str(path)
    assert Path(run.policy.ckpt.path).read_bytes() == path.read_bytes()


def test_bad_uploads_get_a_message_naming_the_file_never_a_traceback(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = new_app()
    at.switch_page("pages/train.py").run()

    def upload(name: str, data: bytes) -> list[str]:
        at.file_uploader[0].set_value((name, data, "application/octet-stream"))
        at.run()
        no_trouble(at)
        return [e.value for e in at.error]

    (message,) = upload("wrong.csv", b"a,b,c\n1,x,y\n2,z,w\n")
    assert "wrong.csv" in message and "'avatar_id'" in message and "a, b, c" in message
    assert str(workdir) not in message
    widget(at.selectbox, "Avatar id column").set_value("a")
    widget(at.selectbox, "Time column").set_value("b")
    widget(at.selectbox, "Zone column").set_value("c").run()
    no_trouble(at)
    (message,) = [e.value for e in at.error]  # b holds no times
    assert message.startswith("wrong.csv: ") and "'b'" in message

    (message,) = upload("notes.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
    assert message == "notes.csv: not a CSV table (the file holds binary data)"
    (message,) = upload("prose.csv", b"this is a note, not a log\n")
    assert message.startswith("prose.csv: not a visit log: it has 2 columns")
    (message,) = upload("fake.parquet", b"avatar_id,timestamp,zone\n1,2,3\n")
    assert message.startswith("fake.parquet: not a readable Parquet table")
    monkeypatch.setattr(uploads, "MAX_UPLOAD_MB", 1)
    at.run()  # a new limit makes a new upload widget
    (message,) = upload("huge.csv", b"avatar_id,timestamp,zone\n" + b"1,2,foyer\n" * 120_000)
    assert message.startswith("huge.csv: 1.2 MB is above the 1 MB upload limit")
    monkeypatch.undo()
    at.run()

    model_box = at.file_uploader[1]
    model_box.set_value(("model.safetensors", b"\x80\x04\x95 not a safetensors file", "x"))
    at.run()
    no_trouble(at)
    errors = [e.value for e in at.error if "Model not loaded" in e.value]
    assert len(errors) == 1 and "model.safetensors: not a safetensors file" in errors[0]
    assert "model_path" not in at.session_state


# ============================================================================ figures
def explanation(layers: int = 2, heads: int = 3, visits: int = 4) -> Explanation:
    rng = np.random.default_rng(0)
    raw = np.tril(rng.random((layers, heads, visits, visits)))
    return Explanation(
        avatar=5,
        visit=visits - 1,
        time_s=600.0,
        context=["gate 18:00 A <5s", "foyer 18:01 B <1m", "bar 18:02 C <5m", "foyer 18:08 B <1m"],
        attention=raw / raw.sum(axis=-1, keepdims=True),
        candidates=[("hall", 0.7), ("bar", 0.2), ("exit", 0.1)],
        chosen="bar",
        shown=["crowd B, queue none", "crowd C, queue <3 min", "crowd A, queue none"],
    )


def test_map_colours_follow_fruin_levels_and_sizes_follow_occupancy() -> None:
    venue = load_venue("concert_hall")
    levels = list(charts.FRUIN_COLOURS)
    rows = [
        {
            "time_s": t * 60.0,
            "zone": zone,
            "occupancy": (i + t) * 10,
            "density": 0.1 * i,
            "fruin": levels[(i + t) % 6],
            "queue": 0,
        }
        for t in range(3)
        for i, zone in enumerate(venue.zones)
    ]
    fig = charts.venue_map(venue, pd.DataFrame(rows), Scenario().opening_time)
    assert [f.name for f in fig.frames] == ["18:00", "18:01", "18:02"]
    for t, frame in enumerate(fig.frames):
        marker = frame.data[0].marker
        assert list(marker.color) == [
            charts.FRUIN_COLOURS[levels[(i + t) % 6]] for i in range(venue.n_zones)
        ]
        assert np.all(np.diff(marker.size) > 0)  # occupancy grows with the zone index here
    most = (venue.n_zones - 1 + 2) * 10
    assert fig.frames[2].data[0].marker.size[-1] == pytest.approx(charts.MARKER_MAX)
    assert fig.frames[0].data[0].marker.size[0] == pytest.approx(charts.MARKER_MIN)
    assert charts.marker_sizes(np.array([most / 4]), most)[0] == pytest.approx(
        charts.MARKER_MIN + (charts.MARKER_MAX - charts.MARKER_MIN) / 2
    )
    assert fig.layout.sliders[0].active == 2  # opens at the busiest time
    edges = fig.data[0]
    assert sum(x is None for x in edges.x) == len(venue.edge_list)
    np.testing.assert_allclose(fig.data[1].x, venue.xy[:, 0])
    assert [t.name for t in fig.data[2:]] == [f"Fruin {level}" for level in levels]


def test_map_keeps_at_most_map_frames_and_always_the_last_time() -> None:
    zones = pd.DataFrame({"time_s": np.arange(1000) * 60.0})
    times = charts.map_times(zones, max_frames=150)
    assert len(times) == 150 and times[0] == 0.0 and times[-1] == 999 * 60.0


def test_attention_figures_show_the_explanation() -> None:
    why = explanation()
    head = charts.attention_heatmap(why, layer=1, head=2)
    np.testing.assert_array_equal(head.data[0].z, why.attention[1, 2])
    assert list(head.data[0].x) == [f"{i + 1}. {c}" for i, c in enumerate(why.context)]
    grid = charts.attention_grid(why)
    assert len(grid.data) == 6
    for n, trace in enumerate(grid.data):
        np.testing.assert_array_equal(trace.z, why.attention[n // 3, n % 3])
    bars = charts.candidate_bars(why).data[0]
    assert list(bars.x) == [0.7, 0.2, 0.1]
    assert list(bars.y) == [
        f"{z} · {s}" for (z, _), s in zip(why.candidates, why.shown, strict=True)
    ]
    assert list(bars.marker.color) == [
        charts.OTHER_COLOUR,
        charts.CHOSEN_COLOUR,
        charts.OTHER_COLOUR,
    ]


def test_time_series_and_loss_curve_carry_the_numbers() -> None:
    zones = pd.DataFrame(
        {
            "time_s": [0.0, 0.0, 60.0, 60.0],
            "zone": ["bar", "hall", "bar", "hall"],
            "queue": [0, 0, 3, 0],
            "mean_wait_s": [np.nan, np.nan, 42.0, np.nan],
        }
    )
    fig = charts.zone_timeline(zones, "queue", Scenario().opening_time)
    assert [t.name for t in fig.data] == ["bar"]  # a zone that never queues is left out
    assert list(fig.data[0].y) == [0, 3]
    history = [
        {"step": 2, "train_zone_loss": 2.0, "val_zone_loss": 1.9},
        {"step": 4, "train_zone_loss": 1.5, "val_zone_loss": 1.6},
    ]
    curve = charts.loss_curve(history)
    assert list(curve.data[0].x) == [2, 4] and list(curve.data[1].y) == [1.9, 1.6]


def test_kpi_cards_and_downloads_are_the_models_own(expected: VenueModel) -> None:
    k = expected.kpis()
    shown = {c.label: c.value for c in cards.kpi_cards(k)}
    assert shown["Mean gate wait"] == f"{k['mean_gate_wait_s']:.1f} s"
    assert k["peak_density_zone"] in cards.kpi_cards(k)[7].help
    pd.testing.assert_frame_equal(
        pd.read_parquet(io.BytesIO(exports.visits_parquet(expected))), expected.visits()
    )
    csv = pd.read_csv(io.BytesIO(exports.visits_csv(expected)))
    assert csv["zone"].tolist() == expected.visits()["zone"].tolist()
    assert json.loads(exports.kpis_json(expected))["visits"] == k["visits"]


def test_decisions_are_the_ones_the_twin_explains(expected: VenueModel) -> None:
    visits = expected.visits()
    for avatar in gpt_avatars(visits)[:20]:
        rows = visits[visits["avatar_id"] == avatar]
        made = decisions(expected, visits, avatar)
        assert made, avatar
        assert [d.visit for d in made] == sorted({d.visit for d in made})
        for d in made:
            why = expected.explain(avatar, step=d.step)
            assert (why.visit, why.chosen) == (d.visit, d.next_zone)
            passage = expected.venue.vocabulary().passage
            places = [z for z in rows["zone"] if not passage[expected.venue.index[z]]]
            assert places[d.visit + 1] == d.next_zone


def test_uploads_are_capped_typed_and_named(tmp_path: Path) -> None:
    big = b"x" * (uploads.MAX_UPLOAD_MB * 1_000_000 + 1)
    with pytest.raises(uploads.UploadError, match=r"^big\.csv: 50\.0 MB is above the 50 MB"):
        uploads.store("big.csv", big, tmp_path, uploads.LOG_TYPES)
    with pytest.raises(uploads.UploadError, match=r"^model\.pkl: expected a \.safetensors file"):
        uploads.store("model.pkl", b"\x80\x04", tmp_path, ["safetensors"])
    path = uploads.store("../../etc/my log.csv", b"a,b,c\n1,2,3\n", tmp_path, uploads.LOG_TYPES)
    assert path.parent.parent == tmp_path and path.name == "my_log.csv"
    assert uploads.table_columns(path, "my log.csv") == ["a", "b", "c"]
    with pytest.raises(LogError, match=r"^empty\.csv: the log is empty"):
        empty = uploads.store("empty.csv", b"\n", tmp_path, uploads.LOG_TYPES)
        uploads.table_columns(empty, "empty.csv")
    assert uploads.missing_columns(["avatar_id", "timestamp", "zone"], Columns(), "x") is None


# ============================================================================ Optimise
def test_optimise_runs_a_study_shows_its_results_and_applies_a_trial(workdir: Path) -> None:
    import optuna

    from twin.study_results import balanced, pareto_front, trials_frame

    at = new_app()
    at.switch_page("pages/optimise.py").run()
    no_trouble(at)
    assert any("No study yet" in i.value for i in at.info)
    widget(at.selectbox, "Venue").set_value("concert_hall").run()
    widget(at.number_input, "Avatars").set_value(150)
    widget(at.number_input, "Hours").set_value(1.0)
    widget(at.selectbox, "Avatars decide with").set_value("gpt")
    widget(at.number_input, "Trials").set_value(3)
    widget(at.number_input, "Seeds per trial").set_value(1)
    assert widget(at.text_input, "Study").value == "concert_hall-levers"  # follows the venue
    widget(at.text_input, "Study").set_value("hall-test")
    at.run()
    widget(at.button, "Run or resume the study").click().run()
    no_trouble(at)
    assert not at.error, [e.value for e in at.error]
    (bar,) = at.progress
    assert bar.value == 100 and "3 trials in the study" in bar.text

    url = f"sqlite:///{(workdir / 'studies.db').resolve()}"
    study = optuna.load_study(study_name="hall-test", storage=url)
    frame = trials_frame(study)
    assert list(frame["state"]) == ["COMPLETE"] * 3
    shown = {m.label: m.value for m in at.metric}
    front = pareto_front(frame)
    assert shown["Trials completed"] == "3"
    assert shown["On the Pareto front"] == str(len(front))
    assert shown["Feasible (within the staff budget)"] == str(int(frame["feasible"].sum()))
    pareto = figure(at, "opt-pareto")
    plotted = sum(len(decoded(d.get("x", []))) for d in pareto["data"])
    assert plotted == 3  # every completed trial is a point, feasible or not
    history = figure(at, "opt-history-mean_wait_s")
    points = [d for d in history["data"] if d.get("mode") == "markers"]  # not the best line
    values = sorted(v for d in points for v in decoded(d["y"]).tolist())
    assert values == pytest.approx(sorted(frame["mean_wait_s"]))
    table = at.dataframe[-1].value
    assert len(table) == 3 and table["mean_wait_s"].tolist() == pytest.approx(
        frame["mean_wait_s"].tolist()
    )
    # Apply the balanced trial: the Simulate page's form starts from its levers.
    chosen = int(balanced(front)["trial"])
    assert widget(at.selectbox, "Trial to apply (default: the balanced Pareto trial)").value == (
        chosen
    )
    widget(at.button, "Apply this trial on the Simulate page").click().run()
    no_trouble(at)
    applied = at.session_state["scenario"]
    params = study.trials[chosen].params
    for name, value in params.items():
        if name.startswith("servers."):
            assert applied.levers.servers[name.removeprefix("servers.")] == value
    assert any(f"trial {chosen}" in i.value for i in at.info)


def test_validate_shows_the_report_of_the_current_venue_and_model(workdir: Path) -> None:
    """The Validate page runs ``twin.validate.validate`` and shows its figures: the
    targets met, the compared KPIs as the report has them, who attends the shows, the
    what-ifs picked with their count of cells met and their zones, and its charts."""
    from twin.validate import validate
    from twin.validate_report import readable_table

    at = new_app()
    at.switch_page("pages/validate.py").run()
    no_trouble(at)
    assert any("No validation yet" in i.value for i in at.info)
    widget(at.selectbox, "Venue").set_value("concert_hall").run()
    widget(at.number_input, "Avatars").set_value(1200)  # enough to crowd the gate left open
    widget(at.number_input, "Hours").set_value(1.0)
    widget(at.number_input, "Seeds").set_value(1)
    widget(at.multiselect, "What-ifs (each runs twin and reference again)").set_value(
        ["gate_closed"]
    )
    widget(at.button, "Run the validation").click().run()
    no_trouble(at)
    assert not at.error, [e.value for e in at.error]
    expected = validate(
        "concert_hall", avatars=1200, hours=1.0, seeds=1, intervention_keys=["gate_closed"]
    )
    met = sum(expected["passed"]["figures"].values())
    shown = {m.label: m.value for m in at.metric}
    assert shown["Targets met"] == f"{met} of {len(expected['passed']['figures'])}"
    frame = at.dataframe[0].value
    rows = readable_table(expected)
    assert list(frame["figure"]) == [r["figure"] for r in rows]
    assert frame["status"].tolist() == [r["status"] for r in rows]
    assert frame["twin"].tolist() == [r["twin"] for r in rows]  # with units, rounded
    dwell = rows[[r["figure"] for r in rows].index("mean dwell (s)")]
    assert dwell["twin"].endswith(" s") and "." not in dwell["twin"]  # 1,208 s, not 1208.09...
    assert "None" not in frame.to_string()
    assert any("the venue's shipped model" in c.value for c in at.caption)
    cells = expected["passed"]["intervention_cells"]
    assert cells["of"] == 3
    headers = [h.value for h in at.subheader]
    assert f"What-ifs: {cells['met']} of 3 cells met" in headers
    assert "Who attends the shows" in headers
    attendance = at.dataframe[1].value
    assert list(attendance["stage"]) == ["main_hall", "main_hall"]
    assert any("zone by zone" in e.label for e in at.expander)
    captions = [c.value for c in at.caption]
    assert "Change of visits per zone, twin against reference." in captions
    risk = "Change of crowd risk per zone (person-minutes at Fruin E/F)."
    assert expected["interventions"][0]["zone_crowd_risk"] and risk in captions
    assert len(at.get("plotly_chart")) >= 2  # shares, occupancy, dwell


# ============================================================================ own venue
def test_an_uploaded_venue_and_its_model_run_on_the_simulate_page(
    workdir: Path, tmp_path: Path
) -> None:
    """A venue built by ``venue from-pois`` and a model trained on it, uploaded: the form
    takes the venue, GPT avatars decide with the model; a model of another venue and a
    broken venue are refused by name."""
    from llm.train import TrainConfig, train
    from tests.test_from_pois import COLUMNS, write
    from twin.from_pois import build_venue

    pois, visits = write(tmp_path)
    venue = build_venue(pois, [visits], log_columns=COLUMNS).venue
    venue.save(tmp_path / "park.json")
    train(
        [visits],
        tmp_path / "model",
        vocab=venue.vocabulary(),
        columns=COLUMNS,
        cfg=TrainConfig(max_steps=20, eval_every=10),
        progress=False,
    )
    at = new_app()
    venue_box = at.file_uploader[1]
    broken = b'{"nodes": [{"id": "a", "kind": "stage"}], "edges": []}'
    venue_box.set_value(("broken.json", broken, "application/json")).run()
    no_trouble(at)
    (error,) = [e.value for e in at.error]
    assert error.startswith("Venue not loaded: broken.json: zone 'a'") and str(workdir) not in error
    park = (tmp_path / "park.json").read_bytes()
    at.file_uploader[1].set_value(("park.json", park, "application/json")).run()
    no_trouble(at)
    assert widget(at.selectbox, "Venue").value == "park.json"
    hall = shipped_model_path("concert_hall").read_bytes()
    at.file_uploader[2].set_value(("hall.safetensors", hall, "application/octet-stream")).run()
    (error,) = [e.value for e in at.error]
    assert error.startswith("Model not loaded: hall.safetensors")
    ours = (tmp_path / "model" / "model.safetensors").read_bytes()
    at.file_uploader[2].set_value(("park.safetensors", ours, "application/octet-stream")).run()
    no_trouble(at)
    assert not at.error and any("park.safetensors" in s.value for s in at.success)
    widget(at.number_input, "Avatars").set_value(60)
    widget(at.number_input, "Hours").set_value(2.0)
    at.run()
    widget(at.button, "Run").click().run()
    no_trouble(at)
    assert not at.error, [e.value for e in at.error]
    run = at.session_state["run"]
    assert run.venue.n_zones == venue.n_zones and run.policy.name == "gpt"
    assert str(run.scenario.model).endswith("park.safetensors")
    assert run.kpis()["avatars"] == 60


def test_an_upload_is_kept_only_once_checked_and_the_folder_is_capped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad upload is refused by its name and leaves nothing behind; good ones are kept
    by content, and the folder keeps the newest within its caps."""
    from twin.venue import VenueError, load_venue

    folder = tmp_path / "uploads"
    with pytest.raises(VenueError, match=r"^bad\.json: not valid JSON"):
        uploads.store("bad.json", b"{not json", folder, ("json",), check=load_venue)
    assert [p for p in folder.rglob("*") if p.is_file()] == []
    monkeypatch.setattr(uploads, "MAX_KEPT_FILES", 3)
    kept = []
    for i in range(5):
        kept.append(uploads.store(f"log{i}.csv", f"a,b,c\n{i},2,3\n".encode(), folder, ["csv"]))
        time.sleep(0.01)  # distinct modification times
    left = sorted(p.name for p in folder.rglob("*.csv"))
    assert left == ["log2.csv", "log3.csv", "log4.csv"]  # the oldest went first
    assert kept[4].exists() and not kept[0].exists()
    monkeypatch.setattr(uploads, "MAX_KEPT_MB", 0.0)  # nothing but the newest fits
    newest = uploads.store("big.csv", b"a,b,c\n" * 1000, folder, ["csv"])
    assert [p for p in folder.rglob("*.csv")] == [newest]


def test_the_dashboard_opens_on_a_scenario_where_the_levers_matter(workdir: Path) -> None:
    """The first run, as the page opens, has queues and a crowded show to act on (the
    library's default expo of 2,000 queued nowhere: mean wait 0.0 s)."""
    at = new_app()
    assert widget(at.selectbox, "Venue").value == "concert_hall"
    assert widget(at.number_input, "Avatars").value == 2500
    widget(at.button, "Run").click().run()
    no_trouble(at)
    kpis = at.session_state["run"].kpis()
    assert kpis["mean_wait_s"] > 60 and kpis["p95_wait_s"] > 300
    assert kpis["person_minutes_los_ef"] > 10_000  # the hall at Fruin E/F for the show


def test_a_dashboard_run_is_kept_with_its_provenance_and_verified(workdir: Path) -> None:
    """A run of the Simulate page is saved as a folder with its record, appended to the
    ledger, and the page shows whether its files are still as recorded."""
    from twin.provenance import verify_record

    at = new_app()
    simulate(at, venue="concert_hall", avatars=60, hours=0.5, seed=2, policy="scripted")
    folder = Path(at.session_state["run_folder"])
    assert folder.parent == workdir / "runs" and (folder / "provenance.json").is_file()
    assert verify_record(folder) == []
    assert any(e.label.startswith("Provenance: every file as recorded") for e in at.expander)
    (folder / "kpis.json").write_text("{}")
    at.run()
    no_trouble(at)
    assert any(e.label == "Provenance: 1 change(s)" for e in at.expander)
    assert any("kpis.json changed since the run" in e.value for e in at.error)


def test_the_venue_in_3d_draws_zones_links_and_the_avatars_where_they_are(workdir: Path) -> None:
    """After a run, the Simulate page has the 3D deck: a footprint per zone coloured by
    its Fruin level, a link per passage, and a point per avatar inside at that moment,
    in its zone's footprint or on the line to its next zone; the cameras move the view."""
    from dashboards import scene3d

    at = new_app()
    simulate(at, venue="concert_hall", avatars=300, hours=1.0, seed=4, policy="scripted")
    decks = at.get("deck_gl_json_chart")
    assert len(decks) == 1
    spec = json.loads(decks[0].proto.json)
    layers = {layer["id"]: layer for layer in spec["layers"]}
    model = at.session_state["run"]
    venue = model.venue
    assert len(layers["zones"]["data"]) == venue.n_zones
    assert len(layers["passages"]["data"]) == len(venue.edge_list)
    # The points are the avatars inside at the moment shown, each where its visits say.
    visits = model.visits()
    walks = scene3d.Walks.of(visits, venue, model.scenario.opening_time)
    centres, side = scene3d.footprints(venue)
    zones = model.zones_frame()
    times = np.sort(zones["time_s"].unique())
    busiest = times[int(np.argmax(zones.groupby("time_s")["occupancy"].sum().reindex(times)))]
    points = walks.at(float(busiest), centres, side)
    assert len(layers["avatars"]["data"]) == len(points) > 0
    inside = points[~points["walking"]]
    xy = np.stack([inside["lon"] * scene3d.M_PER_DEG_LON, inside["lat"] * scene3d.M_PER_DEG_LAT], 1)
    nearest = np.linalg.norm(xy[:, None] - centres[None], axis=2).argmin(axis=1)
    assert (np.abs(xy - centres[nearest]) <= side[nearest, None] / 2 + 1e-6).all()
    first = spec["initialViewState"]
    widget(at.selectbox, "Camera").set_value("A zone close up").run()
    widget(at.selectbox, "Zone").set_value("main_hall").run()
    close = json.loads(at.get("deck_gl_json_chart")[0].proto.json)["initialViewState"]
    assert close["zoom"] > first["zoom"]
    hall = centres[venue.index["main_hall"]]
    assert close["longitude"] == pytest.approx(hall[0] / scene3d.M_PER_DEG_LON)


def test_footprints_do_not_overlap_and_walkers_lie_between_their_zones() -> None:
    import datetime as dt

    from dashboards import scene3d
    from twin import load_venue

    for name in ("concert_hall", "expo", "festival"):
        venue = load_venue(name)
        centres, side = scene3d.footprints(venue)
        gaps = np.linalg.norm(centres[:, None] - centres[None], axis=2)
        reach = (side[:, None] + side[None]) / 2
        off = ~np.eye(len(side), dtype=bool) & (gaps > 0)
        assert (gaps[off] >= 0.9 * reach[off] - 1e-9).all(), name
    venue = load_venue("concert_hall")
    opening = dt.datetime(2026, 6, 1, 18, 0)
    visits = pd.DataFrame(
        {
            "avatar_id": [7, 7],
            "timestamp": pd.to_datetime(["2026-06-01 18:00:00", "2026-06-01 18:10:00"]),
            "zone": ["gate_main", "foyer"],
            "dwell_s": [60.0, 300.0],
        }
    )
    walks = scene3d.Walks.of(visits, venue, opening)
    centres, side = scene3d.footprints(venue)
    halfway = walks.at(60.0 + 270.0, centres, side)  # between the gate's end and the foyer
    assert len(halfway) == 1 and bool(halfway["walking"].iloc[0])
    xy = np.array(
        [
            halfway["lon"].iloc[0] * scene3d.M_PER_DEG_LON,
            halfway["lat"].iloc[0] * scene3d.M_PER_DEG_LAT,
        ]
    )
    a, b = centres[venue.index["gate_main"]], centres[venue.index["foyer"]]
    assert np.linalg.norm(xy - (a + b) / 2) < 0.5 * max(
        side[venue.index["gate_main"]], side[venue.index["foyer"]]
    )
    assert walks.at(10_000.0, centres, side).empty  # gone by then
