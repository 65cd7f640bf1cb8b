"""Checkpoints: ``model.safetensors`` with everything needed to use it in its metadata.

A checkpoint is a safetensors file (tensors only: nothing is ever unpickled) whose
metadata key ``venuetwin`` holds JSON: the format version, the model config, the zone
vocabulary (names, kinds, areas, legal moves), the feature buckets the model was trained
with, and a training summary (with how its logs were read: ``llm.logs.Columns``). Beside
the weights, tensors ``split.train``, ``split.validation`` and ``split.test`` hold digests
of the visitors of each part of its training logs (``llm.data.visitor_digests``: never
their ids), so that ``evaluate`` scores a model only on visitors it was not trained on.

Loading checks all of it and refuses, naming what is wrong,
a file that is not safetensors (a pickle renamed, say), tensors with wrong names or
shapes, other feature buckets, or a vocabulary that does not match the venue.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from llm import features, zones
from llm.features import profile_size
from llm.fileio import atomic_path
from llm.model import GPT, GPTConfig
from llm.vocab import ZoneVocab

FORMAT_VERSION = 6  # 2: candidates show their queue wait; 3: tokens know when visits end;
# 4: tokens are visits to places, and the next zone is the next place (through passages);
# 5: tokens see only what happened strictly before the choice (llm.causal), split by visitor
# 6: a visitor's declared profile (optional: n_profile 0 takes none)
#: The parts of a training split whose visitors a checkpoint records.
SPLIT_PARTS = ("train", "validation", "test")
METADATA_KEY = "venuetwin"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and what is wrong."""


def feature_spec() -> dict[str, Any]:
    """The feature buckets of this code; a checkpoint must have been trained with them."""
    return {
        "zone_kinds": list(zones.ZONE_KINDS),
        "fruin_bounds": list(zones.FRUIN_BOUNDS),
        "tod_bucket_s": features.TOD_BUCKET_S,
        "n_tod": features.N_TOD,
        "stay_bucket_s": features.STAY_BUCKET_S,
        "n_stay": features.N_STAY,
        "dwell_edges_s": list(features.DWELL_EDGES_S),
        "wait_edges_s": list(features.WAIT_EDGES_S),
        "profile_tag_buckets": features.N_TAG_BUCKETS,
        "need_kinds": list(features.NEED_KINDS),
        "since_edges_s": list(features.SINCE_EDGES_S),
        "queue_gaps": features.N_QUEUE_GAPS,
    }


#: Buckets that came with a setting of the model's config: a checkpoint from before them,
#: whose model lacks the setting, reads their features as nothing and need not state them.
_SPEC_OF_SETTING = {
    "need_kinds": "since_needs",
    "since_edges_s": "since_needs",
    "queue_gaps": "queue_gap",
}


