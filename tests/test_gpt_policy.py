"""GPT avatars: batched, cached, reproducible whatever the batching, and explainable."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.gpt_policy import GPTPolicy
from agents.markov_policy import MarkovPolicy
from llm import checkpoint
from llm.features import FEATURES, N_SHOW_STATES
from twin import Scenario, VenueModel, load_venue
from twin.catalog import shipped_model_path
from twin.crowd import IN_ZONE

pytestmark = pytest.mark.usefixtures("one_thread")


def run(policy: str = "gpt", **changes) -> VenueModel:  # noqa: ANN003
    scenario = Scenario(venue="concert_hall", avatars=600, hours=2.0, seed=4, policy=policy)
    return VenueModel(scenario.replace(**changes)).run()


def tiny_model_of(
    scenario: Scenario, folder, steps: int = 20, config: dict | None = None, **given
) -> checkpoint.Checkpoint:  # noqa: ANN003
    """A tiny GPT learnt in a few steps from one scripted run of ``scenario`` (with the
    ``programme`` or ``capacities`` given to training, and ``config`` added to its shape),
    loaded back from its checkpoint."""
    from llm.train import TrainConfig, train

    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "day.parquet"
    VenueModel(scenario).run().visits().to_parquet(log)
    train(
        [log],
        folder / "run",
        vocab=scenario.load_venue().vocabulary(),
        cfg=TrainConfig(max_steps=steps, eval_every=10, seed=0),
        model_config={"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16} | (config or {}),
        progress=False,
        **given,
    )
    return checkpoint.load(folder / "run" / "model.safetensors")


def test_gpt_avatars_visit_the_venue_and_leave() -> None:
    model = run()
    kpis = model.kpis()
    assert model.policy.name == "gpt"
    assert kpis["left"] == 600  # the venue is cleared at closing time
    visits = model.visits()
    assert visits.groupby("avatar_id").size().median() >= 4
    # Every move the GPT made is a legal move of the venue.
    index, adjacency = model.venue.index, model.venue.adjacency
    for _, trip in visits.groupby("avatar_id"):
        zones = [index[z] for z in trip["zone"]]
        assert all(adjacency[u, v] for u, v in zip(zones, zones[1:], strict=False))


def test_same_seed_same_run_whatever_the_batching() -> None:
    """Mesa's agent-by-agent stepping asks the GPT about one avatar at a time; the
    decisions an avatar makes in the same situation are the same as in a batch."""
    arrays = run(avatars=200)
    again = run(avatars=200)
    assert arrays.visits().equals(again.visits())
    policy = GPTPolicy(shipped_model_path("concert_hall"))
    one_by_one = VenueModel(
        Scenario(venue="concert_hall", avatars=200, hours=2.0, seed=4, policy="gpt"),
        policy=policy,
        stepping="agents",
    ).run()
    a, b = arrays.visits(), one_by_one.visits()
    # Same first moves: the first decisions see the same inputs in both runs.
    first = lambda v: v.groupby("avatar_id")["zone"].nth(1).sort_index().to_numpy()  # noqa: E731
    assert (first(a) == first(b)).mean() > 0.95
    assert abs(len(a) - len(b)) / len(a) < 0.1


def test_cache_gives_the_full_forward_numbers() -> None:
    """The probabilities a cached one-token step gave live equal a full forward over the
    avatar's context (recomputed by ``explain``), long trajectories and re-encoded caches
    included."""
    policy = GPTPolicy(shipped_model_path("expo"), window=8)  # most visit more places
    model = VenueModel(Scenario(venue="expo", avatars=300, hours=4.0, seed=2), policy=policy)
    checked, longest = live_against_explained(model, policy, every=7)
    assert checked >= 100
    assert longest >= policy.window  # some caches were full and re-encoded


def live_against_explained(model: VenueModel, policy: GPTPolicy, every: int) -> tuple[int, int]:
    """Run ``model`` and, every ``every`` steps, hold three deciders' live probabilities to a
    full forward over their context (``explain``); the decisions checked, the longest."""
    index = model.venue.index
    checked, longest = 0, 0
    while model.running:
        model.step()
        if model.steps % every or policy.last_avatars is None:
            continue
        for row, avatar in list(enumerate(policy.last_avatars))[:3]:
            visit = int(policy.count[avatar]) - 1
            explanation = policy.explain(int(avatar), visit)
            live = policy.last_probs[row]
            for zone, probability in explanation.candidates:
                assert live[index[zone]] == pytest.approx(probability, abs=1e-4)
            longest = max(longest, visit)
            checked += 1
        policy.last_avatars = None
    return checked, longest


def test_explanation_names_the_context_and_weighs_it() -> None:
    model = run()
    avatar = int(model.visits().groupby("avatar_id").size().idxmax())
    explanation = model.explain(avatar)
    layers, heads = model.policy.model.config.n_layer, model.policy.model.config.n_head
    t = len(explanation.context)
    assert explanation.attention.shape == (layers, heads, t, t)
    np.testing.assert_allclose(explanation.attention.sum(axis=-1), 1.0, atol=1e-5)
    assert np.allclose(np.triu(explanation.attention, k=1), 0.0)  # causal
    probabilities = [p for _, p in explanation.candidates]
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-6)
    zones = [z for z, _ in explanation.candidates]
    last = explanation.context[-1].split()[0]
    # The candidates are the places that can come next: one move, or beyond corridors.
    destinations, index = model.venue.vocabulary().destinations, model.venue.index
    assert all(destinations[index[last], index[z]] for z in zones)
    assert not any(model.venue.kinds[index[z]] == "corridor" for z in zones)
    trip = model.visits().query("avatar_id == @avatar")["zone"].tolist()
    places = [z for z in trip if model.venue.kinds[index[z]] != "corridor"]
    assert explanation.chosen == places[explanation.visit + 1]
    # An earlier decision, by model step.
    step = int(explanation.time_s // model.scenario.step_s) - 1
    earlier = model.explain(avatar, step=step)
    assert earlier.visit < explanation.visit and earlier.time_s < explanation.time_s


def test_explain_costs_nothing_until_asked() -> None:
    model = run(avatars=100)
    assert all(not hasattr(model.policy, name) for name in ("attention", "explanations"))
    with pytest.raises(ValueError, match="cannot explain"):
        run(policy="scripted", avatars=50).explain(0)


def test_a_model_for_another_venue_is_refused() -> None:
    with pytest.raises(checkpoint.CheckpointError, match="not this venue's"):
        VenueModel(
            Scenario(
                venue="expo", avatars=10, hours=1.0, model=str(shipped_model_path("concert_hall"))
            )
        )


def test_tokens_are_the_training_features() -> None:
    """What an avatar sees live is what the log reader computes from the twin's log (the
    expo: its visitors go to the lounge, a café, a restroom at any hour of their day)."""
    from llm.data import encode
    from llm.logs import read_logs

    model = run(venue="expo", avatars=300)
    path = "/tmp/venuetwin-test-live-tokens.parquet"
    model.visits().to_parquet(path)
    seqs = encode(read_logs([path]), model.venue.vocabulary())
    policy: GPTPolicy = model.policy
    since_lounge = FEATURES.index("since_lounge")
    met = []
    for trajectory, key in zip(seqs.trajectories()[:200], seqs.keys[:200], strict=True):
        avatar = int(key.split("/")[-1])
        start = int(np.flatnonzero(seqs.keys == key)[0])
        offset = int(seqs.offsets[start])
        n = len(trajectory) - 1  # the exit is never decided on
        asked = np.isfinite(policy.decided_at[avatar, :n])  # not when the venue was cleared
        live = policy.tokens[avatar, :n][asked]
        logged = np.stack([seqs.features[f][offset : offset + n] for f in FEATURES], axis=1)
        logged = logged[asked]
        # Every feature, the stay and the clock at its end included: the log's
        # ``leave_wait_s`` says how much of a dwell came after the choice (a door's queue);
        # how long ago each need was last met, however far back in the visit.
        np.testing.assert_array_equal(live, logged)
        met.extend(live[:, since_lounge])
    assert len(met) > 400  # decisions compared
    assert len(set(met)) >= 5  # "never", at the lounge just now, and some while ago


def live_and_logged(policy: GPTPolicy, seqs) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """(N, Z) option states every zone showed at the avatars' decisions at places, as the
    policy saw them live and as ``encode`` read them from the run's log (``seqs``)."""
    live, logged, _ = live_and_logged_at(policy, seqs)
    return live, logged


