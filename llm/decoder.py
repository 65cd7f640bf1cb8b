"""The live decoder: one new token for each of a few dozen cached sequences, in NumPy.

A live step of the twin asks the GPT about the few dozen avatars whose visit ends in it.
At that size the cost of ``GPT.decode_step`` is the number of tensor operations (some 50,
each 5-15 us of PyTorch dispatch), not their arithmetic; the same operations on NumPy
arrays cost a few microseconds each. ``Decoder`` holds float32 copies of a GPT's weights
(taken once: call ``refresh`` after the weights change) and runs the model's one definition
of a block (``llm.model.block_step``) with NumPy operations (it is its own ``BlockOps``):
only the attention over the cache is written here. The tests hold it to
``GPT.decode_step``'s numbers.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from llm.model import GPT, block_step


def _tensor(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(torch.float32).cpu().clone()


def _array(t: torch.Tensor) -> np.ndarray:
    return _tensor(t).numpy()


class Decoder:
    """``GPT.decode_step`` for one venue state shared by the whole batch, in NumPy."""

    def __init__(self, model: GPT) -> None:
        self.model = model
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        """Copy the model's weights (again)."""
        model, c = self.model, self.model.config
        table, starts = model.token_table()
        self.token_table, self.starts = _array(table), starts.numpy().astype(np.int64)
        self.block_size, self.n_head, self.eps = c.block_size, c.n_head, 1e-5
        self.venue_table = _array(model.venue_state.weight).reshape(c.n_zones, c.n_options, -1)
        self.zones = np.arange(c.n_zones)
        # Each block's weights by role (``llm.model.block_step``): layer norms as float32
        # tensors (one fused PyTorch call), linear maps as (input, output) arrays.
        self.blocks = [
            {
                role: (_tensor(m.weight), _tensor(m.bias))
                if isinstance(m, torch.nn.LayerNorm)
                else (_array(m.weight).T.copy(), _array(m.bias))
                for role, m in b.roles.items()
            }
            for b in model.blocks
        ]
        self.ln_f = (_tensor(model.ln_f.weight), _tensor(model.ln_f.bias))
        self.zone_table = _array(model.zone_table())
        self.move_prior = _array(model.move_prior)
        self.option_table = _array(model.option_state.weight)
        self.dwell_weight = _array(model.dwell_head.weight).T.copy()
        self.dwell_bias = _array(model.dwell_head.bias)
        self.n_zones = c.n_zones
        self.seen_gain = _array(model.seen_gain)[model.zone_kind.numpy()]
        if c.n_show_states:
            self.show_table = _array(model.show_state.weight)
        if c.n_profile:
            self.profile_table = _array(model.profile_emb.weight)
            self.interest_gain = _array(model.interest_gain)[model.zone_kind.numpy()]

    # ------------------------------------------------------------------ BlockOps in NumPy
    def norm(self, x: np.ndarray, weight_bias: tuple[torch.Tensor, ...]) -> np.ndarray:
        """One fused PyTorch call: cheaper than NumPy's five."""
        weight, bias = weight_bias
        return F.layer_norm(torch.from_numpy(x), weight.shape, weight, bias, self.eps).numpy()

    def linear(self, x: np.ndarray, weights: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        return x @ weights[0] + weights[1]

    def gelu(self, x: np.ndarray) -> np.ndarray:
        return F.gelu(torch.from_numpy(x)).numpy()  # exact GELU; NumPy has no fast erf

    def residual(
        self, x: np.ndarray, y: np.ndarray, weights: tuple[np.ndarray, np.ndarray]
    ) -> np.ndarray:
        return x + y @ weights[0] + weights[1]

    def step(
        self,
        tokens: np.ndarray,
        options: np.ndarray,
        past: np.ndarray,
        lengths: np.ndarray,
        profile: np.ndarray | None = None,
        seen: np.ndarray | None = None,
        shows: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``tokens`` (B, features) in ``FEATURES`` order; ``options`` (Z,) the option state
        of every zone, the same for the whole batch; ``past`` (B, layers, 2, heads, W, size)
        float32, valid below ``lengths`` (B,), written at position ``lengths``. Returns the
        zone logits (B, Z), the hidden states (B, C) and the new token's keys and values
        (B, layers, 2, heads, size), as ``GPT.decode_step`` does. ``profile`` (B, n_profile):
        the deciders' declared profiles, for a model that takes them; ``seen`` (B, Z) the
        places in each decider's context (default: its new token's zone only); ``shows``
        (B, Z) every zone's show state, for a model that takes the programme."""
        b = len(lengths)
        rows = np.arange(b)
        positions = np.minimum(lengths, self.block_size - 1)
        ids = np.concatenate([tokens, positions[:, None]], axis=1) + self.starts
        x = self.token_table[ids].sum(axis=1)
        x += self.venue_table[self.zones, options].sum(axis=0)
        declared = None
        if profile is not None and self.model.config.n_profile:
            declared = profile.astype(np.float32)
            count = np.maximum(declared.sum(axis=1, keepdims=True), 1.0)
            x += (declared @ self.profile_table) / count
        visible = np.arange(past.shape[4])[None, None, :] <= lengths[:, None, None]  # (B,1,W)
        scale = 1.0 / math.sqrt(past.shape[-1])
        new_kv = []
        for layer, block in enumerate(self.blocks):

            def attend(qkv: np.ndarray, layer: int = layer) -> np.ndarray:
                qkv = qkv.reshape(b, 3, self.n_head, -1)
                new_kv.append(qkv[:, 1:])
                past[rows, layer, :, :, lengths] = qkv[:, 1:]
                keys, values = past[:, layer, 0], past[:, layer, 1]  # (B, heads, W, size)
                scores = np.matmul(keys, qkv[:, 0, :, :, None])[..., 0] * scale  # (B, heads, W)
                scores = np.where(visible, scores, -np.inf)
                weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
                weights /= weights.sum(axis=-1, keepdims=True)
                return np.matmul(weights[:, :, None, :], values)[:, :, 0, :].reshape(b, -1)

            x = block_step(x, block, attend, self)
        hidden = self.norm(x, self.ln_f)
        logits = hidden @ self.zone_table.T + (hidden @ self.option_table.T)[:, options]
        logits += self.move_prior[tokens[:, 0]]  # FEATURES[0] is the zone
        if declared is not None:
            logits += declared[:, : self.n_zones] * self.interest_gain
        if shows is not None and self.model.config.n_show_states:
            logits += np.take_along_axis(hidden @ self.show_table.T, shows.astype(np.int64), 1)
        if seen is None:
            logits[rows, tokens[:, 0]] += self.seen_gain[tokens[:, 0]]
        else:
            logits += seen * self.seen_gain
        return logits, hidden, np.stack(new_kv, axis=1)

    def dwell_logits(
        self, hidden: np.ndarray, next_zone: np.ndarray, next_show: np.ndarray | None = None
    ) -> np.ndarray:
        """(B, dwell buckets) for the stay at ``next_zone`` (B,), as ``GPT.dwell_logits``."""
        x = hidden + self.zone_table[next_zone]
        if next_show is not None and self.model.config.n_show_states:
            x = x + self.show_table[next_show]
        return x @ self.dwell_weight + self.dwell_bias
