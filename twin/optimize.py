"""Optimising a venue's levers with Optuna on the twin.

The search space is the scenario's ``[search]`` table (``twin.search.SearchSpace``). A
trial sets the levers, runs the twin once per seed (the same seeds in every trial:
common random numbers, so trials differ by their levers, not by luck) and scores three
objectives on the means: crowd risk (person-minutes at Fruin level E or F, minimised),
mean queue wait (minimised) and mean satisfaction (maximised). The staff budget is an
Optuna constraint (staff - budget <= 0). ``Objective`` is a pure function of the trial.

Studies live in any SQLAlchemy URL (an SQLite file by default). The study is created once,
then ``workers`` processes (or other machines with the same URL and study name) run trials
on it; a worker that dies leaves a trial that is failed and run again once with the same
levers: at once when the study is resumed on the machine it died on (its process is gone),
else when its heartbeat is stale, so an interrupted study resumes where it stopped. Each
trial's draws are seeded by its number (``TrialSeededSampler``), so no process, resumption
or extension repeats another trial's draws.
"""

from __future__ import annotations

import datetime
import json
import multiprocessing
import os
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from twin.scenario import Scenario
from twin.search import SearchError, SearchSpace, staff_of

#: (name, direction, the KPI of ``twin.kpis.summarise`` it is) of every objective.
OBJECTIVES: tuple[tuple[str, str, str], ...] = (
    ("crowd_risk", "minimize", "person_minutes_los_ef"),
    ("mean_wait_s", "minimize", "mean_wait_s"),
    ("mean_satisfaction", "maximize", "mean_satisfaction"),
)
OBJECTIVE_NAMES: tuple[str, ...] = tuple(name for name, _, _ in OBJECTIVES)
#: Seconds between a running trial's heartbeats; a trial silent for three of them failed.
HEARTBEAT_S = 10
#: A failed trial's levers are run again this many times (a killed worker's trial: once).
RETRIES = 1
#: The trial's user attribute naming the process that runs it (host and pid).
WORKER_ATTR = "worker"


# ============================================================================ objective
def score(scenario: Scenario) -> dict[str, float]:
    """Run the twin once and return the objectives' KPIs."""
    from twin.model import VenueModel  # the model imports torch: only where it runs

    kpis = VenueModel(scenario).run().kpis()
    return {name: float(kpis[kpi]) for name, _, kpi in OBJECTIVES}


@dataclass
class Objective:
    """A trial: set the levers, run every seed, score the means; the spread is recorded."""

    scenario: Scenario
    space: SearchSpace
    seeds: tuple[int, ...]
    run: Callable[[Scenario], dict[str, float]] = score

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        # Who runs it, first of all: a resumed study fails at once the trials of this
        # machine's processes that died (``fail_dead_trials``), not a grace period later.
        trial.set_user_attr(WORKER_ATTR, {"host": socket.gethostname(), "pid": os.getpid()})
        params = self.space.suggest(trial, len(self.scenario.arrival_profile))
        beat = getattr(trial.storage, "record_heartbeat", None)
        if beat is not None and trial.storage.get_heartbeat_interval():
            # The first heartbeat as soon as the levers are drawn, not when Optuna's thread
            # first runs: a worker killed before that would leave a trial that no
            # heartbeat ever makes stale, and its retry would have no levers to repeat.
            beat(trial._trial_id)
        scenario = self.space.apply(self.scenario, params)
        staff = staff_of(scenario, scenario.load_venue())
        budget = self.space.staff_budget
        trial.set_user_attr("staff", staff)
        over = float(staff - budget) if budget is not None else 0.0
        trial.set_user_attr("constraint", over)
        with warnings.catch_warnings():  # a retried trial has its constraint already
            warnings.filterwarnings("ignore", "The constraint value is ignored")
            trial.set_constraint("staff_over_budget", over)  # feasible when <= 0
        runs = [self.run(scenario.replace(seed=seed)) for seed in self.seeds]
        for name in OBJECTIVE_NAMES:
            values = [r[name] for r in runs]
            trial.set_user_attr(f"{name}_std", float(np.std(values)))
            trial.set_user_attr(f"{name}_runs", values)
        return tuple(float(np.mean([r[name] for r in runs])) for name in OBJECTIVE_NAMES)


