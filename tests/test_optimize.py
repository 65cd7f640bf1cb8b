"""The optimiser: finds a best setting known by construction, shares a study between
worker processes with no trial lost or run twice, survives a killed worker, and refuses a
bad search space by name before any trial runs."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import optuna
import pandas as pd
import pytest

from tests.helpers import bar_venue
from twin import Levers, Scenario, cli, load_venue
from twin.optimize import OBJECTIVE_NAMES, create_study, optimize
from twin.search import SearchError, SearchSpace, staff_of
from twin.study_results import pareto_front, trials_frame, write_results

pytestmark = pytest.mark.usefixtures("one_thread")

GATE_STAFF = 20  # the one-bar venue's gate servers, always at work
BUDGET = GATE_STAFF + 5  # room for five at the bar


def write_scenario(tmp_path: Path, search: dict, avatars: int = 300, **extra) -> Path:
    """A one-bar venue (every visitor queues at the bar), saved with its scenario."""
    venue = bar_venue().save(tmp_path / "one-bar.json")
    scenario = Scenario(
        name="bar",
        venue=str(venue),
        avatars=avatars,
        hours=1.0,
        policy="scripted",
        search=search,
        **extra,
    )
    return scenario.to_toml(tmp_path / "bar.toml")


BAR_SEARCH = {"servers": {"bar": [1, 8]}, "staff_budget": BUDGET}


def going(db: Path) -> int:
    """How many trials have drawn their levers and recorded a heartbeat since (the
    ``Objective`` beats right after drawing): 0 until the study is made."""
    if not db.exists():
        return 0
    query = (
        "SELECT COUNT(DISTINCT p.trial_id) FROM trial_params p JOIN trial_heartbeats h "
        "ON h.trial_id = p.trial_id"
    )
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return int(con.execute(query).fetchone()[0])
    except sqlite3.Error:
        return 0


def trial_states(db: Path) -> list[str]:
    """The trials' states straight from the SQLite file ([] until the study is made)."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return [r[0] for r in con.execute("SELECT state FROM trials ORDER BY number")]
    except sqlite3.Error:
        return []


def completed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))


# ============================================================================ the optimum
@pytest.mark.slow
def test_the_optimiser_finds_the_most_staff_the_budget_allows(tmp_path: Path) -> None:
    """The bar's wait falls as servers rise, and the budget leaves room for five: the best
    wait, the best satisfaction and the best scenario all have five at the bar."""
    path = write_scenario(tmp_path, BAR_SEARCH)
    out = tmp_path / "study"
    scenario = Scenario.from_toml(path)
    study = optimize(scenario, trials=16, seeds=2, out=out, progress=False)
    assert len(completed(study)) == 16
    summary = write_results(study, out)
    assert summary["best"]["mean_wait_s"]["params"] == {"servers.bar": 5}
    assert summary["best"]["mean_satisfaction"]["params"] == {"servers.bar": 5}
    assert summary["best"]["mean_wait_s"]["staff"] == BUDGET
    assert summary["balanced"]["params"] == {"servers.bar": 5}

    frame = trials_frame(study)
    over = frame["staff"] > BUDGET
    assert over.any(), "the sampler should have tried some settings over the budget"
    assert not frame.loc[over, "feasible"].any()  # and they are infeasible
    assert set(pd.read_csv(out / "pareto.csv")["param.servers.bar"]) == {5}
    # Waits fall with servers in the trials themselves (the twin reacts to the lever).
    feasible = frame[frame["feasible"]].groupby("param.servers.bar")["mean_wait_s"].mean()
    assert feasible.is_monotonic_decreasing and len(feasible) >= 3

    best = Scenario.from_toml(out / "best.toml")
    assert best.levers.servers == {"bar": 5}
    assert staff_of(best, best.load_venue()) == BUDGET
    assert (
        cli.main(["simulate", str(out / "best.toml"), "--quiet", "--out", str(tmp_path / "r")]) == 0
    )
    kpis = json.loads((tmp_path / "r" / "kpis.json").read_text())
    run = study.trials[summary["balanced"]["trial"]].user_attrs["mean_wait_s_runs"][0]
    assert kpis["mean_wait_s"] == pytest.approx(run)  # the same seed: the same run