def _changed_buckets(stated: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """The buckets of this code that a checkpoint's ``stated`` ones differ from."""
    spec = feature_spec()
    differ = {k for k in spec if stated.get(k) != spec[k]} | (set(stated) - set(spec))
    older = {
        k for k, setting in _SPEC_OF_SETTING.items() if k not in stated and not config.get(setting)
    }
    return sorted(differ - older)


@dataclass
class Checkpoint:
    """A loaded model with its vocabulary and training summary."""

    model: GPT
    vocab: ZoneVocab
    training: dict[str, Any] = field(default_factory=dict)
    path: str = "<memory>"
    #: Digests of the visitors of each part of the training split (``SPLIT_PARTS``).
    visitors: dict[str, np.ndarray] = field(default_factory=dict)

    def trained_on(self, digests: np.ndarray) -> np.ndarray:
        """(n,) bool: which visitors (``llm.data.visitor_digests``) the model learnt from
        (its training and validation parts: the latter chose when to stop)."""
        seen = [self.visitors.get(p, np.empty(0, np.int64)) for p in SPLIT_PARTS[:2]]
        return np.isin(digests, np.concatenate(seen))


def save(
    path: str | os.PathLike[str],
    model: GPT,
    vocab: ZoneVocab,
    training: dict[str, Any],
    visitors: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write ``model`` with its vocabulary, training summary and the digests of the
    visitors of each part of its split (``SPLIT_PARTS``), atomically."""
    meta = {
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "vocab": vocab.to_json(),
        "features": feature_spec(),
        "training": training,
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for part, digests in (visitors or {}).items():
        tensors[f"split.{part}"] = torch.from_numpy(np.asarray(digests, dtype=np.int64))
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(meta)})
    return Path(path)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint's JSON metadata, refusing files that are not venuetwin checkpoints."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(METADATA_KEY)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a safetensors file ({exc})") from None
    if raw is None:
        raise CheckpointError(f"{path}: not a venuetwin checkpoint (no '{METADATA_KEY}' metadata)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: metadata is not valid JSON ({exc})") from None
    except RecursionError:
        raise CheckpointError(f"{path}: metadata nested too deeply") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: metadata is not a JSON object")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format version {meta.get('format_version')!r}, this venuetwin reads "
            f"{FORMAT_VERSION}: retrain it with venuetwin train"
        )
    for key in ("config", "vocab", "features"):
        if key not in meta:
            raise CheckpointError(f"{path}: metadata has no {key!r}")
    stated, config = meta["features"], meta["config"]
    if not (isinstance(stated, dict) and isinstance(config, dict)):
        raise CheckpointError(f"{path}: metadata's 'features' and 'config' are not JSON objects")
    changed = _changed_buckets(stated, config)
    if changed:
        raise CheckpointError(
            f"{path}: trained with other feature buckets ({', '.join(changed)}): retrain it"
        )
    return meta


def load(path: str | os.PathLike[str], venue_vocab: ZoneVocab | None = None) -> Checkpoint:
    """Load a checkpoint; with ``venue_vocab``, refuse one whose zones differ from it."""
    meta = read_metadata(path)
    try:
        config = GPTConfig(**meta["config"])
        vocab = ZoneVocab.from_json(meta["vocab"])
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: bad config or vocabulary in metadata ({exc})") from None
    if len(vocab) != config.n_zones:
        raise CheckpointError(
            f"{path}: vocabulary has {len(vocab)} zones, the config {config.n_zones}"
        )
    if venue_vocab is not None:
        check_vocab(vocab, venue_vocab, str(path))
    with torch.device("meta"):  # the shapes the config asks for, before any allocation
        expected = {k: tuple(v.shape) for k, v in GPT(config).state_dict().items()}
    with safe_open(str(path), framework="pt") as handle:
        found = {k for k in handle.keys() if not k.startswith("split.")}  # noqa: SIM118
        visitors = {
            p: handle.get_tensor(f"split.{p}").numpy()
            for p in SPLIT_PARTS
            if f"split.{p}" in handle.keys()  # noqa: SIM118
        }
        missing, unexpected = sorted(set(expected) - found), sorted(found - set(expected))
        if missing or unexpected:
            raise CheckpointError(
                f"{path}: tensors do not match the model: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}"
            )
        for name in expected:
            shape = tuple(handle.get_slice(name).get_shape())
            if shape != expected[name]:
                raise CheckpointError(
                    f"{path}: tensor {name!r} has shape {shape}, the config needs {expected[name]}"
                )
        state = {}
        for name in expected:
            tensor = handle.get_tensor(name)
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise CheckpointError(f"{path}: tensor {name!r} holds NaN or infinite weights")
            state[name] = tensor
    model = GPT(config)
    model.load_state_dict(state)
    model.set_vocabulary(torch.from_numpy(vocab.kind_ids), torch.from_numpy(vocab.destinations))
    model.eval()
    return Checkpoint(model, vocab, meta.get("training", {}), str(path), visitors)


def check_vocab(vocab: ZoneVocab, venue: ZoneVocab, where: str) -> None:
    """Refuse a checkpoint vocabulary that is not the venue's, saying what differs."""
    if vocab.names == venue.names and vocab.kinds == venue.kinds:
        return
    missing = [n for n in venue.names if n not in vocab.index]
    extra = [n for n in vocab.names if n not in venue.index]
    kinds = [
        n
        for n in venue.names
        if n in vocab.index and vocab.kinds[vocab.index[n]] != venue.kinds[venue.index[n]]
    ]
    detail = []
    if missing:
        detail.append(f"zones it lacks: {', '.join(missing[:6])}")
    if extra:
        detail.append(f"zones the venue lacks: {', '.join(extra[:6])}")
    if kinds:
        detail.append(f"zones of another kind: {', '.join(kinds[:6])}")
    if not detail:
        detail.append("the zones are in another order")
    raise CheckpointError(
        f"{where}: the model's vocabulary ({vocab.source}) is not this venue's "
        f"({venue.source}): {'; '.join(detail)}. Fine-tune it on this venue's logs "
        "(venuetwin train --init ...)"
    )


def transfer(
    source: Checkpoint,
    vocab: ZoneVocab,
    dropout: float | None = None,
    profiles: bool = False,
    shows: bool = False,
) -> GPT:
    """A model for ``vocab`` initialised from ``source`` (fine-tuning on another venue).

    Everything carries over except what belongs to a zone (its embedding, its vectors in
    the venue view, its column of the profile): zones with the same name and kind keep
    theirs, new zones start at zero, so they begin as "their kind". ``profiles``,
    ``shows``: the new model takes declared profiles, the programme (it does if
    ``source`` did)."""
    per_zone = (
        "zone_emb.weight",
        "venue_state.weight",
        "programme_state.weight",
        "move_prior",
        "profile_emb.weight",
    )
    with_profile = profiles or bool(source.model.config.n_profile)
    old = source.model.config
    # A model that takes the programme keeps its states and how it sees them; one that did
    # not, and now does, takes every state and sees them in every token (``show_view``).
    n_show_states = old.n_show_states or (features.N_SHOW_STATES if shows else 0)
    config = GPTConfig(
        **{
            **old.to_dict(),
            "n_zones": len(vocab),
            "n_profile": profile_size(len(vocab)) if with_profile else 0,
            "n_show_states": n_show_states,
            "show_view": old.show_view if old.n_show_states else int(bool(n_show_states)),
        }
    )
    if dropout is not None:
        config.dropout = dropout
    model = GPT(config)
    state = {k: v for k, v in source.model.state_dict().items() if k not in per_zone}
    model.load_state_dict(state, strict=False)
    old_view = source.model.venue_state.weight.view(len(source.vocab), config.n_options, -1)
    new_view = model.venue_state.weight.view(len(vocab), config.n_options, -1)
    old_shows = new_shows = None
    if config.show_view and source.model.config.show_view:
        width = source.model.config.n_show_states
        old_shows = source.model.programme_state.weight.view(len(source.vocab), width, -1)
        new_shows = model.programme_state.weight.view(len(vocab), width, -1)
    with torch.no_grad():
        model.zone_emb.weight.zero_()
        new_view.zero_()
        if new_shows is not None:
            new_shows.zero_()
        for i, (name, kind) in enumerate(zip(vocab.names, vocab.kinds, strict=True)):
            j = source.vocab.index.get(name)
            if j is not None and source.vocab.kinds[j] == kind:
                model.zone_emb.weight[i] = source.model.zone_emb.weight[j]
                new_view[i] = old_view[j]
                if old_shows is not None and new_shows is not None:
                    new_shows[i] = old_shows[j]
                if source.model.config.n_profile and config.n_profile:
                    model.profile_emb.weight[i] = source.model.profile_emb.weight[j]
        if source.model.config.n_profile and config.n_profile:  # tag buckets carry over
            model.profile_emb.weight[len(vocab) :] = source.model.profile_emb.weight[
                len(source.vocab) :
            ]
    model.set_vocabulary(torch.from_numpy(vocab.kind_ids), torch.from_numpy(vocab.destinations))
    return model