# ============================================================================ studies
def default_storage(out_dir: str | os.PathLike[str]) -> str:
    return f"sqlite:///{Path(out_dir).resolve() / 'study.db'}"


def open_storage(url: str, heartbeat_s: int = HEARTBEAT_S) -> optuna.storages.RDBStorage:
    """The study's storage, with heartbeats so that a dead worker's trial is failed and
    retried (with the same levers) by whoever runs next."""
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=heartbeat_s,
                grace_period=3 * heartbeat_s,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    RETRIES
                ),
            )
    except Exception as exc:  # SQLAlchemy raises many kinds for a bad URL
        raise SearchError(f"--storage {url}: cannot open the study storage ({exc})") from None


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """Optuna's TPE sampler, seeded for each trial by the study's seed and the trial's
    number: the storage numbers trials uniquely, so no two trials draw from the same seed,
    whichever process or machine runs them and however often the study is resumed or
    extended (one sampler seeded per process drew the same levers again in every process
    and every resumption: trials 6 to 8 of an extended study were trials 0 to 2), and a
    study run again from scratch draws what it drew before."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._of_trial: dict[int, optuna.samplers.TPESampler] = {}

    def _for(self, trial: optuna.trial.FrozenTrial) -> optuna.samplers.TPESampler:
        sampler = self._of_trial.get(trial.number)
        if sampler is None:
            seed = (self.seed * 1_000_003 + trial.number) % 2**32
            sampler = self._of_trial[trial.number] = optuna.samplers.TPESampler(seed=seed)
        return sampler

    def infer_relative_search_space(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial
    ) -> dict[str, optuna.distributions.BaseDistribution]:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        search_space: dict[str, optuna.distributions.BaseDistribution],
    ) -> dict[str, Any]:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        param_name: str,
        param_distribution: optuna.distributions.BaseDistribution,
    ) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        state: optuna.trial.TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._for(trial).after_trial(study, trial, state, values)
        self._of_trial.pop(trial.number, None)


def make_sampler(seed: int) -> optuna.samplers.BaseSampler:
    return TrialSeededSampler(seed)


def fail_dead_trials(study: optuna.Study, grace_s: float) -> list[int]:
    """Fail the running trials whose process is known dead, and queue their levers again
    (once): those of this machine whose process is gone, and those that never said who
    runs them and started more than ``grace_s`` ago (killed at their very start). A trial
    of another machine is left to its heartbeat. Returns the trials failed."""
    host, failed = socket.gethostname(), []
    with warnings.catch_warnings():  # "experimental" since Optuna 2.8, and stable
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(RETRIES)
    now = datetime.datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        owner = trial.user_attrs.get(WORKER_ATTR)
        if owner is None:
            started = trial.datetime_start or now
            dead = (now - started).total_seconds() > grace_s
        else:
            dead = owner.get("host") == host and not _alive(int(owner.get("pid", -1)))
        if dead and study._storage.set_trial_state_values(  # noqa: SLF001
            trial._trial_id,  # noqa: SLF001
            optuna.trial.TrialState.FAIL,
        ):
            retry(study, study._storage.get_trial(trial._trial_id))  # noqa: SLF001
            failed.append(trial.number)
    return failed


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process: alive
        return True
    return True


def create_study(
    scenario: Scenario, space: SearchSpace, seeds: Sequence[int], storage: str, name: str
) -> optuna.Study:
    """Create the study (once, before any worker starts), or load it to resume; a study of
    the same name holding another scenario or space is refused."""
    record = {
        "scenario": scenario.replace(search=space.to_table()).to_dict(),
        "seeds": list(seeds),
    }
    study = optuna.create_study(
        study_name=name,
        storage=open_storage(storage),
        directions=[direction for _, direction, _ in OBJECTIVES],
        load_if_exists=True,
    )
    held = study.user_attrs.get("venuetwin")
    if held is None:
        study.set_user_attr("venuetwin", record)
        with warnings.catch_warnings():  # "experimental" since Optuna 3.2, and stable
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(OBJECTIVE_NAMES))
    elif held != _jsonable(record):
        raise SearchError(
            f"--study {name}: the storage holds a study of that name with another scenario, "
            "search space or seeds; give another --study name or --storage"
        )
    return study


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def objective_of(study: optuna.Study) -> Objective:
    """The objective a study was created for, rebuilt from the study itself."""
    held = study.user_attrs["venuetwin"]
    scenario = Scenario.from_dict(held["scenario"], f"study {study.study_name}")
    space = SearchSpace.of(scenario, f"study {study.study_name}")
    return Objective(scenario, space, tuple(held["seeds"]))


def run_worker(
    storage: str,
    name: str,
    n_trials: int,
    target: int,
    threads: int | None,
    heartbeat_s: int,
    callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
) -> None:
    """One worker: load the study and run up to ``n_trials`` trials on it, stopping when
    the study holds ``target`` completed trials, whoever completed them (other processes,
    other machines); torch on ``threads`` threads (None leaves this process's setting)."""
    if threads is not None:
        import torch

        torch.set_num_threads(max(1, threads))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=open_storage(storage, heartbeat_s))
    objective = objective_of(study)
    study.sampler = make_sampler(objective.seeds[0])
    enough = optuna.study.MaxTrialsCallback(target, states=(optuna.trial.TrialState.COMPLETE,))

    def reap(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        # After every trial: a dead process's trial on this machine (another worker's, or
        # another run's) is failed and its retry queued now, to run next.
        fail_dead_trials(study, grace_s=3 * heartbeat_s)

    study.optimize(objective, n_trials=n_trials, callbacks=[reap, enough, *callbacks])


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def optimize(
    scenario: Scenario,
    *,
    trials: int,
    out: str | os.PathLike[str],
    seeds: int = 3,
    workers: int = 1,
    storage: str | None = None,
    study_name: str | None = None,
    progress: bool = True,
    heartbeat_s: int = HEARTBEAT_S,
    source: str = "<memory>",
    on_trial: Callable[[int, int], None] | None = None,
) -> optuna.Study:
    """Run (or resume) a study until it holds ``trials`` completed trials.

    The space is checked before anything runs. ``workers`` processes share the trials
    still to do; with ``workers=1`` they run in this process. ``on_trial(done, trials)``
    is called as trials complete (the dashboard's progress bar).
    """
    if trials < 1 or seeds < 1 or workers < 1 or heartbeat_s < 1:
        raise SearchError("--trials, --seeds, --workers and --heartbeat must be at least 1")
    space = SearchSpace.of(scenario, source)
    Path(out).mkdir(parents=True, exist_ok=True)
    storage = storage or default_storage(out)
    name = study_name or f"{scenario.name}-{scenario.load_venue().name}"
    run_seeds = tuple(scenario.seed + k for k in range(seeds))
    study = create_study(scenario, space, run_seeds, storage, name)
    fail_dead_trials(study, grace_s=3 * heartbeat_s)  # a killed run's trial, now
    to_do = trials - finished(study)
    if to_do <= 0:
        return study
    shares = [to_do // workers + (1 if w < to_do % workers else 0) for w in range(workers)]
    shares = [s for s in shares if s > 0]
    bar = _progress(trials, finished(study), progress)

    def report(done: int) -> None:
        if bar:
            bar.n = done
            bar.refresh()
        if on_trial:
            on_trial(done, trials)

    if len(shares) == 1:  # in this process, with its own torch threads
        done = [lambda study, trial: report(finished(study))]
        run_worker(storage, name, shares[0], trials, None, heartbeat_s, callbacks=done)
    else:
        context = multiprocessing.get_context("spawn")
        threads = max(1, (os.cpu_count() or 1) // len(shares))  # the cores, shared out
        processes = [
            context.Process(
                target=run_worker,
                args=(storage, name, share, trials, threads, heartbeat_s),
                name=f"venuetwin-optimize-{w}",
            )
            for w, share in enumerate(shares)
        ]
        for p in processes:
            p.start()
        try:
            while any(p.is_alive() for p in processes):
                time.sleep(1.0)
                report(finished(study))
        finally:
            for p in processes:
                if p.is_alive():
                    p.terminate()
                p.join()
        failed = [p.name for p in processes if p.exitcode != 0]
        if failed:
            raise RuntimeError(f"optimisation worker(s) failed: {', '.join(failed)}")
    report(finished(study))
    if bar:
        bar.close()
    return study


def _progress(total: int, done: int, show: bool):  # noqa: ANN202
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc="trials", unit="trial")