def test_pareto_front_keeps_only_feasible_undominated_trials() -> None:
    frame = pd.DataFrame(
        {
            "trial": [0, 1, 2, 3, 4],
            "state": ["COMPLETE"] * 4 + ["FAIL"],
            "crowd_risk": [0.0, 0.0, 5.0, 0.0, 0.0],
            "mean_wait_s": [10.0, 20.0, 5.0, 1.0, 0.0],
            "mean_satisfaction": [0.5, 0.9, 0.1, 0.9, 1.0],
            "feasible": [True, True, True, False, True],
        }
    )
    # 3 is infeasible and 4 failed; 0 and 1 trade wait against satisfaction; 2 has the
    # shortest wait among the rest.
    assert sorted(pareto_front(frame)["trial"]) == [0, 1, 2]


# ============================================================================ workers
@pytest.mark.slow
def test_two_workers_share_the_trials_with_none_lost_or_run_twice(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, BAR_SEARCH)
    out = tmp_path / "study"
    study = optimize(
        Scenario.from_toml(path), trials=6, seeds=1, workers=2, out=out, progress=False
    )
    trials = study.get_trials()
    assert [t.number for t in trials] == list(range(6))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    # Two processes ran them: the trials overlap in time.
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))
    # Asking again for 6 runs nothing more; asking for 8 runs two more on the same study.
    again = optimize(Scenario.from_toml(path), trials=8, seeds=1, out=out, progress=False)
    assert [t.number for t in again.get_trials()] == list(range(8))
    assert len(completed(again)) == 8