def live_and_logged_at(policy: GPTPolicy, seqs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # noqa: ANN001
    """``live_and_logged``, and when each decision was made (seconds after opening)."""
    live, logged, when = [], [], []
    for t, key in enumerate(seqs.keys):
        avatar, first = int(key.split("/")[-1]), int(seqs.offsets[t])
        for visit in range(int(seqs.offsets[t + 1]) - first - 1):  # not the exit
            call = policy.call_of[avatar, visit]
            if call >= 0 and np.isfinite(policy.decided_at[avatar, visit]):
                live.append(policy.states[call])
                logged.append(seqs.options[first + visit])
                when.append(policy.decided_at[avatar, visit])
    return np.array(live), np.array(logged), np.array(when)


def test_zones_show_live_what_the_log_reader_computes(tmp_path) -> None:
    """The crowd level and queue wait every zone shows at a decision, live, are what
    ``encode`` derives from the twin's own log (bars and a gate short of staff, so that
    queues form)."""
    from llm.data import encode
    from llm.features import N_CROWD
    from llm.logs import read_logs
    from twin import Levers

    short = Levers(servers={"hall_bar": 1, "foyer_bar": 1, "gate_main": 2})
    model = run(levers=short)
    model.visits().to_parquet(tmp_path / "visits.parquet")
    seqs = encode(read_logs([tmp_path / "visits.parquet"]), model.venue.vocabulary())
    policy: GPTPolicy = model.policy
    live, logged, when = live_and_logged_at(policy, seqs)
    assert len(live) > 1500  # decisions at places (corridors are walked through)
    assert (logged // N_CROWD > 0).any(axis=1).mean() > 0.5  # queues were there to see
    assert (live % N_CROWD == logged % N_CROWD).mean() > 0.995  # crowd levels
    # Queue waits: each decider sees the joins strictly before its own moment, as a log
    # shows a choice (llm.causal), and no service after the clearing. Every zone's wait
    # level agrees at 97% of decisions (the rest: joins of a step handled after its
    # decisions; docs/ARCHITECTURE.md, known limits); one wait for the step's deciders
    # (its first moment, every join of the step in) gave 89%.
    same = (live // N_CROWD == logged // N_CROWD).all(axis=1)
    assert same.mean() > 0.97
    # Steps where ten or more decide at once (a show's end: 449 decisions here): all
    # alike, where one wait for the step showed 15% of them another queue than the log.
    step = np.floor(when / model.scenario.step_s).astype(np.int64)
    _, which, count = np.unique(step, return_inverse=True, return_counts=True)
    busy = count[which] >= 10
    assert busy.sum() > 300
    assert same[busy].mean() > 0.995


def test_the_audience_leaves_when_the_show_ends() -> None:
    """The GPT picks how long to stay in dwell buckets; a stay whose bucket holds (or
    neighbours) the end of the show on stage ends with it, so the audience leaves about
    together, as the scripted visitors it learnt from do: the rush that fills the bars after
    a show. Drawn anywhere in the bucket instead, half as many left with the second show."""
    together = {}
    for policy in ("scripted", "gpt"):
        model = run(policy, avatars=3000, hours=4.0)  # the shipped model's training run
        visits, lay = model.visits(), model.layout
        start = (visits["timestamp"] - model.scenario.opening_time).dt.total_seconds()
        end = start + visits["dwell_s"]
        shares = []
        for stage, show_end in zip(lay.show_stage, lay.show_end_s, strict=True):
            watched = (visits["zone"] == lay.zones[stage]) & (start < show_end - 600)
            watched &= end > show_end - 600  # still there ten minutes before the end
            shares.append(float((abs(end[watched] - show_end) < 300).mean()))
        together[policy] = np.array(shares)
    assert len(together["gpt"]) == 2
    assert (together["scripted"] > 0.5).all()
    assert (together["gpt"] >= 0.8 * together["scripted"]).all(), together


def test_markov_policy_is_a_baseline_policy() -> None:
    model = run(policy="markov", avatars=300)
    assert isinstance(model.policy, MarkovPolicy)
    assert model.kpis()["left"] == 300
    assert (model.crowd.phase == IN_ZONE).sum() == 0


def test_at_the_door_an_avatar_thinks_again_with_the_queue_as_it_is_now() -> None:
    """An avatar one step from the café it chose, whose queue has grown since, chooses
    again with the model's odds now, from the same draw as the first time (its draws are
    keyed by its visit): so it changes its mind only as far as the odds have moved. With
    the cafés' staff cut, some keep their café and some go elsewhere."""
    from agents.gpt_policy import _ZONE_DRAW
    from llm.sampling import choose, uniforms
    from twin.scenario import Levers

    cut = Levers(servers={"cafe_west": 6, "cafe_east": 6})
    model = VenueModel(Scenario(venue="expo", avatars=6000, hours=2.0, seed=1, levers=cut))
    policy: GPTPolicy = model.policy
    kept, redrawn, asked = [], [], 0
    decide = policy.decide

    def watched(obs):  # noqa: ANN001, ANN202
        nonlocal asked
        door = policy.at_a_longer_queue(obs)
        who, goal = obs.avatar[door], obs.goal[door]
        visit = policy.count[who] - 1  # the visit they chose at (a passage is none)
        decision = decide(obs)
        if door.any():
            asked += int(door.sum())
            row = {a: i for i, a in enumerate(policy.last_avatars)}
            probs = policy.last_probs[[row[a] for a in who]]
            kept.extend(decision.next_zone[door] == goal)
            redrawn.extend(
                decision.next_zone[door]
                == choose(probs, uniforms(policy.seed, who, visit, _ZONE_DRAW))
            )
        return decision

    policy.decide = watched
    model.run()
    assert asked > 50
    assert all(redrawn)  # the model's odds now, at the avatar's own draw
    assert 0.2 < np.mean(kept) < 0.8, np.mean(kept)


@pytest.mark.parametrize("deciders", [12, 300])
def test_a_model_step_gives_the_same_numbers_in_numpy_and_in_pytorch(deciders: int) -> None:
    """The live decoder runs few deciders in NumPy, many in PyTorch: same numbers, with
    the deciders' profiles and the places in their contexts."""
    model = VenueModel(Scenario(venue="expo", avatars=10, hours=1.0, seed=1))
    policy: GPTPolicy = model.policy
    config = policy.model.config
    rng = np.random.default_rng(deciders)
    sizes = policy.model.feature_sizes()
    tokens = np.stack([rng.integers(0, n, deciders) for n in sizes], axis=1)
    state = rng.integers(0, config.n_options, config.n_zones)
    shape = (deciders, config.n_layer, 2, config.n_head, 20, config.n_embd // config.n_head)
    past = rng.normal(size=shape).astype(np.float32)
    lengths = rng.integers(0, 20, deciders)
    profile = rng.integers(0, 2, (deciders, config.n_profile)).astype(np.uint8)
    seen = rng.integers(0, 2, (deciders, config.n_zones)).astype(np.uint8)
    got = policy.decoder.torch_step(tokens, state, past.copy(), lengths, profile, seen)
    numpy_path = policy.decoder.numpy_step(tokens, state, past.copy(), lengths, profile, seen)
    assert config.n_profile  # the shipped model takes profiles
    for a, b in zip(got, numpy_path, strict=True):
        np.testing.assert_allclose(a, b, atol=3e-5)


def test_a_model_that_sees_the_programme_in_every_token_keeps_it_through_its_cache(
    tmp_path,
) -> None:
    """A model trained with the programme in every token (``show_view``): the probabilities
    a cached step gave live equal a full forward over the context with each visit's show
    states (``explain``), caches re-encoded from a short window included, so that the
    programme a re-encoded visit saw is the one it saw when it chose. The model also weighs
    queues against the quickest of their kind (``queue_gap``), as the live NumPy step and
    the full forward must alike."""
    from twin.shipped import programme_of

    scenario = Scenario(venue="expo", avatars=400, hours=4.0, seed=5, policy="scripted")
    ckpt = tiny_model_of(
        scenario, tmp_path, programme=programme_of(scenario), config={"queue_gap": 1}
    )
    assert ckpt.model.config.show_view == 1 and ckpt.model.config.n_show_states == N_SHOW_STATES
    assert ckpt.model.config.queue_gap == 1
    with torch.no_grad():  # a programme and queue gaps strong enough to matter
        ckpt.model.programme_state.weight.normal_(0.0, 0.3)
        ckpt.model.gap_state.weight.normal_(0.0, 0.3)
    policy = GPTPolicy(ckpt, window=6)
    model = VenueModel(scenario.replace(policy="gpt", seed=2, avatars=300), policy=policy)
    checked, longest = live_against_explained(model, policy, every=5)
    assert checked >= 50 and longest >= policy.window
    # An explanation names what each candidate showed of the programme to this visitor.
    booked = np.flatnonzero(policy.show_wanted.any(axis=1) & (policy.count > 3))[:20]
    shown = [
        what
        for avatar in booked
        for visit in range(int(policy.count[avatar]))
        for what in policy.explain(int(avatar), visit).shown
    ]
    assert any("wanted in" in what for what in shown)
    assert any(what.endswith("wanted on") for what in shown)


def test_an_explanation_says_how_much_longer_a_queue_was_than_the_quickest_of_its_kind():
    """What a candidate showed, in words: its crowd and queue, its queue's gap to the
    quickest place of its kind (a model that compares them), and its show state."""
    from agents.explain import describe_option
    from llm.features import N_CROWD, N_QUEUE_GAPS, SHOW_STATES

    state = 1 + N_CROWD * 4  # crowd B, a 3-6 minute queue
    assert describe_option(state) == "crowd B, queue <6 min"
    assert describe_option(state, gap=1, kind="bar") == (
        "crowd B, queue <6 min, 1 level over the quickest bar"
    )
    longest = describe_option(state, SHOW_STATES.index("show on"), N_QUEUE_GAPS - 1, "bar")
    assert (
        longest
        == f"crowd B, queue <6 min, {N_QUEUE_GAPS - 1}+ levels over the quickest bar, show on"
    )


def test_a_model_that_says_until_the_show_ends_leaves_with_it(tmp_path) -> None:
    """A model trained with the programme has the dwell classes "until the show ends" and
    "until the next show ends"; an avatar that draws the first at a stage stays until the
    first show there that is on or to come ends, read from the programme (forced here:
    every stay at a stage ends with its show, and no stay elsewhere is endless); one that
    draws the second stays on through the interval until the show after it ends (where
    there is one: else it draws another class); a model that never draws them leaves at
    its buckets."""
    from llm.features import MAX_SHOW_ENDS, UNTIL_SHOW_ENDS
    from twin.shipped import programme_of

    scenario = Scenario(venue="concert_hall", avatars=400, hours=4.0, seed=5, policy="scripted")
    ckpt = tiny_model_of(scenario, tmp_path, programme=programme_of(scenario))
    assert ckpt.model.config.show_end_dwell == MAX_SHOW_ENDS == 2
    ends_with_show = {}
    for nth, bias in ((0, 30.0), (0, -30.0), (1, 30.0)):
        with torch.no_grad():
            ckpt.model.dwell_head.bias[UNTIL_SHOW_ENDS : UNTIL_SHOW_ENDS + 2] = -30.0
            ckpt.model.dwell_head.bias[UNTIL_SHOW_ENDS + nth] = bias
        run = VenueModel(scenario.replace(policy="gpt", seed=2), policy=GPTPolicy(ckpt)).run()
        visits, lay = run.visits(), run.layout
        start = (visits["timestamp"] - run.scenario.opening_time).dt.total_seconds()
        chose = start + visits["dwell_s"] - visits["leave_wait_s"]
        ends = np.sort(lay.show_end_s)
        # stays that have the show to end, and for the second class the one after it too
        at_stage = (visits["zone"] == lay.zones[lay.show_stage[0]]) & (start < ends[-1 - nth])
        show_end = ends[np.searchsorted(ends, start[at_stage], side="right") + nth]
        ends_with_show[nth, bias] = float((abs(chose[at_stage] - show_end) < 60).mean())
        assert at_stage.sum() > 100 and np.isfinite(visits["dwell_s"]).all()
        assert run.kpis()["left"] == 400
    assert ends_with_show[0, 30.0] > 0.95, ends_with_show
    assert ends_with_show[0, -30.0] < 0.5, ends_with_show
    assert ends_with_show[1, 30.0] > 0.95, ends_with_show


def test_the_audience_leaving_at_a_shows_end_sees_what_its_log_shows(tmp_path) -> None:
    """Avatars that stay "until the show ends" leave with it; visitors in logs choose in
    the seconds around its end. Both see the show ending (``SHOW_ENDING_S``), and those who
    booked the hall's second set "wanted ending, another after": live, every zone's show
    state at every decision is what ``encode`` reads from the run's log."""
    from llm.data import encode
    from llm.features import SHOW_STATES, UNTIL_SHOW_ENDS
    from llm.logs import read_logs
    from twin.shipped import programme_of

    scenario = Scenario(venue="concert_hall", avatars=400, hours=4.0, seed=5, policy="scripted")
    ckpt = tiny_model_of(scenario, tmp_path, programme=programme_of(scenario))
    with torch.no_grad():
        ckpt.model.dwell_head.bias[UNTIL_SHOW_ENDS] = 30.0
    policy = GPTPolicy(ckpt)
    run = VenueModel(scenario.replace(policy="gpt", seed=2), policy=policy).run()
    run.visits().to_parquet(tmp_path / "gpt.parquet")
    seqs = encode(
        read_logs([tmp_path / "gpt.parquet"]), run.venue.vocabulary(), programme_of(scenario)
    )
    live, logged, where, whens = [], [], [], []
    for t, key in enumerate(seqs.keys):
        avatar, first = int(key.split("/")[-1]), int(seqs.offsets[t])
        n = int(seqs.offsets[t + 1]) - first - 1  # not the exit
        asked = np.flatnonzero(np.isfinite(policy.decided_at[avatar, :n]))
        when = policy.decided_at[avatar, asked].astype(np.float64)
        live.append(policy.shows_at(np.full(len(asked), avatar), when))
        logged.append(seqs.shows[first + asked])
        where.append(seqs.features["zone"][first + asked])
        whens.append(when)
    live, logged, where = np.concatenate(live), np.concatenate(logged), np.concatenate(where)
    assert len(live) > 1500
    np.testing.assert_array_equal(live, logged)
    # Leaving the hall as the first set ends: back after the interval, or home.
    hall = run.venue.zones.index("main_hall")
    when = np.concatenate(whens) - run.layout.show_end_s[0]
    leaving = [SHOW_STATES[s] for s in logged[(where == hall) & (abs(when) < 60), hall]]
    assert leaving.count("wanted ending, another after") > 50
    assert leaving.count("wanted ending") >= 10  # booked the first set only


def test_a_full_zone_shows_full_live_as_the_log_reader_reads_it(tmp_path) -> None:
    """A model trained with the day's capacities (``--capacities``) sees a zone that takes
    nobody more as full: a closed bar at every decision, the capped shop whenever as many
    are in as its cap, live as ``encode`` reads the twin's own log with
    those capacities; a model trained without them never sees it."""
    from llm.data import encode
    from llm.features import FULL_OPTION, N_OPTION, N_OPTION_STATES
    from llm.logs import read_logs
    from twin import Levers
    from twin.shipped import capacities_of

    levers = Levers(capacity_caps={"merch": 6, "foyer_bar": 0})
    scenario = Scenario(venue="concert_hall", avatars=600, hours=2.0, seed=4, policy="scripted")
    scenario = scenario.replace(levers=levers)
    capacities = capacities_of(scenario)
    assert capacities["merch"] == 6 and capacities["foyer_bar"] == 0
    assert "gate_main" not in capacities  # entrances and exits take anyone
    hall = load_venue("concert_hall")
    checkpoints = {
        name: tiny_model_of(scenario, tmp_path / name, steps=10, capacities=given)
        for name, given in (("with", capacities), ("without", None))
    }
    assert checkpoints["with"].model.config.n_options == N_OPTION_STATES
    assert checkpoints["without"].model.config.n_options == N_OPTION
    assert checkpoints["with"].training["capacities"]["foyer_bar"] == 0

    policy = GPTPolicy(checkpoints["with"])
    model = VenueModel(scenario.replace(policy="gpt"), policy=policy).run()
    model.visits().to_parquet(tmp_path / "visits.parquet")
    seqs = encode(read_logs([tmp_path / "visits.parquet"]), hall.vocabulary(), None, capacities)
    live, logged = (states == FULL_OPTION for states in live_and_logged(policy, seqs))
    bar, main = hall.index["foyer_bar"], hall.index["merch"]
    assert live[:, bar].all() and logged[:, bar].all()
    assert 0.1 < logged[:, main].mean() < 0.9, logged[:, main].mean()  # full, then not
    assert (live[:, main] == logged[:, main]).mean() > 0.98
    assert not (live & ~logged).any(axis=0)[[z for z in range(len(hall.zones)) if z != main]].any()

    plain = VenueModel(scenario.replace(policy="gpt"), policy=GPTPolicy(checkpoints["without"]))
    plain.run()
    assert not (plain.policy.states == FULL_OPTION).any()


def test_an_avatar_turned_away_from_a_bar_takes_its_odds_to_another_bar() -> None:
    """The odds of a bar (a restroom, a lounge) that refused an avatar go to the open places of its
    kind, in proportion to theirs; those of any other place (a booth) to every open place,
    as plain renormalisation does."""
    policy = GPTPolicy(shipped_model_path("expo"))
    VenueModel(Scenario(venue="expo", avatars=10, hours=0.5, seed=1), policy=policy)
    kinds = np.array(policy.layout.kinds)
    bars, booths = np.flatnonzero(kinds == "bar"), np.flatnonzero(kinds == "booth")
    logits = np.zeros((2, len(kinds)))
    legal = np.ones((2, len(kinds)), dtype=bool)
    away = np.zeros_like(legal)
    legal[0, bars[0]] = legal[1, booths[0]] = False
    away[0, bars[0]] = away[1, booths[0]] = True
    plain = policy.probabilities(logits, legal)
    kept = policy.probabilities(logits, legal, away)
    assert kept.sum(axis=1) == pytest.approx(1.0)
    assert kept[0, bars[0]] == 0.0
    # the shut bar's share (1/Z of the odds) went to the other bar, nothing else moved
    assert kept[0, bars[1]] == pytest.approx(2.0 / len(kinds))
    assert kept[0, booths[0]] == pytest.approx(1.0 / len(kinds))
    assert plain[0, bars[1]] == pytest.approx(1.0 / (len(kinds) - 1))
    np.testing.assert_allclose(kept[1], plain[1])  # a booth: as before


def test_a_show_at_a_stage_that_turned_an_avatar_away_reads_as_not_booked() -> None:
    """An avatar turned away from a full stage will not see its show there: the model is
    shown that stage's show as to one who did not book it (the scripted visitor gives such
    a show up too), so it chooses among the other things it came for instead of, as
    before, heading home (a log shows no refusal: no model learns what follows one)."""
    from llm.features import SHOW_STATES

    policy = GPTPolicy(shipped_model_path("concert_hall"))
    VenueModel(Scenario(venue="concert_hall", avatars=200, hours=4.0, seed=1), policy=policy)
    lay = policy.layout
    booked = np.flatnonzero(policy.show_wanted[:, 0])
    others = np.flatnonzero(~policy.show_wanted.any(axis=1))
    assert len(booked) >= 2 and len(others)
    who = np.array([booked[0], booked[1], others[0]])
    stage = int(lay.show_stage[0])
    now = np.full(3, lay.show_start_s[0] - 1200.0)  # twenty minutes before the first show
    before = policy.shows_at(who, now)
    assert SHOW_STATES[before[0, stage]].startswith("wanted")
    policy.turned_away[booked[0], stage] = True
    after = policy.shows_at(who, now)
    assert after[0, stage] == before[2, stage]  # as for a visitor who booked nothing
    assert not SHOW_STATES[after[0, stage]].startswith("wanted")
    np.testing.assert_array_equal(after[1], before[1])  # the others' as before
    np.testing.assert_array_equal(np.delete(after[0], stage), np.delete(before[0], stage))
