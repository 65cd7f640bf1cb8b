"""Checkpoints (``llm.checkpoint``): safetensors only, checked on load, transferable."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from llm import checkpoint
from llm.checkpoint import CheckpointError, feature_spec, load, save, transfer
from llm.features import N_SINCE, NEED_KINDS
from llm.model import GPT, GPTConfig
from llm.vocab import ZoneVocab
from twin import load_venue

TRAINING = {"steps": 120, "val_loss": 1.234, "logs": ["visits.parquet"], "seed": 7}


pytestmark = pytest.mark.usefixtures("one_thread")


def venue_vocab(name: str) -> ZoneVocab:
    return load_venue(name).vocabulary()


@pytest.fixture(scope="module")
def vocab() -> ZoneVocab:
    return venue_vocab("concert_hall")


def make_model(vocab: ZoneVocab, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    config = GPTConfig(n_zones=len(vocab), block_size=16, n_layer=2, n_head=2, n_embd=32)
    model = GPT(config)
    with torch.no_grad():  # make every tensor distinctive (biases start at 0, norms at 1)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.set_vocabulary(torch.from_numpy(vocab.kind_ids), torch.from_numpy(vocab.destinations))
    return model.eval()


def tokens_for(vocab: ZoneVocab, config: GPTConfig, b: int = 2, t: int = 7):
    g = torch.Generator().manual_seed(3)
    tokens = {
        "zone": torch.randint(0, len(vocab), (b, t), generator=g),
        "tod": torch.randint(0, config.n_tod, (b, t), generator=g),
        "stay": torch.randint(0, config.n_stay, (b, t), generator=g),
        "crowd": torch.randint(0, config.n_crowd, (b, t), generator=g),
        "dwell": torch.randint(0, config.n_dwell, (b, t), generator=g),
        "end_tod": torch.randint(0, config.n_tod, (b, t), generator=g),
        "end_stay": torch.randint(0, config.n_stay, (b, t), generator=g),
        **{f"since_{need}": torch.randint(0, N_SINCE, (b, t), generator=g) for need in NEED_KINDS},
    }
    tokens["kind"] = torch.from_numpy(vocab.kind_ids)[tokens["zone"]]
    options = torch.randint(0, config.n_options, (b, t, len(vocab)), generator=g)
    return tokens, options


@pytest.fixture
def saved(tmp_path, vocab):
    model = make_model(vocab)
    path = save(tmp_path / "model.safetensors", model, vocab, TRAINING)
    return path, model


def rewrite(path, edit_tensors=None, edit_meta=None, metadata=True) -> None:
    """Rewrite a checkpoint with safetensors itself, editing its tensors or metadata."""
    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()[checkpoint.METADATA_KEY])
    if edit_tensors:
        edit_tensors(tensors)
    if edit_meta:
        edit_meta(meta)
    header = {checkpoint.METADATA_KEY: json.dumps(meta)} if metadata else None
    save_file(tensors, str(path), metadata=header)


# ============================================================================ round trip
def test_save_and_load_round_trip(saved, vocab):
    path, model = saved
    loaded = load(path)
    assert loaded.path == str(path)
    assert loaded.vocab == vocab and loaded.vocab.source == "venue:concert_hall"
    assert loaded.training == TRAINING
    assert loaded.model.config == model.config
    assert not loaded.model.training  # ready to use: eval mode
    original, again = model.state_dict(), loaded.model.state_dict()
    assert original.keys() == again.keys()
    assert all(torch.equal(original[k], again[k]) for k in original)
    # The vocabulary's kinds and next places are restored (they are not tensors in the file).
    assert torch.equal(loaded.model.zone_kind, torch.from_numpy(vocab.kind_ids))
    assert torch.equal(loaded.model.legal, torch.from_numpy(vocab.destinations))
    tokens, options = tokens_for(vocab, model.config)
    with torch.no_grad():
        before = model(tokens, options).zone_logits
        after = loaded.model(tokens, options).zone_logits
    assert torch.equal(before, after)
    assert torch.isneginf(after).any()  # the venue's moves are masked as before


def test_a_log_vocabulary_round_trips_exactly(tmp_path):
    names, kinds = ["gate", "hall", "out"], ["entrance", "hall", "exit"]
    area = [5 / 1.08, 39 / 1.08, 1.0]  # what ZoneVocab.from_log estimates from peaks
    legal = np.array([[0, 1, 0], [0, 1, 1], [0, 0, 0]], dtype=bool)
    log_vocab = ZoneVocab(tuple(names), tuple(kinds), np.array(area), legal, "log")
    path = save(tmp_path / "m.safetensors", make_model(log_vocab), log_vocab, {})
    loaded = load(path).vocab
    np.testing.assert_array_equal(loaded.area, log_vocab.area)
    assert loaded == log_vocab


def test_a_checkpoint_is_a_safetensors_file_written_atomically(saved, vocab):
    path, model = saved
    assert sorted(os.listdir(path.parent)) == ["model.safetensors"]  # no temp file left
    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()["venuetwin"])
        assert set(handle.keys()) == set(model.state_dict())
    assert meta["format_version"] == checkpoint.FORMAT_VERSION == 6
    assert meta["config"]["n_zones"] == len(vocab) == 13
    assert meta["vocab"]["names"] == list(vocab.names)
    assert meta["features"] == feature_spec()
    assert meta["training"] == TRAINING
    assert path.read_bytes()[8:9] == b"{"  # an 8-byte header size, then JSON: no pickle


def test_a_failed_save_keeps_the_old_checkpoint(saved, vocab):
    path, _ = saved
    before = path.read_bytes()
    with pytest.raises(TypeError):  # a training summary JSON cannot hold
        save(path, make_model(vocab, seed=1), vocab, {"when": object()})
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == ["model.safetensors"]
    # A good save replaces it whole.
    save(path, make_model(vocab, seed=1), vocab, {"steps": 1})
    assert load(path).training == {"steps": 1}
    assert sorted(os.listdir(path.parent)) == ["model.safetensors"]


# ============================================================================ refusals
def _refused(path) -> str:
    with pytest.raises(CheckpointError) as err:
        load(path)
    message = str(err.value)
    assert str(path) in message
    return message


def test_a_pickle_is_refused_without_being_unpickled(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    torch.save({"a": torch.zeros(2)}, path)

    def never(*args, **kwargs):
        raise AssertionError("a checkpoint was unpickled")

    monkeypatch.setattr(pickle, "loads", never)
    monkeypatch.setattr(pickle, "load", never)
    monkeypatch.setattr(pickle, "Unpickler", never)
    monkeypatch.setattr(torch, "load", never)
    assert "not a safetensors file" in _refused(path)


def test_random_bytes_are_refused(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    assert "not a safetensors file" in _refused(path)
    path.write_bytes(b"")
    assert "not a safetensors file" in _refused(path)


def test_a_safetensors_file_without_our_metadata_is_refused(saved):
    path, _ = saved
    rewrite(path, metadata=False)
    assert "not a venuetwin checkpoint (no 'venuetwin' metadata)" in _refused(path)


def test_another_format_version_is_refused(saved):
    path, _ = saved
    rewrite(path, edit_meta=lambda m: m.update(format_version=5))  # no profiles yet
    message = _refused(path)
    assert "format version 5, this venuetwin reads 6: retrain it with venuetwin train" in message


def test_a_tensor_of_the_wrong_shape_is_refused(saved):
    path, _ = saved

    def widen(tensors):
        tensors["blocks.1.mlp.c_fc.weight"] = torch.zeros(64, 32)

    rewrite(path, edit_tensors=widen)
    message = _refused(path)
    assert "tensor 'blocks.1.mlp.c_fc.weight' has shape (64, 32)" in message
    assert "(128, 32)" in message


def test_a_missing_tensor_is_refused(saved):
    path, _ = saved
    rewrite(path, edit_tensors=lambda t: t.pop("ln_f.bias"))
    assert "missing ['ln_f.bias']" in _refused(path)


def test_an_unexpected_tensor_is_refused(saved):
    path, _ = saved
    rewrite(path, edit_tensors=lambda t: t.update(lm_head=torch.zeros(3)))
    assert "unexpected ['lm_head']" in _refused(path)


@pytest.mark.parametrize(
    ("key", "value"),
    [("n_tod", 24), ("dwell_edges_s", [10, 60, 600]), ("zone_kinds", ["hall", "exit"])],
)
def test_other_feature_buckets_are_refused(saved, key, value):
    path, _ = saved
    rewrite(path, edit_meta=lambda m: m["features"].update({key: value}))
    message = _refused(path)
    assert f"other feature buckets ({key})" in message and "retrain" in message


@pytest.mark.parametrize(
    ("setting", "buckets", "other"),
    [
        (
            "since_needs",
            ("need_kinds", "since_edges_s"),
            {"need_kinds": ["bar"], "since_edges_s": [60]},
        ),
        ("queue_gap", ("queue_gaps",), {"queue_gaps": 9}),
    ],
)
def test_a_checkpoint_from_before_a_setting_loads_and_one_with_it_must_state_its_buckets(
    saved, setting, buckets, other
):
    """Checkpoints saved before ``since_needs`` (or ``queue_gap``) state no need buckets (no
    number of queue gaps): one whose model reads no needs (no gaps) loads (the shipped
    models of that time); one whose model reads them, or that states other buckets, is
    refused."""
    path, model = saved
    assert not getattr(model.config, setting)

    def before(meta):
        for key in buckets:
            meta["features"].pop(key)

    rewrite(path, edit_meta=before)
    assert not getattr(load(path).model.config, setting)
    rewrite(path, edit_meta=lambda m: m["config"].update({setting: 1}))
    assert f"other feature buckets ({', '.join(buckets)})" in _refused(path)
    rewrite(path, edit_meta=lambda m: m["features"].update(other))
    assert f"other feature buckets ({', '.join(buckets)})" in _refused(path)


def test_inconsistent_metadata_is_refused(saved):
    path, _ = saved
    rewrite(path, edit_meta=lambda m: m["config"].update(n_zones=14))
    assert "vocabulary has 13 zones, the config 14" in _refused(path)
    rewrite(path, edit_meta=lambda m: m["config"].update(n_zones=13, colour="blue"))
    assert "bad config or vocabulary" in _refused(path)
    rewrite(path, edit_meta=lambda m: m.pop("features"))
    assert "metadata has no 'features'" in _refused(path)


def test_a_missing_file_is_refused(tmp_path):
    assert "no such checkpoint file" in _refused(tmp_path / "nope.safetensors")


# ============================================================================ vocabularies
def other_vocab(vocab: ZoneVocab) -> ZoneVocab:
    """The concert hall with ``merch`` gone, ``foyer`` turned into a lounge and a new
    ``vip_bar``: shared zones keep their names."""
    keep = [i for i, n in enumerate(vocab.names) if n != "merch"]
    names = [vocab.names[i] for i in keep] + ["vip_bar"]
    kinds = [vocab.kinds[i] for i in keep] + ["bar"]
    kinds[names.index("foyer")] = "lounge"
    area = [float(vocab.area[i]) for i in keep] + [80.0]
    legal = np.ones((len(names), len(names)), dtype=bool)
    return ZoneVocab.from_venue(names, kinds, area, legal, "venue:concert_hall_v2")


def test_load_refuses_another_venues_vocabulary(saved, vocab):
    path, _ = saved
    assert load(path, venue_vocab=vocab).vocab == vocab  # its own venue is fine
    with pytest.raises(CheckpointError) as err:
        load(path, venue_vocab=other_vocab(vocab))
    message = str(err.value)
    assert str(path) in message
    assert "zones it lacks: vip_bar" in message
    assert "zones the venue lacks: merch" in message
    assert "zones of another kind: foyer" in message
    assert "venuetwin train --init" in message
    with pytest.raises(CheckpointError, match="zones it lacks: entrance_north"):
        load(path, venue_vocab=venue_vocab("expo"))


def test_load_refuses_the_same_zones_in_another_order(saved, vocab):
    path, _ = saved
    order = list(reversed(range(len(vocab))))
    shuffled = ZoneVocab.from_venue(
        [vocab.names[i] for i in order],
        [vocab.kinds[i] for i in order],
        vocab.area[order],
        vocab.legal[np.ix_(order, order)],
    )
    with pytest.raises(CheckpointError, match="the zones are in another order"):
        load(path, venue_vocab=shuffled)


def test_transfer_keeps_everything_but_the_new_zones(saved, vocab):
    path, _ = saved
    source = load(path)
    target = other_vocab(vocab)
    model = transfer(source, target, dropout=0.0)
    assert model.config.n_zones == len(target) == len(vocab) == 13
    assert model.config.dropout == 0.0
    assert model.config.n_embd == source.model.config.n_embd
    src, new = source.model.state_dict(), model.state_dict()
    assert src.keys() == new.keys()
    per_zone = ("zone_emb.weight", "venue_state.weight")
    for name in src:
        if name not in per_zone:
            assert torch.equal(new[name], src[name]), name
    old_emb, new_emb = src["zone_emb.weight"], new["zone_emb.weight"]
    states = model.config.n_options
    old_view = src["venue_state.weight"].view(len(vocab), states, -1)
    new_view = new["venue_state.weight"].view(len(target), states, -1)
    for i, (name, kind) in enumerate(zip(target.names, target.kinds, strict=True)):
        if name in ("foyer", "vip_bar"):  # another kind, or new: starts as its kind
            assert torch.equal(new_emb[i], torch.zeros_like(new_emb[i])), name
            assert torch.equal(new_view[i], torch.zeros_like(new_view[i])), name
        else:
            assert kind == vocab.kinds[vocab.index[name]]
            assert torch.equal(new_emb[i], old_emb[vocab.index[name]]), name
            assert torch.equal(new_view[i], old_view[vocab.index[name]]), name
    assert old_emb.abs().sum(1).min() > 0  # the kept rows were not zero to start with
    # The new model knows the new vocabulary: kinds, next places, a zone table per kind.
    assert torch.equal(model.zone_kind, torch.from_numpy(target.kind_ids))
    assert torch.equal(model.legal, torch.from_numpy(target.destinations))
    with torch.no_grad():
        table = model.zone_table()
        bar = target.index["vip_bar"]
        assert torch.equal(table[bar], model.kind_emb.weight[target.kind_ids[bar]])
    # It runs on the new venue's tokens and can be saved for it.
    tokens, options = tokens_for(target, model.config)
    with torch.no_grad():
        logits = model.eval()(tokens, options).zone_logits
    allowed = torch.from_numpy(target.destinations)[tokens["zone"]]
    assert torch.isfinite(logits[allowed]).all() and (logits[~allowed] == float("-inf")).all()
    again = save(path.parent / "fine.safetensors", model, target, {"init": str(path)})
    assert load(again, venue_vocab=target).training == {"init": str(path)}