@pytest.mark.slow
def test_a_killed_worker_leaves_a_study_that_resumes(tmp_path: Path) -> None:
    """SIGKILL a worker in the middle of a trial, run the same command again at once: the
    killed trial is failed on start (its process is gone), not a heartbeat grace later, its
    levers run again once, first of all, and the study finishes."""
    path = write_scenario(tmp_path, BAR_SEARCH, avatars=3000)
    out = tmp_path / "study"
    command = [sys.executable, "-m", "twin.cli", "optimize", str(path), "--trials", "6"]
    command += ["--seeds", "2", "--heartbeat", "1", "--quiet", "--out", str(out)]
    worker = subprocess.Popen(command, start_new_session=True, cwd=Path(__file__).parents[1])
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:  # read the file, not through a second storage
            time.sleep(0.2)
            states = trial_states(out / "study.db")
            beating = going(out / "study.db") >= len(states)  # the running one too
            if states.count("COMPLETE") >= 1 and states[-1:] == ["RUNNING"] and beating:
                break
        else:
            pytest.fail("the worker never got going")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    storage = f"sqlite:///{out.resolve() / 'study.db'}"
    study = optuna.load_study(study_name="bar-one-bar", storage=storage)
    running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert len(running) == 1, [t.state for t in study.get_trials()]
    killed = running[0]
    scenario = Scenario.from_toml(path)  # at once: its heartbeat is not stale yet
    resumed = optimize(scenario, trials=6, seeds=2, out=out, progress=False, heartbeat_s=1)
    trials = resumed.get_trials()
    states = [t.state for t in trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 6
    assert trials[killed.number].state == optuna.trial.TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params
    assert retries[0].state == optuna.trial.TrialState.COMPLETE
    assert retries[0].number == killed.number + 1  # queued before any new trial ran
    assert trials_frame(resumed)["retry_of"].dropna().tolist() == [killed.number]


def test_an_extended_or_repeated_study_never_draws_a_trials_levers_again(tmp_path: Path) -> None:
    """Draws are seeded by the trial's number: extending a finished study from 3 trials to
    6 draws new levers (every process seeded its sampler with 0 before, and trials 3-5
    were trials 0-2 again), while the same study made again from scratch draws the same."""
    path = write_scenario(tmp_path, {"servers": {"bar": [1, 40]}}, avatars=100)
    scenario = Scenario.from_toml(path)

    def levers(study: optuna.Study) -> list[int]:
        return [t.params["servers.bar"] for t in study.get_trials()]

    first = levers(optimize(scenario, trials=3, seeds=1, out=tmp_path / "a", progress=False))
    extended = optimize(scenario, trials=6, seeds=1, out=tmp_path / "a", progress=False)
    drawn = levers(extended)
    assert drawn[:3] == first and drawn[3:] != drawn[:3]
    again = optimize(scenario, trials=6, seeds=1, out=tmp_path / "b", progress=False)
    assert levers(again) == drawn


# ============================================================================ the space
@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"servers": {"bar": [6, 2]}}, r"search.servers.bar: empty range \[6, 2\]"),
        ({"staffing": {"bar": [1, 2]}}, r"unknown lever 'search.staffing'"),
        ({"servers": {"pub": [1, 2]}}, r"search.servers: unknown zone 'pub'"),
        ({"servers": {"out": [1, 2]}}, r"search.servers.out: a exit has no servers"),
        (
            {"servers": {"bar": [3, 8]}, "staff_budget": 22},
            r"search.staff_budget 22 is below the least staff the search space allows \(23",
        ),
        ({"open_gates": [1, 3]}, r"search.open_gates must lie in 1..1"),
        ({"servers": {"bar": 4}}, r"search.servers.bar must be a range \[low, high\]"),
        ({}, r"search: no lever to search"),
        ({"capacity_caps": {"out": [1, 9]}}, r"search.capacity_caps.out: entrances and exits"),
        ({"gate_order": ["bar"]}, r"search.gate_order: 'bar' is not an entrance"),
    ],
)
def test_a_bad_search_space_is_refused_by_name_before_any_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture, search: dict, message: str
) -> None:
    path = write_scenario(tmp_path, search)
    out = tmp_path / "study"
    code = cli.main(["optimize", str(path), "--trials", "3", "--quiet", "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert str(path) in err
    assert pytest.importorskip("re").search(message, err), err
    assert not out.exists()  # nothing ran, nothing was written


def test_a_space_of_the_arrival_profile_alone_is_a_space(tmp_path: Path) -> None:
    """The arrival profile is a lever like the others (it was once refused as none)."""
    scenario = Scenario.from_toml(write_scenario(tmp_path, {"arrival_profile": [0.5, 3.0]}))
    space = SearchSpace.of(scenario)
    space.check(scenario, scenario.load_venue(), "s.toml")  # no error
    assert space.names() == ["arrival_profile"]


def test_one_rule_says_which_zones_take_which_lever() -> None:
    venue = load_venue("concert_hall")
    kinds = dict(zip(venue.zones, venue.kinds, strict=True))
    servers = Levers.zones_for("servers", venue)
    assert servers and all(venue.is_service[venue.index[z]] for z in servers)
    assert {kinds[z] for z in Levers.zones_for("open_gates", venue)} == {"entrance"}
    cappable = Levers.zones_for("capacity_caps", venue)
    assert not {kinds[z] for z in cappable} & {"entrance", "exit"}
    assert len(cappable) == venue.n_zones - len(venue.entrances) - len(venue.exits)
    assert Levers.zone_problem("capacity_caps", "main_hall", venue) is None
    assert Levers.zone_problem("servers", "main_hall", venue) == "a stage has no servers"


def test_the_default_space_moves_staff_within_todays_budget() -> None:
    scenario = Scenario(venue="expo")
    venue = scenario.load_venue()
    space = SearchSpace.of(scenario)
    bars = {venue.zones[i] for i in venue.of_kind("bar", "restroom", "shop")}
    assert set(space.servers) == bars
    assert space.staff_budget == staff_of(scenario, venue)
    for zone, (low, high) in space.servers.items():
        today = int(venue.servers[venue.index[zone]])
        assert low <= today <= high
    assert space.open_gates == (1, len(venue.entrances))
    # The space written as a [search] table reads back the same.
    again = SearchSpace.from_table(space.to_table(), scenario, venue, "table")
    assert again == space
    # Opening fewer gates saves their staff.
    fewer = space.apply(scenario, {"open_gates": 1})
    assert fewer.levers.open_gates == [space.gate_order[0]]
    assert staff_of(fewer, venue) < staff_of(scenario, venue)


def test_levers_of_a_trial_become_a_scenario(tmp_path: Path) -> None:
    scenario = Scenario(venue="concert_hall", hours=4.0)
    venue = scenario.load_venue()
    programme = scenario.programme(venue)
    space = SearchSpace.from_table(
        {
            "capacity_caps": {"main_hall": [500, 2000]},
            "show_start_h": {"1": [2.0, 2.5]},
            "arrival_window_h": [1.0, 3.0],
            "arrival_profile": [0.0, 1.0],
        },
        scenario,
        venue,
        "test",
    )
    params = {
        "capacity_caps.main_hall": 900,
        "show_start_h.1": 2.5,
        "arrival_window_h": 1.5,
        **{f"arrival_profile.{k}": 0.25 * k for k in range(4)},
    }
    changed = space.apply(scenario, params)
    assert changed.levers.capacity_caps == {"main_hall": 900}
    length = programme[1].end_h - programme[1].start_h
    assert (changed.shows[1].start_h, changed.shows[1].end_h) == (2.5, 2.5 + length)
    assert changed.shows[0] == programme[0]
    assert changed.arrival_window_h == 1.5
    assert changed.arrival_profile == [0.0, 0.25, 0.5, 0.75]
    changed.check(venue)  # a scenario the twin runs
    too_late = {"show_start_h": {"1": [2.0, 3.9]}}
    with pytest.raises(SearchError, match=r"search.show_start_h.1: a 1 h show must start in"):
        SearchSpace.from_table(too_late, scenario, venue, "test")


def test_a_study_name_holding_another_space_is_refused(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    path = write_scenario(tmp_path, BAR_SEARCH)
    scenario = Scenario.from_toml(path)
    space = SearchSpace.of(scenario)
    create_study(scenario, space, (0,), storage, "shared")
    create_study(scenario, space, (0,), storage, "shared")  # the same: joins it
    other = SearchSpace.of(scenario.replace(search={"servers": {"bar": [1, 4]}}))
    with pytest.raises(SearchError, match="--study shared: the storage holds a study"):
        create_study(scenario, other, (0,), storage, "shared")


def test_objectives_are_recorded_with_their_spread_over_seeds(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, BAR_SEARCH)
    study = optimize(Scenario.from_toml(path), trials=2, seeds=3, out=tmp_path, progress=False)
    for trial in completed(study):
        for i, name in enumerate(OBJECTIVE_NAMES):
            runs = trial.user_attrs[f"{name}_runs"]
            assert len(runs) == 3
            assert trial.values[i] == pytest.approx(sum(runs) / 3)
        assert len(set(trial.user_attrs["mean_wait_s_runs"])) == 3  # three seeds, three runs


def test_the_command_line_writes_every_result_file(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = write_scenario(tmp_path, BAR_SEARCH)
    out = tmp_path / "opt"
    args = ["optimize", str(path), "--trials", "4", "--seeds", "1", "--quiet", "--out", str(out)]
    assert cli.main(args) == 0
    names = {p.name for p in out.iterdir()}
    assert {"pareto.csv", "trials.csv", "best.toml", "summary.json", "report.html"} <= names
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 4 and set(trials["state"]) == {"COMPLETE"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials"] == {"COMPLETE": 4}
    assert summary["search"] == BAR_SEARCH
    shown = capsys.readouterr().out
    assert f"Pareto front: {len(summary['pareto_trials'])} of {summary['feasible']}" in shown
    assert "plotly" in (out / "report.html").read_text()[:100_000].lower()


# ============================================================================ PostgreSQL
def _postgres_bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:  # `make test` installs Debian's postgresql package
        pytest.fail(f"PostgreSQL's {name} not found: install the postgresql package")
    return found


@pytest.fixture
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL server on localhost, in a temporary data folder, for one test
    (as the postgres user when the tests run as root: the server refuses root)."""
    home = Path(tempfile.mkdtemp(prefix="venuetwin-pg-"))
    data, log = home / "data", home / "server.log"
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = partial(subprocess.run, check=True, capture_output=True, text=True)
    run([*as_user, _postgres_bin("initdb"), "-D", str(data), "-U", "venuetwin", "-A", "trust"])
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = _postgres_bin("pg_ctl")
    run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "start"])
    try:
        yield f"postgresql+psycopg2://venuetwin@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], check=False)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_two_optimisers_on_one_postgresql_study_survive_one_killed(
    tmp_path: Path, postgres_url: str
) -> None:
    """Two `venuetwin optimize` processes (two machines, as far as the study can tell) on
    one study in a real PostgreSQL server; one is killed in the middle of a trial. The
    other finishes the study: the killed trial fails when its heartbeat goes stale and its
    levers run again once; the two processes draw different levers; nothing is left
    running; the two stop at the trials asked for, not twice as many."""
    path = write_scenario(tmp_path, {"servers": {"bar": [1, 60]}}, avatars=3000)
    command = [sys.executable, "-m", "twin.cli", "optimize", str(path), "--trials", "8"]
    command += ["--seeds", "1", "--heartbeat", "1", "--quiet", "--storage", postgres_url]
    command += ["--study", "shared"]
    root = Path(__file__).parents[1]
    workers = [
        subprocess.Popen(
            [*command, "--out", str(tmp_path / f"machine{k}")], start_new_session=True, cwd=root
        )
        for k in (0, 1)
    ]
    victim, survivor = workers
    try:
        deadline = time.monotonic() + 180
        study = None
        while time.monotonic() < deadline:
            time.sleep(0.3)
            try:
                study = optuna.load_study(study_name="shared", storage=postgres_url)
            except KeyError:  # not made yet
                continue
            mine = [
                t
                for t in study.get_trials()
                if t.user_attrs.get("worker", {}).get("pid") == victim.pid and t.params
            ]
            running = [t for t in mine if t.state == optuna.trial.TrialState.RUNNING]
            if running and len(mine) >= 2:  # one done, one under way: kill it now
                break
        else:
            pytest.fail("the first optimiser never got going")
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        # The trial it died in: the one of its trials that never completed (the one seen
        # running may have completed between the look and the kill: a trial takes ~1 s).
        unfinished = [
            t
            for t in study.get_trials()
            if t.user_attrs.get("worker", {}).get("pid") == victim.pid
            and t.state != optuna.trial.TrialState.COMPLETE
        ]
        assert len(unfinished) == 1, unfinished
        killed = unfinished[0]
        assert survivor.wait(timeout=300) == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
    trials = optuna.load_study(study_name="shared", storage=postgres_url).get_trials()
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert 8 <= len(done) <= 9  # each stops at 8 completed (one more may finish alongside)
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    assert trials[killed.number].state == optuna.trial.TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params
    assert retries[0].state == optuna.trial.TrialState.COMPLETE

    def draws(pid: int) -> list[int]:  # the levers a process drew, in order (no retries)
        return [
            t.params["servers.bar"]
            for t in trials
            if t.user_attrs.get("worker", {}).get("pid") == pid
            and "failed_trial" not in t.system_attrs
        ]

    # Each process seeded its sampler alike before: both drew the same levers in turn.
    assert len(draws(victim.pid)) >= 2 and draws(victim.pid)[:2] != draws(survivor.pid)[:2]
