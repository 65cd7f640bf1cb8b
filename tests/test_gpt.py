"""The avatar's GPT (``llm.model``): attention paths, causality, KV cache, masks, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llm.features import N_SINCE, NEED_KINDS
from llm.model import GPT, GPTConfig

Z = 6


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(n_layer: int = 2, dropout: float = 0.1, seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    config = GPTConfig(
        n_zones=Z, block_size=16, n_layer=n_layer, n_head=2, n_embd=32, dropout=dropout, **kw
    )
    return GPT(config).eval()


def random_tokens(config: GPTConfig, b: int = 3, t: int = 10, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    sizes = {
        "zone": config.n_zones,
        "kind": config.n_kinds,
        "tod": config.n_tod,
        "stay": config.n_stay,
        "crowd": config.n_crowd,
        "dwell": config.n_dwell,
        "end_tod": config.n_tod,
        "end_stay": config.n_stay,
        **{f"since_{need}": N_SINCE for need in NEED_KINDS},
    }
    tokens = {k: torch.randint(0, n, (b, t), generator=g) for k, n in sizes.items()}
    options = torch.randint(0, config.n_options, (b, t, config.n_zones), generator=g)
    return tokens, options


def step(tokens: dict[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
    return {k: v[:, i : i + 1] for k, v in tokens.items()}


# ============================================================================ attention
@torch.no_grad()
def test_fast_and_weights_paths_agree_and_weights_are_causal():
    model = tiny()
    tokens, options = random_tokens(model.config)
    fast = model(tokens, options)
    slow = model(tokens, options, need_weights=True)
    assert fast.attention is None
    assert torch.allclose(fast.zone_logits, slow.zone_logits, atol=1e-5)
    assert torch.allclose(fast.hidden, slow.hidden, atol=1e-5)
    assert len(slow.attention) == model.config.n_layer
    above = torch.ones(10, 10, dtype=torch.bool).triu(1)
    for weights in slow.attention:
        assert weights.shape == (3, model.config.n_head, 10, 10)
        assert torch.allclose(weights.sum(-1), torch.ones(3, 2, 10), atol=1e-6)
        assert (weights[..., above] == 0).all()  # exactly 0: nothing from the future
        assert (weights[..., ~above] > 0).all()
        assert torch.equal(weights[..., 0, 0], torch.ones(3, 2))  # the first sees itself


@pytest.mark.parametrize("need_weights", [False, True])
@torch.no_grad()
def test_later_tokens_do_not_change_earlier_logits(need_weights):
    model = tiny()
    tokens, options = random_tokens(model.config, t=12)
    base = model(tokens, options, need_weights=need_weights).zone_logits
    t = 5
    changed = {k: v.clone() for k, v in tokens.items()}
    other, other_options = random_tokens(model.config, t=12, seed=99)
    for k in changed:
        changed[k][:, t + 1 :] = other[k][:, t + 1 :]
    new_options = options.clone()
    new_options[:, t + 1 :] = other_options[:, t + 1 :]
    after = model(changed, new_options, need_weights=need_weights).zone_logits
    assert torch.allclose(after[:, : t + 1], base[:, : t + 1], atol=1e-6)
    assert not torch.allclose(after[:, t + 1 :], base[:, t + 1 :], atol=1e-3)


@pytest.mark.parametrize("need_weights", [False, True])
@torch.no_grad()
def test_kv_cache_matches_the_full_forward(need_weights):
    model = tiny()
    tokens, options = random_tokens(model.config, t=10)
    full = model(tokens, options, need_weights=True)
    past = None
    for i in range(10):
        out = model(step(tokens, i), options[:, i : i + 1], need_weights=need_weights, past=past)
        past = out.past
        assert torch.allclose(out.zone_logits[:, 0], full.zone_logits[:, i], atol=1e-5), i
        assert all(k.shape[2] == i + 1 for k, _ in past)  # the cache grows one token a step
        if need_weights:
            for layer, weights in enumerate(out.attention):
                assert weights.shape == (3, 2, 1, i + 1)
                row = full.attention[layer][:, :, i, : i + 1]
                assert torch.allclose(weights[:, :, 0], row, atol=1e-5)


@torch.no_grad()
def test_kv_cache_continues_a_prefix():
    """A history fed at once, then the next tokens one by one (the live use)."""
    model = tiny()
    tokens, options = random_tokens(model.config, t=9)
    full = model(tokens, options).zone_logits
    prefix = {k: v[:, :6] for k, v in tokens.items()}
    past = model(prefix, options[:, :6]).past
    for i in range(6, 9):
        out = model(step(tokens, i), options[:, i : i + 1], past=past)
        past = out.past
        assert torch.allclose(out.zone_logits[:, 0], full[:, i], atol=1e-5)


@pytest.mark.parametrize(
    ("setting", "features", "weights"),
    [
        ("end_stay", ("end_stay",), "end_stay_emb.weight"),
        ("since_needs", tuple(f"since_{need}" for need in NEED_KINDS), "since_embs.0.weight"),
    ],
)
@torch.no_grad()
def test_a_newer_feature_is_read_by_models_that_have_it(setting, features, weights):
    """A model learnt with ``end_stay`` (how long the visitor has been there when it
    chooses), or with ``since_needs`` (how long ago it last met each need), answers
    differently when only that changes; one from before reads it as nothing, to the bit, in
    the full forward and the live step alike."""
    tokens, options = random_tokens(tiny().config, b=3, t=6)
    later = dict(tokens)
    for name in features:
        size = tiny().config.n_stay if name == "end_stay" else N_SINCE
        later[name] = (tokens[name] + 5) % size
    new, old = tiny(**{setting: 1}), tiny(**{setting: 0})
    assert not torch.allclose(new(tokens, options).zone_logits, new(later, options).zone_logits)
    assert torch.equal(old(tokens, options).zone_logits, old(later, options).zone_logits)
    c = old.config
    cache = torch.zeros(3, c.n_layer, 2, c.n_head, 8, c.n_embd // c.n_head)
    lengths = torch.zeros(3, dtype=torch.long)
    first = {f: t[:, 0] for f, t in tokens.items()}
    moved = {f: t[:, 0] for f, t in later.items()}
    a = old.decode_step(first, options[:, 0], cache, lengths)[0]
    b = old.decode_step(moved, options[:, 0], cache, lengths)[0]
    assert torch.equal(a, b)
    assert weights in new.state_dict() and weights not in old.state_dict()


@pytest.mark.parametrize("newer", [0, 1])
@pytest.mark.parametrize("need_weights", [False, True])
@torch.no_grad()
def test_decode_step_on_ragged_caches_matches_the_full_forward(need_weights, newer):
    """The live path: sequences of different lengths in one fixed-width cache, one new
    token each; stale numbers beyond a sequence's length must not leak in. Models with
    the time since arrival at the choice (``end_stay``), since each need was met
    (``since_needs``), queue waits costed apart (``wait_apart``) and queues' gaps to the
    quickest of their kind (``queue_gap``), and before them, alike."""
    model = tiny(end_stay=newer, since_needs=newer, wait_apart=newer, queue_gap=newer)
    c = model.config
    tokens, options = random_tokens(c, b=4, t=9)
    full = model(tokens, options, mask_illegal=False)
    size = c.n_embd // c.n_head
    cache = torch.randn(4, c.n_layer, 2, c.n_head, 12, size) * 100  # stale, yet finite
    lengths = torch.tensor([0, 3, 8, 5])
    for row, length in enumerate(lengths.tolist()):
        for layer, (k, v) in enumerate(full.past):
            cache[row, layer, 0, :, :length] = k[row, :, :length]
            cache[row, layer, 1, :, :length] = v[row, :, :length]
    rows = torch.arange(4)
    new = {f: t[rows, lengths] for f, t in tokens.items()}
    logits, hidden, kv, weights = model.decode_step(
        new, options[rows, lengths], cache, lengths, need_weights=need_weights
    )
    assert torch.allclose(logits, full.zone_logits[rows, lengths], atol=1e-5)
    assert torch.allclose(hidden, full.hidden[rows, lengths], atol=1e-5)
    for layer, (k, v) in enumerate(full.past):  # the new token's keys and values
        assert torch.allclose(kv[:, layer, 0], k[rows, :, lengths], atol=1e-5)
        assert torch.allclose(kv[:, layer, 1], v[rows, :, lengths], atol=1e-5)
    if need_weights:
        assert weights[0].shape == (4, c.n_head, 12)
        beyond = torch.arange(12)[None, :] > lengths[:, None]
        assert (weights[0].permute(1, 0, 2)[:, beyond] == 0).all()


@torch.no_grad()
def test_a_longer_queue_never_draws_a_model_that_costs_waits_apart():
    """With ``wait_apart``, a candidate's longer queue lowers its score or leaves it, whatever
    the context and its crowd, and changes nothing else: no other candidate's score, no
    hidden state (the venue's state in a token holds crowds, not waits). A model before it
    reads waits freely: there a longer queue can raise a score, as trained ones learnt
    from logs where queues are long because many want to go."""
    from llm.features import FULL_OPTION, N_CROWD, N_WAIT

    model = tiny(wait_apart=1)
    with torch.no_grad():  # steps and scales of all sizes, as training leaves them
        model.wait_steps.normal_(0, 2)
        model.wait_scale.weight.normal_(0, 1)
    tokens, options = random_tokens(model.config, b=6, t=5)
    crowd = options % N_CROWD
    before = model(tokens, crowd, mask_illegal=False)
    for level in range(1, N_WAIT):
        zone = level % model.config.n_zones
        longer = crowd.clone()
        longer[..., zone] += N_CROWD * level
        after = model(tokens, longer, mask_illegal=False)
        assert torch.equal(after.hidden, before.hidden)
        others = torch.arange(model.config.n_zones) != zone
        assert torch.equal(after.zone_logits[..., others], before.zone_logits[..., others])
        assert (after.zone_logits[..., zone] <= before.zone_logits[..., zone]).all()
        assert (after.zone_logits[..., zone] < before.zone_logits[..., zone]).any()
    full = crowd.clone()
    full[..., 0] = FULL_OPTION  # a full zone is scored as a state of its own
    assert not torch.equal(model(tokens, full).zone_logits, model(tokens, crowd).zone_logits)
    free = tiny(wait_apart=0)
    with torch.no_grad():
        free.option_state.weight.normal_(0, 1)
    rises = (
        free(tokens, crowd + N_CROWD * 5, mask_illegal=False).zone_logits
        > free(tokens, crowd, mask_illegal=False).zone_logits
    )
    assert rises.any()


@torch.no_grad()
def test_a_queue_is_scored_by_its_gap_to_the_quickest_open_place_of_its_kind():
    """``queue_gap``: a candidate's queue is compared with the shortest at a place of its
    kind that takes visitors, in wait levels (capped at ``N_QUEUE_GAPS - 1``); the quickest,
    a kind's only place and a full place have gap 0. A café whose own state is the same
    scores by another row of ``gap_state`` when the other café's queue is short than when
    it is as long: what a visitor choosing between them weighs."""
    from llm.features import FULL_OPTION, N_CROWD, N_QUEUE_GAPS

    model = tiny(queue_gap=1)
    model.set_vocabulary(torch.tensor([0, 0, 1, 1, 1, 2]), torch.ones(Z, Z, dtype=torch.bool))
    waits = torch.tensor([5, 1, 2, 2, 0, 6])
    gaps = model.queue_gaps(N_CROWD * waits)  # crowd level 0 everywhere
    assert (gaps // N_QUEUE_GAPS).tolist() == [0, 0, 1, 1, 1, 2]
    assert (gaps % N_QUEUE_GAPS).tolist() == [N_QUEUE_GAPS - 1, 0, 2, 2, 0, 0]
    full = N_CROWD * waits
    full[1] = FULL_OPTION  # the short café is full: the other is its kind's quickest
    assert (model.queue_gaps(full) % N_QUEUE_GAPS).tolist()[:2] == [0, 0]
    tokens, _ = random_tokens(model.config, b=2, t=3)
    as_long = (N_CROWD * waits).expand(2, 3, Z).clone()
    as_long[..., :2] = N_CROWD * 4  # both cafés: a 3-6 minute queue
    other_short = as_long.clone()
    other_short[..., 1] = 0  # the other café: none
    assert (model.queue_gaps(as_long)[..., 0] == 0).all()
    assert (model.queue_gaps(other_short)[..., 0] == N_QUEUE_GAPS - 1).all()
    with torch.no_grad():
        model.gap_state.weight.normal_(0, 1)
    rows = model.gap_state.weight[[0, N_QUEUE_GAPS - 1]].clone()  # the cafés' gaps 0 and 3+
    scored = [model(tokens, o, mask_illegal=False) for o in (as_long, other_short)]
    with torch.no_grad():
        model.gap_state.weight.zero_()
    for out, row, options in zip(scored, rows, (as_long, other_short), strict=True):
        unscored = model(tokens, options, mask_illegal=False).zone_logits[..., 0]
        assert torch.allclose(out.zone_logits[..., 0] - unscored, out.hidden @ row, atol=1e-4)


@pytest.mark.parametrize("newer", [0, 1])
@torch.no_grad()
def test_the_decoder_continues_a_reencoded_window_as_the_whole_sequence_would(newer):
    """``Decoder.reencode`` puts a window of tokens into cache slots (one forward pass);
    ``Decoder.step`` then adds one token per slot (NumPy, one thread), for a few sequences
    and for many: the logits are those of a forward pass over the whole sequence, each slot
    holds one more token, and the user's thread settings are left as they were. Models
    with every newer feature and before them alike."""
    import numpy as np

    from llm import decoder as live
    from llm.features import FEATURES

    model = tiny(dropout=0.0, end_stay=newer, since_needs=newer, wait_apart=newer, queue_gap=newer)
    if newer:  # places of three kinds, so that queue gaps are compared within a kind
        kinds = torch.tensor([0, 0, 1, 1, 1, 2])
        model.set_vocabulary(kinds, torch.ones(Z, Z, dtype=torch.bool))
    c = model.config
    threads = torch.get_num_threads()
    for b in (3, 300):
        tokens, _ = random_tokens(c, b=b, t=7, seed=b)
        venue = torch.randint(
            0, c.n_options, (c.n_zones,), generator=torch.Generator().manual_seed(b)
        )
        options = venue.expand(b, 7, -1)
        whole = model(tokens, options, mask_illegal=False).zone_logits[:, -1].numpy()
        decoder = live.Decoder(model, sequences=b + 4, window=10)
        slots = decoder.cache.take(np.arange(4, b + 4))
        decoder.reencode(slots, {f: t[:, :6] for f, t in tokens.items()}, options[:, :6])
        assert (decoder.cache.lengths[slots] == 6).all()
        last = np.stack([tokens[f][:, 6].numpy() for f in FEATURES], axis=1)
        logits, _ = decoder.step(slots, last, venue.numpy())
        np.testing.assert_allclose(logits, whole, atol=3e-5)
        assert (decoder.cache.lengths[slots] == 7).all()
        assert torch.get_num_threads() == threads
        decoder.cache.release(np.arange(4, 6))
        assert not decoder.cache.holds(np.arange(4, 6)).any() and decoder.cache.n_free == 6


def test_a_cache_holds_pages_for_the_tokens_it_holds_not_for_its_window():
    """Memory follows the tokens held: a sequence takes a page of 8 tokens as its context
    grows into it, gives pages back when re-encoded shorter or released, and a batch is
    gathered in page order, zeros where a sequence has no page yet."""
    import numpy as np

    from llm.decoder import ContextCache

    cache = ContextCache(sequences=5, layers=1, heads=2, window=32, head_size=4)
    assert cache.n_free_pages == 5 * 4  # a window of 32 in pages of 8: reserved, none taken
    slots = cache.take(np.array([3, 1]))
    rng = np.random.default_rng(0)
    written = []
    for _ in range(9):  # nine tokens each: two pages each, the second holding one token
        cache.reserve(slots)
        kv = rng.normal(size=(2, 1, 2, 2, 4)).astype(np.float32)
        cache.append(slots, kv)
        written.append(kv)
    assert (cache.lengths[slots] == 9).all() and cache.n_free_pages == 20 - 4
    past = cache.gather(slots, 10)  # two pages: 16 positions, the 9 tokens then zeros
    assert past.shape == (2, 1, 2, 2, 16, 4)
    np.testing.assert_array_equal(past[..., :9, :], np.stack(written, axis=4))
    assert not past[..., 9:, :].any()
    short = rng.normal(size=(2, 1, 2, 2, 3, 4)).astype(np.float32)
    cache.refill(slots, short)  # re-encoded to 3 tokens: one page each
    assert (cache.lengths[slots] == 3).all() and cache.n_free_pages == 20 - 2
    np.testing.assert_array_equal(cache.gather(slots, 3)[..., :3, :], short)
    cache.release(np.array([1, 3, 4]))  # 4 holds nothing: nothing to give back
    assert cache.n_free_pages == 20 and cache.n_free == 5 and not cache.holds(np.arange(5)).any()


@torch.no_grad()
def test_the_numpy_decoder_gives_decode_step_numbers():
    """The live path (``llm.decoder.Decoder``, NumPy) computes what ``decode_step`` does:
    logits, hidden states, new keys/values, the cache written at each length, the dwell
    logits; for one venue state shared by the batch, on ragged caches of stale numbers."""
    import numpy as np

    from llm.decoder import Decoder
    from llm.features import FEATURES

    model = tiny(n_layer=3)
    c = model.config
    tokens, options = random_tokens(c, b=5, t=1)
    new = {f: t[:, 0] for f, t in tokens.items()}
    venue = options[0, 0]  # (Z,): the venue as every avatar in this step sees it
    size = c.n_embd // c.n_head
    cache = torch.randn(5, c.n_layer, 2, c.n_head, 9, size) * 100
    lengths = torch.tensor([0, 3, 8, 5, 1])
    logits, hidden, kv, _ = model.decode_step(new, venue.expand(5, -1), cache.clone(), lengths)
    decoder = Decoder(model)
    past = cache.numpy().copy()
    stacked = np.stack([new[f].numpy() for f in FEATURES], axis=1)
    got = decoder.numpy_step(stacked, venue.numpy(), past, lengths.numpy())
    for mine, theirs in zip(got, (logits, hidden, kv), strict=True):
        np.testing.assert_allclose(mine, theirs.numpy(), atol=2e-5)
    rows = np.arange(5)
    np.testing.assert_allclose(past[rows, :, :, :, lengths.numpy()], kv.numpy(), atol=2e-5)
    place = torch.tensor([0, 5, 2, 2, 1])
    np.testing.assert_allclose(
        decoder.dwell_logits(got[1], place.numpy()),
        model.dwell_logits(hidden, place).numpy(),
        atol=2e-5,
    )
    with torch.no_grad():  # weights that change need a refresh, and get one
        model.zone_emb.weight.add_(1.0)
    assert not np.allclose(
        decoder.numpy_step(stacked, venue.numpy(), past.copy(), lengths.numpy())[0],
        model.decode_step(new, venue.expand(5, -1), cache.clone(), lengths)[0],
    )
    decoder.copy_weights()
    np.testing.assert_allclose(
        decoder.numpy_step(stacked, venue.numpy(), cache.numpy().copy(), lengths.numpy())[0],
        model.decode_step(new, venue.expand(5, -1), cache.clone(), lengths)[0].numpy(),
        atol=2e-5,
    )


@torch.no_grad()
def test_the_numpy_decoder_takes_each_deciders_own_venue_state():
    """Deciders of one step each see their own queue waits: the NumPy step, given the
    distinct option-state rows and each decider's row, computes what ``decode_step``
    does with every decider's own row, and differs from one shared row."""
    import numpy as np

    from llm.decoder import Decoder
    from llm.features import FEATURES

    model = tiny(n_layer=2)
    c = model.config
    tokens, options = random_tokens(c, b=6, t=1)
    new = {f: t[:, 0] for f, t in tokens.items()}
    distinct = options[:3, 0]  # (3, Z): three states of the venue
    row = np.array([0, 2, 1, 1, 0, 2])
    size = c.n_embd // c.n_head
    cache = torch.randn(6, c.n_layer, 2, c.n_head, 7, size)
    lengths = torch.tensor([0, 3, 6, 5, 1, 2])
    each = distinct[torch.from_numpy(row)]
    logits, hidden, kv, _ = model.decode_step(new, each, cache.clone(), lengths)
    decoder = Decoder(model)
    stacked = np.stack([new[f].numpy() for f in FEATURES], axis=1)
    got = decoder.numpy_step(
        stacked, distinct.numpy(), cache.numpy().copy(), lengths.numpy(), option_rows=row
    )
    for mine, theirs in zip(got, (logits, hidden, kv), strict=True):
        np.testing.assert_allclose(mine, theirs.numpy(), atol=2e-5)
    by_torch = decoder.torch_step(
        stacked, distinct.numpy(), cache.numpy().copy(), lengths.numpy(), option_rows=row
    )
    np.testing.assert_allclose(by_torch[0], logits.numpy(), atol=1e-6)
    shared = decoder.numpy_step(stacked, distinct[0].numpy(), cache.numpy().copy(), lengths.numpy())
    assert not np.allclose(shared[0][row != 0], logits.numpy()[row != 0], atol=1e-3)


# ============================================================================ masks
def sparse_legal() -> torch.Tensor:
    """Zone u may go to u+1 and u+2 (mod Z) only; zone 5 (the exit) goes nowhere."""
    legal = torch.zeros(Z, Z, dtype=torch.bool)
    for u in range(Z - 1):
        legal[u, (u + 1) % Z] = legal[u, (u + 2) % Z] = True
    return legal


def test_illegal_moves_get_minus_infinity_and_the_loss_stays_finite():
    model = tiny()
    kinds = torch.tensor([0, 2, 2, 6, 4, 1])
    legal = sparse_legal()
    model.set_vocabulary(kinds, legal)
    assert torch.equal(model.zone_kind, kinds) and torch.equal(model.legal, legal)
    tokens, options = random_tokens(model.config, b=4, t=8)
    tokens["zone"][0, -1] = 5  # an exit: no move is legal from it
    with torch.no_grad():
        logits = model(tokens, options).zone_logits
        unmasked = model(tokens, options, mask_illegal=False).zone_logits
    allowed = legal[tokens["zone"]]  # (B, T, Z)
    assert torch.isneginf(logits[~allowed]).all()
    assert torch.isfinite(logits[allowed]).all()
    assert torch.equal(logits[allowed], unmasked[allowed])
    assert torch.isfinite(unmasked).all()
    # Targets: a legal next zone, none after the exit (-1).
    zone = tokens["zone"]
    batch = dict(tokens, options=options)
    batch["next_zone"] = torch.where(zone == 5, -1, (zone + 1) % Z)
    batch["next_dwell"] = torch.where(zone == 5, -1, tokens["dwell"])
    model.train()
    zone_loss, dwell_loss = model.loss(batch)
    assert torch.isfinite(zone_loss) and torch.isfinite(dwell_loss)
    assert zone_loss.item() < torch.log(torch.tensor(float(Z))).item()  # 2 choices, not 6
    (zone_loss + dwell_loss).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # An illegal target is an impossible move: infinite loss.
    batch["next_zone"][0, 0] = torch.nonzero(~legal[zone[0, 0]])[0, 0]
    assert torch.isinf(model.loss(batch)[0])


# ============================================================================ options
@torch.no_grad()
def test_options_score_candidates_and_show_the_venue_to_the_context():
    """Options act in two places: each candidate's own state adds a learned vector to its
    score, and every zone's state enters the token (``venue_view``) as context."""
    model = tiny()
    tokens, options = random_tokens(model.config)
    calm = torch.zeros_like(options)
    packed = torch.full_like(options, model.config.n_options - 1)
    model.venue_state.weight.zero_()  # first the candidates' scores alone
    a, b = model(tokens, calm), model(tokens, packed)
    assert torch.equal(a.hidden, b.hidden)
    diff = b.zone_logits - a.zone_logits
    assert diff.abs().max() > 1e-4  # they move the zone scores...
    w = model.option_state.weight
    expected = (a.hidden @ (w[-1] - w[0]))[..., None].expand_as(diff)
    assert torch.allclose(diff, expected, atol=1e-5)  # ...by the learned state vectors
    nothing = model(tokens).zone_logits
    assert torch.allclose(a.zone_logits, nothing + (a.hidden @ w[0])[..., None], atol=1e-5)
    model.option_state.weight.zero_()
    assert torch.equal(model(tokens, calm).zone_logits, model(tokens, packed).zone_logits)

    # The venue view: the sum over zones of a vector per (zone, state).
    torch.nn.init.normal_(model.venue_state.weight, std=0.5)
    view = model.venue_view(options)
    by_hand = torch.zeros_like(view)
    n_options = model.config.n_options
    for z in range(model.config.n_zones):
        by_hand += model.venue_state.weight[z * n_options + options[..., z].long()]
    assert torch.allclose(view, by_hand, atol=1e-5)
    c, d = model(tokens, calm), model(tokens, packed)
    assert not torch.allclose(c.hidden, d.hidden)  # now the history sees the venue
    changed = options.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % model.config.n_options
    early = model(tokens, changed).hidden[:, :5]
    assert torch.allclose(early, model(tokens, options).hidden[:, :5], atol=1e-5)  # causal


# ============================================================================ training
def cycle_batch(n: int = 200, t: int = 12) -> dict[str, torch.Tensor]:
    """``n`` trajectories around a fixed 5-zone cycle, each starting at another zone;
    the dwell at zone z is bucket z."""
    start = torch.arange(n)[:, None] % 5
    zone = (start + torch.arange(t)[None, :]) % 5
    nxt = (zone + 1) % 5
    last = torch.zeros(n, t, dtype=torch.bool)
    last[:, -1] = True
    return {
        "zone": zone,
        "kind": zone % 3,
        "tod": torch.full((n, t), 36),
        "stay": torch.arange(t)[None, :].expand(n, t) // 4,
        "crowd": torch.zeros(n, t, dtype=torch.long),
        "dwell": zone.clone(),
        "end_tod": torch.full((n, t), 37),
        "end_stay": torch.arange(t)[None, :].expand(n, t) // 4,
        **{f"since_{need}": torch.zeros(n, t, dtype=torch.long) for need in NEED_KINDS},
        "options": torch.zeros(n, t, 5, dtype=torch.long),
        "next_zone": torch.where(last, -1, nxt),
        "next_dwell": torch.where(last, -1, nxt),
    }


def test_a_tiny_model_learns_a_zone_cycle():
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_zones=5, block_size=12, n_layer=1, n_head=2, n_embd=32, dropout=0.0))
    batch = cycle_batch()
    with torch.no_grad():
        start_loss = model.loss(batch)[0].item()
    assert start_loss == pytest.approx(torch.log(torch.tensor(5.0)).item(), abs=0.2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(150):
        zone_loss, dwell_loss = model.loss(batch)
        optimizer.zero_grad()
        (zone_loss + dwell_loss).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        zone_loss, dwell_loss = model.loss(batch)
        logits = model(batch, batch["options"]).zone_logits
    assert zone_loss.item() < 0.05
    assert dwell_loss.item() < 0.05
    has = batch["next_zone"] >= 0
    assert torch.equal(logits.argmax(-1)[has], batch["next_zone"][has])


# ============================================================================ cost
def test_flops_per_token_grows_with_depth_and_context():
    flops = [tiny(n_layer=n).flops_per_token() for n in (1, 2, 4)]
    assert 0 < flops[0] < flops[1] < flops[2]
    model = tiny(n_layer=2)
    c = model.config
    assert model.flops_per_token(8) == 6 * model.matmul_weights() + 12 * 2 * c.n_embd * 8
    assert model.forward_flops(8) * 3 == model.flops_per_token(8)
    assert model.flops_per_token(64) > model.flops_per_token(8)
    # More option states: one more row of the option read-out per state is multiplied, the
    # venue-state lookup table (a row per zone and state, only summed) grows far more.
    wider = tiny(n_layer=2, n_options=c.n_options + 3)
    assert wider.matmul_weights() - model.matmul_weights() == 3 * c.n_embd
    assert wider.n_params() - model.n_params() > 3 * c.n_embd * c.n_zones


# ============================================================================ profiles
@torch.no_grad()
def test_a_declared_profile_reaches_every_path_alike_and_pulls_towards_its_zones():
    """A visitor's profile (``n_profile``) is added to every token and pulls the next-zone
    logits towards the zones it declared: a declared zone gains exactly its kind's
    ``interest_gain`` while the others' logits stay put. With the pull on the places seen
    in the context (``seen_gain``), the full forward, ``decode_step`` and the NumPy decoder
    give the same numbers."""

    from llm.features import profile_size

    model = tiny(n_profile=profile_size(Z), n_show_states=6)
    c = model.config
    with torch.no_grad():
        model.interest_gain.fill_(1.5)
    tokens, options = random_tokens(c, b=3, t=6)
    profile = torch.zeros(3, c.n_profile, dtype=torch.uint8)
    profile[0, 2] = profile[1, Z + 7] = 1  # zone 2 declared; a hashed tag
    without = model(tokens, options, mask_illegal=False)
    full = model({**tokens, "profile": profile}, options, mask_illegal=False)
    assert not torch.allclose(full.hidden[1], without.hidden[1])  # the tag changes context
    assert torch.allclose(full.hidden[2], without.hidden[2])  # nothing declared: no change
    model.interest_gain.zero_()  # the pull alone: zone 2 of row 0, by its kind's gain
    pull = (
        full.zone_logits
        - model({**tokens, "profile": profile}, options, mask_illegal=False).zone_logits
    )
    model.interest_gain.fill_(1.5)
    expected = torch.zeros_like(pull)
    expected[0, :, 2] = 1.5
    assert torch.allclose(pull, expected, atol=1e-5)
    # The places already visited pull too (here: away), and the programme's show states
    # score the candidates, in every path alike.
    model.seen_gain.fill_(-2.0)
    shows = torch.randint(0, 6, (3, 6, Z), generator=torch.Generator().manual_seed(3))
    tokens["shows"] = shows
    full = model({**tokens, "profile": profile}, options, mask_illegal=False)
    cache, lengths = cache_of(full, c, visits=5)
    new = {f: t[:, 5] for f, t in tokens.items()}
    seen = torch.nn.functional.one_hot(tokens["zone"][:, :6], Z).amax(dim=1)  # (3, Z)
    no_shows = {k: v for k, v in tokens.items() if k != "shows"}
    blind = model({**no_shows, "profile": profile}, options, mask_illegal=False)
    assert not torch.allclose(full.zone_logits, blind.zone_logits)  # the programme counts
    assert torch.allclose(full.hidden, blind.hidden)  # ... in the scores, not the context
    new |= {"profile": profile, "seen": seen}
    logits, hidden, _, _ = model.decode_step(new, options[:, 5], cache.clone(), lengths)
    assert torch.allclose(logits, full.zone_logits[:, 5], atol=1e-5)
    numpy_step_matches(model, new | {"shows": shows[:, 5]}, options[0, 5], cache, lengths)


def numpy_step_matches(model: GPT, new: dict, venue, cache, lengths) -> None:  # noqa: ANN001
    """The NumPy decoder's step gives ``decode_step``'s logits for the new tokens ``new``
    (with ``profile``, ``seen``, ``shows`` where given) over one venue state."""
    import numpy as np

    from llm.decoder import Decoder
    from llm.features import FEATURES

    b = len(lengths)
    logits, _, _, _ = model.decode_step(new, venue.expand(b, -1), cache.clone(), lengths)
    stacked = np.stack([new[f].numpy() for f in FEATURES], axis=1)
    extra = {k: new[k].numpy() for k in ("profile", "seen", "shows") if k in new}
    got, _, _ = Decoder(model).numpy_step(
        stacked, venue.numpy(), cache.numpy().copy(), lengths.numpy(), **extra
    )
    np.testing.assert_allclose(got, logits.numpy(), atol=2e-5)


def cache_of(full, config: GPTConfig, visits: int, width: int = 8):  # noqa: ANN001, ANN201
    """The keys and values of the first ``visits`` tokens of a forward pass ``full`` as a
    decoder's cache of ``width`` positions, and the lengths."""
    b = full.hidden.shape[0]
    size = config.n_embd // config.n_head
    cache = torch.zeros(b, config.n_layer, 2, config.n_head, width, size)
    for layer, (k, v) in enumerate(full.past):
        cache[:, layer, 0, :, :visits] = k[:, :, :visits]
        cache[:, layer, 1, :, :visits] = v[:, :, :visits]
    return cache, torch.full((b,), visits)


def test_the_programme_in_every_token_is_the_same_in_every_path():
    """A model with ``show_view`` sees every zone's show state in its context, not only in
    the candidates' scores: the hidden state changes with the programme, and the full
    forward, ``decode_step`` and the NumPy decoder (which adds only the zones that show a
    show to the "none" sum) agree, "wanted over" included."""

    from llm.features import N_SHOW_STATES

    model = tiny(n_show_states=N_SHOW_STATES, show_view=1)
    c = model.config
    with torch.no_grad():  # a view strong enough to move the logits visibly
        model.programme_state.weight.normal_(0.0, 0.5)
    tokens, options = random_tokens(c, b=3, t=6)
    shows = torch.randint(0, N_SHOW_STATES, (3, 6, Z), generator=torch.Generator().manual_seed(4))
    shows[2] = 0  # nothing on anywhere for the third
    with torch.no_grad():
        blind = model(tokens, options, mask_illegal=False)
        full = model({**tokens, "shows": shows}, options, mask_illegal=False)
    assert not torch.allclose(full.hidden[0], blind.hidden[0])  # the programme is context
    cache, lengths = cache_of(full, c, visits=5)
    new = {f: t[:, 5] for f, t in tokens.items()} | {"shows": shows[:, 5]}
    seen = torch.nn.functional.one_hot(tokens["zone"][:, :6], Z).amax(dim=1)
    logits, hidden, _, _ = model.decode_step(
        new | {"seen": seen}, options[:, 5], cache.clone(), lengths
    )
    assert torch.allclose(logits, full.zone_logits[:, 5], atol=1e-5)
    assert torch.allclose(hidden, full.hidden[:, 5], atol=1e-5)
    numpy_step_matches(model, new | {"seen": seen}, options[0, 5], cache, lengths)


def test_a_model_of_six_show_states_reads_wanted_over_as_none():
    """Checkpoints trained before "wanted over" (six states, no view) take the new states
    and score such a zone as "none", as they were trained to."""
    from llm.features import WANTED_OVER

    model = tiny(n_show_states=6)
    tokens, options = random_tokens(model.config, b=2, t=4)
    shows = torch.zeros(2, 4, Z, dtype=torch.long)
    shows[:, :, 1] = WANTED_OVER
    new = model({**tokens, "shows": shows}, options, mask_illegal=False).zone_logits
    old = model({**tokens, "shows": torch.zeros_like(shows)}, options, mask_illegal=False)
    assert torch.equal(new, old.zone_logits)


def test_a_model_of_seven_show_states_reads_the_minutes_as_wanted_later():
    """Checkpoints trained before a wanted show's minutes (seven states: the shipped
    models of before) score "wanted in 30-40 min" as "wanted later", in the PyTorch model
    and as the live policy caps them (``cap_show_states``), and keep "wanted over"."""
    import numpy as np

    from llm.features import SHOW_STATES, WANTED_OVER, cap_show_states

    model = tiny(n_show_states=7, show_view=1)
    tokens, options = random_tokens(model.config, b=2, t=4)
    shows = torch.zeros(2, 4, Z, dtype=torch.long)
    shows[:, :, 1] = SHOW_STATES.index("wanted in 30-40 min")
    shows[:, :, 2] = WANTED_OVER
    later = shows.clone()
    later[:, :, 1] = SHOW_STATES.index("wanted later")
    with torch.no_grad():
        new = model({**tokens, "shows": shows}, options, mask_illegal=False)
        old = model({**tokens, "shows": later}, options, mask_illegal=False)
    assert torch.equal(new.zone_logits, old.zone_logits)
    np.testing.assert_array_equal(cap_show_states(shows.numpy(), 7), later.numpy())


def test_a_model_of_sixteen_show_states_reads_after_another_as_the_minutes():
    """Checkpoints trained before "after another" (sixteen states) score "wanted in 30-40
    min, after another" as "wanted in 30-40 min", in the PyTorch model and as the live
    policy caps them: what they were shown."""
    import numpy as np

    from llm.features import SHOW_STATES, cap_show_states

    model = tiny(n_show_states=16, show_view=1)
    tokens, options = random_tokens(model.config, b=2, t=4)
    shows = torch.zeros(2, 4, Z, dtype=torch.long)
    shows[:, :, 1] = SHOW_STATES.index("wanted in 30-40 min, after another")
    plain = shows.clone()
    plain[:, :, 1] = SHOW_STATES.index("wanted in 30-40 min")
    with torch.no_grad():
        new = model({**tokens, "shows": shows}, options, mask_illegal=False)
        old = model({**tokens, "shows": plain}, options, mask_illegal=False)
    assert torch.equal(new.zone_logits, old.zone_logits)
    np.testing.assert_array_equal(cap_show_states(shows.numpy(), 16), plain.numpy())
    assert torch.equal(model.known_shows(shows).long(), plain)


@torch.no_grad()
def test_a_model_that_says_until_the_show_ends_learns_it_as_a_class_of_its_own():
    """With ``show_end_dwell`` k the dwell head has k classes more, and a next visit that
    stayed until the end of the first show at its stage, or (k = 2) the next, is scored
    against its class (``UNTIL_SHOW_ENDS + 0`` or ``+ 1``); a model without that class
    scores the same visit against its dwell bucket."""
    import torch.nn.functional as F

    from llm.features import N_DWELL, UNTIL_SHOW_ENDS

    for flag in (0, 1, 2):
        model = tiny(dropout=0.0, show_end_dwell=flag)
        assert model.dwell_head.out_features == N_DWELL + flag
        tokens, options = random_tokens(model.config, b=2, t=5)
        batch = dict(tokens, options=options)
        batch["next_zone"] = (tokens["zone"] + 1) % Z
        batch["next_dwell"] = tokens["dwell"]
        batch["next_show_end"] = torch.full((2, 5), -1, dtype=torch.long)
        batch["next_show_end"][0, 1:3] = 0
        batch["next_show_end"][1, 2] = 1
        _, dwell_loss = model.loss(batch)
        out = model(batch, options)
        logits = model.dwell_logits(out.hidden, batch["next_zone"])
        target = batch["next_dwell"].clone()
        if flag >= 1:
            target[0, 1:3] = UNTIL_SHOW_ENDS
        if flag == 2:
            target[1, 2] = UNTIL_SHOW_ENDS + 1
        expected = F.cross_entropy(logits.flatten(0, 1), target.flatten())
        assert torch.allclose(dwell_loss, expected)


@torch.no_grad()
def test_a_model_before_full_zones_reads_one_as_its_most_crowded_state():
    """A model of 42 option states (before ``FULL_OPTION``) scores a full zone in a log read
    with capacities as crowd F with a queue of 15 minutes or more; one of 43 learns its
    own vector for it."""
    from llm.features import FULL_OPTION, N_OPTION, N_OPTION_STATES, option_state

    assert option_state(np.array([2, 5]), np.array([0.0, 2000.0])).tolist() == [2, N_OPTION - 1]
    full = option_state(np.array([2, 5]), np.array([0.0, 0.0]), np.array([True, False]))
    assert full.tolist() == [FULL_OPTION, 5]
    old = tiny()
    assert old.config.n_options == N_OPTION
    tokens, options = random_tokens(old.config, b=2, t=4)
    marked = options.clone()
    marked[:, :, 1] = FULL_OPTION
    crowded = options.clone()
    crowded[:, :, 1] = N_OPTION - 1
    assert torch.equal(old(tokens, marked).zone_logits, old(tokens, crowded).zone_logits)
    new = tiny(n_options=N_OPTION_STATES)
    assert not torch.equal(new(tokens, marked).zone_logits, new(tokens, crowded).zone_logits)
