"""The avatar's GPT: a small decoder-only Transformer over visits, in one readable file.

What a token is
---------------
One token per *visit* to a place (a walk through a corridor is not a visit). Its embedding
is the sum of embeddings of the zone, the zone's kind, the time of day it began (five-
minute buckets), the time since the avatar arrived (quarter hours), the crowd level where
it stood (Fruin A..F on entry), how long it stayed (log-spaced buckets) and the time of
day it ended, plus a learned position, plus what the venue showed when the visit ended and
the avatar chose where to go next: every zone's crowd and queue wait (``venue_view``), so
an avatar can head for the bar with the short queue, not only turn away at the door of a
long one. So a trajectory of 30 visits is 30 tokens, not hundreds of characters; contexts
stay short, a live decision adds one token, and the attention is readable: it says which
earlier visits mattered for the next move.

Heads
-----
- **Next zone**: the hidden state is scored against every zone's *output embedding*,
  zone + kind embedding (tied with the input), plus a learned vector for what that
  candidate zone shows at that moment: its crowd level and its queue wait
  (``llm.features.option_state``). The next zone is the next *place*: corridors are
  walked through, not visited (``llm.zones.PASSAGE_KINDS``), so going to the far bar
  is one choice, not several hops that must each keep to it; places that cannot come next
  (``ZoneVocab.destinations``) are masked out.
  Because a zone is "its kind plus itself", a model trained on one venue fine-tunes on
  another: kinds, time, crowd and dwell carry over, new zones start from their kind.
- **Next dwell**: given the next zone (the true one in training, the sampled one live),
  a linear head over the dwell buckets.

Attention is ``softmax(Q K^T / sqrt(d_k)) V`` with a causal mask, in multi-head blocks with
pre-layer-norm residual connections (``CausalSelfAttention``, ``MLP``, ``Block``, ``GPT``,
after nanoGPT). The fast path is ``F.scaled_dot_product_attention``; ``need_weights=True``
takes the plain path that also returns every layer's ``(batch, heads, T, T)`` weights.
A key/value cache (``past``) makes a live decision cost one token, whatever the history.

Its length: the whole model in one readable file, as nanoGPT keeps it: config, the block
(``block_step``, defined once, with its PyTorch and NumPy operations), embeddings, heads,
the cached decode step and the loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from llm.features import (
    FEATURES,
    FULL_OPTION,
    MAX_SHOW_ENDS,
    N_CROWD,
    N_DWELL,
    N_OPTION,
    N_QUEUE_GAPS,
    N_SHOW_STATES,
    N_SINCE,
    N_STAY,
    N_TOD,
    N_WAIT,
    NEED_KINDS,
    UNTIL_SHOW_ENDS,
    known_option_states,
    known_show_states,
)
from llm.zones import ZONE_KINDS

#: A layer's cached keys and values, each (batch, heads, time, head_size).
KV = tuple[torch.Tensor, torch.Tensor]


class ConfigError(ValueError):
    """A model shape no GPT can have; ``field`` names the setting."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


#: The shapes a GPT may have: (least, most) of each setting. Beyond them a checkpoint's
#: metadata or a training option is a mistake (a width of 200,000 asks for hundreds of GB).
CONFIG_LIMITS: dict[str, tuple[float, float]] = {
    "n_zones": (2, 10_000),
    "block_size": (2, 1_024),
    "n_layer": (1, 48),
    "n_head": (1, 64),
    "n_embd": (8, 2_048),
    "dropout": (0.0, 0.9),
    "n_kinds": (1, 1_000),
    "n_tod": (1, 100_000),
    "n_stay": (1, 100_000),
    "n_crowd": (1, 1_000),
    "n_options": (1, 100_000),
    "n_dwell": (1, 1_000),
    "n_profile": (0, 100_000),
    "n_show_states": (0, 1_000),
    "show_view": (0, 1),
    "show_end_dwell": (0, MAX_SHOW_ENDS),
    "end_stay": (0, 1),
    "since_needs": (0, 1),
    "wait_apart": (0, 1),
    "queue_gap": (0, 1),
}


@dataclass
class GPTConfig:
    n_zones: int
    # Small enough that 100,000 live avatars keep a key/value cache each (see agents/).
    block_size: int = 32
    # Two layers predict visits as well as four (held-out perplexity: expo 2.032 against
    # 2.030, festival 1.944 against 1.929) at half the cost of every live decision.
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.1
    n_kinds: int = len(ZONE_KINDS)
    n_tod: int = N_TOD
    n_stay: int = N_STAY
    n_crowd: int = N_CROWD
    n_options: int = N_OPTION  # (crowd level, queue-wait level) of a candidate zone
    n_dwell: int = N_DWELL
    # Length of a visitor's profile vector (``llm.features.profile_vectors``): the zones
    # it declared an interest in and its hashed tags. 0: the model takes no profile.
    n_profile: int = 0
    # Show states of a candidate (``llm.features.SHOW_STATES``): the programme as each
    # visitor sees it. 0: the model takes no programme.
    n_show_states: int = 0
    # 1: the programme as the visitor sees it (every zone's show state) is also part of each
    # token's input (``GPT.programme_view``), so that every choice, leaving and the stay
    # included, knows which of its shows are to come and which are over, not only the
    # score of a stage. 0: only the candidates' scores see it (models before issue 25).
    show_view: int = 0
    # k > 0: the dwell head has k classes more, "until the show there ends" and (k = 2)
    # "until the next show there ends" (``llm.features.UNTIL_SHOW_ENDS``): the model says
    # who stays to the end of a show, or on through the interval to the end of the next,
    # the programme says when that is. 0: buckets only (models before it, and without
    # shows); 1: the first show only (models before issue 25's ninth part).
    show_end_dwell: int = 0
    # 1: each token also holds the time since the visitor's arrival at its choice
    # (``end_stay``), beside the time at the visit's start (``stay``). 0: models before it,
    # which read the feature as nothing (``GPT.feature_embeddings``).
    end_stay: int = 0
    # 1: each token also holds how long ago the visitor last met each need
    # (``llm.features.NEED_KINDS``: ``since_bar``...), however far back in its day. 0:
    # models before it, which read those features as nothing.
    since_needs: int = 0
    # 1: a candidate's queue wait is scored apart from its crowd, as a cost that never
    # falls as the wait grows (``GPT.wait_cost``: steps per kind, learnt, scaled by the
    # context), and the venue's state in every token holds crowds and full zones, not
    # waits. Logs show long queues where many want to go (after a talk, at a surge): free
    # to read a wait as it liked, a model learnt that a long queue draws visitors, and sent
    # its avatars to a café short of staff. Not what ``llm.train`` learns by default: it
    # learnt too small a cost to move them (``bench/README.md``, issue 25, sixth part). 0:
    # each (crowd, wait) state scored freely, as before.
    wait_apart: int = 0
    # 1: each candidate is also scored by its queue's gap to the quickest open place of its
    # kind (``GPT.queue_gaps``, ``llm.features.N_QUEUE_GAPS``), learnt per kind: where a
    # long queue's own level also says that many want to go there, the gap says only what
    # it costs against the other café. 0: models before it.
    queue_gap: int = 0

    def __post_init__(self) -> None:
        """Refuse a shape outside ``CONFIG_LIMITS``, or heads that do not divide the width,
        before anything is allocated (``ConfigError`` naming the setting)."""
        for name, (least, most) in CONFIG_LIMITS.items():
            value = getattr(self, name)
            whole = name != "dropout"
            kind = int if whole else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind):
                what = "a whole number" if whole else "a number"
                raise ConfigError(name, f"{name} must be {what}, got {value!r}")
            if not (math.isfinite(value) and least <= value <= most):
                raise ConfigError(name, f"{name} must be {least:g}..{most:g}, got {value!r}")
        if self.n_embd % self.n_head:
            raise ConfigError(
                "n_head", f"n_head must divide n_embd={self.n_embd}, got {self.n_head}"
            )

    def to_dict(self) -> dict:
        return asdict(self)


# ============================================================================ the block
class BlockOps(Protocol):
    """The array operations a block is computed with: PyTorch's for training and the
    cached decode step (``TorchOps``), NumPy's for the live decoder (``NumpyOps``)."""

    def norm(self, x: Any, weights: Any) -> Any: ...
    def linear(self, x: Any, weights: Any) -> Any: ...
    def gelu(self, x: Any) -> Any: ...
    def residual(self, x: Any, y: Any, weights: Any) -> Any:
        """``x`` plus the linear map of ``y`` (dropped out in training)."""
        ...


def block_step(
    x: Any, weights: Mapping[str, Any], attend: Callable[[Any], Any], ops: BlockOps
) -> Any:
    """The arithmetic of one Transformer block, defined once: pre-layer-norm causal
    self-attention, then a GELU MLP, each added back to the residual stream.

    Training and explaining (``Block.forward``), the cached decode step
    (``GPT.decode_step``) and the NumPy live decoder (``llm.decoder.Decoder``, with
    ``NUMPY_OPS`` and ``cached_attention``) all run this function, each with its own array
    operations (``ops``: ``BlockOps``) and its own
    attention over its own keys and values (``attend``: the normed stream's query, key and
    value projection -> the heads' mixed values, before the output projection).
    ``weights`` maps the roles ``ln_1, qkv, proj, ln_2, fc, out`` to what ``ops`` takes."""
    y = attend(ops.linear(ops.norm(x, weights["ln_1"]), weights["qkv"]))
    x = ops.residual(x, y, weights["proj"])
    h = ops.gelu(ops.linear(ops.norm(x, weights["ln_2"]), weights["fc"]))
    return ops.residual(x, h, weights["out"])


class TorchOps:
    """``BlockOps`` on tensors, with the modules of a ``Block`` as weights; dropout ``p``
    on each residual branch while ``training``."""

    def __init__(self, p: float = 0.0, training: bool = False) -> None:
        self.p, self.training = p, training

    def norm(self, x: torch.Tensor, ln: nn.LayerNorm) -> torch.Tensor:
        return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)

    def linear(self, x: torch.Tensor, lin: nn.Linear) -> torch.Tensor:
        return F.linear(x, lin.weight, lin.bias)

    def gelu(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x)

    def residual(self, x: torch.Tensor, y: torch.Tensor, lin: nn.Linear) -> torch.Tensor:
        return x + F.dropout(F.linear(y, lin.weight, lin.bias), self.p, self.training)


#: The operations of inference: no dropout.
EVAL_OPS = TorchOps()


class NumpyOps:
    """``BlockOps`` on NumPy float32 arrays, for the live decoder (``llm.decoder``):
    linear maps as ``(input, output)`` arrays and a bias; layer norm and GELU as one fused
    PyTorch call each on float32 tensors (cheaper than NumPy's five operations; NumPy has
    no fast erf for the exact GELU)."""

    eps = 1e-5

    def norm(self, x: np.ndarray, weight_bias: tuple[torch.Tensor, ...]) -> np.ndarray:
        weight, bias = weight_bias
        return F.layer_norm(torch.from_numpy(x), weight.shape, weight, bias, self.eps).numpy()

    def linear(self, x: np.ndarray, weights: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        out = x @ weights[0]
        out += weights[1]  # in place: one array, not two
        return out

    def gelu(self, x: np.ndarray) -> np.ndarray:
        return F.gelu(torch.from_numpy(x)).numpy()

    def residual(
        self, x: np.ndarray, y: np.ndarray, weights: tuple[np.ndarray, np.ndarray]
    ) -> np.ndarray:
        out = y @ weights[0]
        out += x  # (x + y W) + b, the same sums as the tensors' and in the same order
        out += weights[1]
        return out


NUMPY_OPS = NumpyOps()


def cached_attention(
    qkv: np.ndarray, past: np.ndarray, layer: int, lengths: np.ndarray, out: list[np.ndarray]
) -> np.ndarray:
    """The attention of one new token per sequence over its cached keys and values, in
    NumPy (``llm.decoder``): ``qkv`` (B, 3C) the new tokens' projections; ``past`` (B,
    layers, 2, heads, W, size) float32, valid below ``lengths`` (B,), gets the new keys and
    values of ``layer`` at position ``lengths`` (also appended to ``out``). Returns the
    heads' mixed values (B, C)."""
    b, heads = len(lengths), past.shape[3]
    qkv = qkv.reshape(b, 3, heads, -1)
    out.append(qkv[:, 1:])
    past[np.arange(b), layer, :, :, lengths] = qkv[:, 1:]
    keys, values = past[:, layer, 0], past[:, layer, 1]  # (B, heads, W, size)
    scale = 1.0 / math.sqrt(past.shape[-1])
    scores = np.matmul(keys, qkv[:, 0, :, :, None])[..., 0]  # (B, heads, W)
    scores *= scale  # in place from here on: the same operations, fewer arrays
    hidden = np.arange(past.shape[4])[None, None, :] > lengths[:, None, None]  # (B, 1, W)
    np.copyto(scores, -np.inf, where=hidden)
    scores -= scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores, out=scores)
    weights /= weights.sum(axis=-1, keepdims=True)
    return np.matmul(weights[:, :, None, :], values)[:, :, 0, :].reshape(b, -1)


class CausalSelfAttention(nn.Module):
    """Multi-head causal attention: its projections and how the heads attend."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout

    def attend(
        self, qkv: torch.Tensor, need_weights: bool = False, past: KV | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None, KV]:
        """(B, T, 3C) queries, keys and values -> (B, T, C) the heads' mixed values, the
        attention weights if asked, and the keys and values (``past``'s and these)."""
        b, t, c3 = qkv.shape
        c = c3 // 3
        q, k, v = qkv.split(self.n_embd, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        t_all = k.size(2)
        # Query i (at absolute position t_all - t + i) sees keys 0 .. t_all - t + i.
        causal = torch.ones(t, t_all, dtype=torch.bool, device=qkv.device).tril(t_all - t)
        weights = None
        if need_weights:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
            weights = F.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
            y = self.attn_dropout(weights) @ v
        else:
            y = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=None if t == t_all else causal,
                dropout_p=self.dropout if self.training else 0.0,
                is_causal=t == t_all and t > 1,
            )
        return y.transpose(1, 2).contiguous().view(b, t, c), weights, (k, v)


class MLP(nn.Module):
    """The feed-forward layers of a block: 4x wider, GELU (run by ``block_step``)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)
        self.dropout = config.dropout

    @property
    def roles(self) -> dict[str, nn.Module]:
        """This block's modules by their role in ``block_step``."""
        return {
            "ln_1": self.ln_1,
            "qkv": self.attn.c_attn,
            "proj": self.attn.c_proj,
            "ln_2": self.ln_2,
            "fc": self.mlp.c_fc,
            "out": self.mlp.c_proj,
        }

    def forward(
        self, x: torch.Tensor, need_weights: bool = False, past: KV | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None, KV]:
        found: dict[str, Any] = {}

        def attend(qkv: torch.Tensor) -> torch.Tensor:
            y, found["weights"], found["kv"] = self.attn.attend(qkv, need_weights, past)
            return y

        x = block_step(x, self.roles, attend, TorchOps(self.dropout, self.training))
        return x, found["weights"], found["kv"]


@dataclass
class GPTOutput:
    zone_logits: torch.Tensor  # (B, T, Z), impossible next places at -inf when masked
    hidden: torch.Tensor  # (B, T, C) final hidden states
    attention: list[torch.Tensor] | None  # per layer (B, heads, T, T_all) when asked
    past: list[KV]  # per layer keys/values, for the next token


def zone_states(states: torch.Tensor, table: torch.Tensor, n_states: int) -> torch.Tensor:
    """(..., Z) a state of every zone -> (..., C): the sum over zones of ``table``'s row for
    that zone in that state (rows zone-major, ``n_states`` a zone), as one ``embedding_bag``."""
    z = states.shape[-1]
    rows = states.long().reshape(-1, z) + torch.arange(z, device=states.device) * n_states
    return F.embedding_bag(rows, table, mode="sum").view(*states.shape[:-1], -1)


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        d = config.n_embd
        self.zone_emb = nn.Embedding(config.n_zones, d)
        self.kind_emb = nn.Embedding(config.n_kinds, d)
        self.tod_emb = nn.Embedding(config.n_tod, d)
        self.stay_emb = nn.Embedding(config.n_stay, d)
        self.crowd_emb = nn.Embedding(config.n_crowd, d)
        self.dwell_emb = nn.Embedding(config.n_dwell, d)
        self.end_tod_emb = nn.Embedding(config.n_tod, d)  # the clock when the visit ended
        # ... and how long the visitor had been there then
        self.end_stay_emb = nn.Embedding(config.n_stay, d) if config.end_stay else None
        # ... and how long ago it last met each need
        self.since_embs = (
            nn.ModuleList(nn.Embedding(N_SINCE, d) for _ in NEED_KINDS)
            if config.since_needs
            else None
        )
        self.pos_emb = nn.Embedding(config.block_size, d)
        self.option_state = nn.Embedding(config.n_options, d)  # crowd, queue at a candidate
        # ... and at every zone, as context: one vector per (zone, state).
        self.venue_state = nn.Embedding(config.n_zones * config.n_options, d)
        if config.wait_apart:
            # What a queue's wait costs: steps per kind and wait level (each >= 0, summed
            # up to the level), times a scale >= 0 read from the context.
            self.wait_steps = nn.Parameter(torch.zeros(config.n_kinds, N_WAIT - 1))
            self.wait_scale = nn.Linear(d, 1)
        if config.queue_gap:
            # ... and its queue's gap to the quickest of its kind: a vector per (kind, gap)
            # scored against the hidden state.
            self.gap_state = nn.Embedding(config.n_kinds * N_QUEUE_GAPS, d)
        if config.n_profile:
            # A visitor's declared profile: the mean of its tags' vectors, added to every
            # token, and a learned pull, per kind, towards the zones it declared.
            self.profile_emb = nn.Embedding(config.n_profile, d)
            self.interest_gain = nn.Parameter(torch.zeros(config.n_kinds))
        if config.n_show_states:
            # What a candidate shows of the programme: a vector scored against the hidden
            # state (like ``option_state``), and added where the stay there is predicted.
            self.show_state = nn.Embedding(config.n_show_states, d)
            if config.show_view:
                # ... and at every zone, as context: one vector per (zone, show state).
                self.programme_state = nn.Embedding(config.n_zones * config.n_show_states, d)
        # A learned pull, per kind, on the places the visitor already went to in its
        # context (a booth seen is rarely seen again; a stage often is).
        self.seen_gain = nn.Parameter(torch.zeros(config.n_kinds))
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(d)
        self.dwell_head = nn.Linear(d, config.n_dwell + config.show_end_dwell)
        # The vocabulary's kinds and, for each zone, the places that may come next (legal
        # moves and walks through passages, ``ZoneVocab.destinations``): set, not learned.
        self.register_buffer("zone_kind", torch.zeros(config.n_zones, dtype=torch.long), False)
        self.register_buffer(
            "legal", torch.ones(config.n_zones, config.n_zones, dtype=torch.bool), False
        )
        # Log-odds of each next place given the current one, added to the next-zone
        # logits: counted from the training visits (``set_move_prior``), so the model
        # starts as a smoothed Markov chain and its Transformer learns what the rest of
        # the context adds. Saved with the weights; zero until set.
        self.register_buffer("move_prior", torch.zeros(config.n_zones, config.n_zones))
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # scaled residual projections (GPT-2)
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def set_vocabulary(self, zone_kind: torch.Tensor, legal: torch.Tensor) -> None:
        self.zone_kind.copy_(zone_kind)
        self.legal.copy_(legal)

    def set_move_prior(self, probs: torch.Tensor) -> None:
        """``probs`` (Z, Z): the chance of each next place after each place (rows sum to
        1 over the legal ones); their logs become ``move_prior`` (0 where impossible)."""
        log = torch.log(probs.to(self.move_prior))
        self.move_prior.copy_(torch.where(torch.isfinite(log), log, torch.zeros_like(log)))

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ forward
    def venue_view(self, options: torch.Tensor) -> torch.Tensor:
        """(..., Z) option states of every zone -> (..., C): the sum over zones of a learned
        vector for that zone in that state (``zone_states``)."""
        return zone_states(options, self.venue_state.weight, self.config.n_options)

    def programme_view(self, shows: torch.Tensor) -> torch.Tensor:
        """(..., Z) show states of every zone -> (..., C), as ``venue_view`` is for crowds
        and queues."""
        return zone_states(shows, self.programme_state.weight, self.config.n_show_states)

    def split_options(self, options: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Option states (as this model knows them) -> the states it scores and views, and
        the queue-wait levels it costs apart (``wait_apart``; None for a model before it,
        which scores the (crowd, wait) states themselves)."""
        if not self.config.wait_apart:
            return options, None
        full = options == FULL_OPTION
        crowd = torch.where(full, FULL_OPTION, options % N_CROWD).to(options.dtype)
        return crowd, torch.where(full, 0, options // N_CROWD)

    def wait_costs(self) -> torch.Tensor:
        """(Z, N_WAIT) what each wait level costs at each zone, before the context's scale:
        0 at no queue, never less at a longer one."""
        steps = F.softplus(self.wait_steps)
        cost = torch.cat([steps.new_zeros(len(steps), 1), steps.cumsum(1)], 1)
        return cost[self.zone_kind]

    def wait_cost(self, hidden: torch.Tensor, waits: torch.Tensor) -> torch.Tensor:
        """(..., Z): what the wait at each candidate costs a visitor in context ``hidden``
        (..., C), its queue-wait levels ``waits`` (..., Z)."""
        costs = self.wait_costs()
        at = costs[torch.arange(costs.shape[0], device=waits.device), waits.long()]
        return F.softplus(self.wait_scale(hidden)) * at

    def queue_gaps(self, options: torch.Tensor) -> torch.Tensor:
        """(..., Z) option states (as this model knows them) -> (..., Z) each candidate's
        row of ``gap_state``: its kind and how many wait levels longer its queue is than at
        the quickest place of its kind that takes visitors (``N_QUEUE_GAPS``; a full or
        closed place, gap 0: its own state says it)."""
        kinds = self.zone_kind
        options = options.long()
        full = options >= N_OPTION
        level = torch.where(full, N_WAIT, options // N_CROWD)
        same = kinds[None, :] == torch.arange(self.config.n_kinds, device=kinds.device)[:, None]
        quickest = torch.where(same, level[..., None, :], N_WAIT).amin(-1)[..., kinds]
        gap = torch.where(full, 0, (level - quickest).clamp(0, N_QUEUE_GAPS - 1))
        return kinds * N_QUEUE_GAPS + gap

    def known_options(self, options: torch.Tensor) -> torch.Tensor:
        """Option states as this model knows them (``llm.features.known_option_states``:
        one trained before ``FULL_OPTION`` sees a full zone as its most crowded state)."""
        if self.config.n_options > FULL_OPTION:
            return options
        table = torch.from_numpy(known_option_states(self.config.n_options))
        return table.to(options.device, options.dtype)[options.long()]

    def known_shows(self, shows: torch.Tensor) -> torch.Tensor:
        """Show states as this model knows them (``llm.features.known_show_states``: one
        trained before the minutes sees them as "wanted later", one of six states sees
        "wanted over" as "none")."""
        if self.config.n_show_states >= N_SHOW_STATES:
            return shows
        table = torch.from_numpy(known_show_states(self.config.n_show_states))
        return table.to(shows.device, shows.dtype)[shows.long()]

    def profile_vector(self, profile: torch.Tensor) -> torch.Tensor:
        """(B, n_profile) multi-hot profiles -> (B, C): the mean vector of their tags."""
        weights = profile.to(self.profile_emb.weight.dtype)
        count = weights.sum(dim=-1, keepdim=True).clamp(min=1.0)
        return (weights @ self.profile_emb.weight) / count

    def interest_logits(self, profile: torch.Tensor) -> torch.Tensor:
        """(B, n_profile) -> (B, Z): each zone's pull for visitors who declared it."""
        declared = profile[:, : self.config.n_zones].to(self.interest_gain.dtype)
        return declared * self.interest_gain[self.zone_kind]

    def seen_logits(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, T, Z): each place's pull for a visitor who already went there in the
        context: ``tokens["seen"]`` (B, T, Z) if given (a context longer than ``tokens``),
        else the zones of ``tokens`` up to each position."""
        seen = tokens.get("seen")
        if seen is None:
            visits = F.one_hot(tokens["zone"], self.config.n_zones)
            seen = visits.cummax(dim=1).values
        return seen.to(self.seen_gain.dtype) * self.seen_gain[self.zone_kind]

    def uses_shows(self, tokens: dict[str, torch.Tensor]) -> bool:
        return bool(self.config.n_show_states) and tokens.get("shows") is not None

    def uses_profile(self, tokens: dict[str, torch.Tensor]) -> bool:
        return bool(self.config.n_profile) and tokens.get("profile") is not None

    def embed(
        self, tokens: dict[str, torch.Tensor], start: int = 0, options: torch.Tensor | None = None
    ) -> torch.Tensor:
        t = tokens["zone"].size(1)
        positions = torch.arange(start, start + t, device=tokens["zone"].device)
        positions = positions.clamp(max=self.config.block_size - 1)
        x = self.pos_emb(positions)
        for name, table in zip(FEATURES, self.feature_embeddings(), strict=True):
            if table is not None:
                x = x + table(tokens[name])
        if options is not None:
            x = x + self.venue_view(options)
        if self.uses_profile(tokens):
            x = x + self.profile_vector(tokens["profile"])[:, None, :]
        if self.config.show_view and self.uses_shows(tokens):
            x = x + self.programme_view(self.known_shows(tokens["shows"]))
        return self.drop(x)

    def zone_table(self) -> torch.Tensor:
        """(Z, C) output embedding of every zone: its own plus its kind's."""
        return self.zone_emb.weight + self.kind_emb(self.zone_kind)

    def forward(
        self,
        tokens: dict[str, torch.Tensor],
        options: torch.Tensor | None = None,
        need_weights: bool = False,
        past: list[KV] | None = None,
        mask_illegal: bool = True,
    ) -> GPTOutput:
        """``tokens``: (B, T) tensors ``zone, kind, tod, stay, crowd, dwell`` and, if the
        model takes one, ``profile`` (B, n_profile), the visitor's declared profile;
        ``options``: (B, T, Z) option state of each candidate zone at each decision;
        ``past``: cached keys/values of earlier tokens (then T is usually 1)."""
        start = past[0][0].size(2) if past else 0
        waits = gaps = None
        if options is not None:
            options = self.known_options(options)
            gaps = self.queue_gaps(options) if self.config.queue_gap else None
            options, waits = self.split_options(options)
        x = self.embed(tokens, start, options)
        attention: list[torch.Tensor] = []
        cache: list[KV] = []
        for i, block in enumerate(self.blocks):
            x, weights, kv = block(x, need_weights, past[i] if past else None)
            cache.append(kv)
            if weights is not None:
                attention.append(weights)
        h = self.ln_f(x)
        logits = h @ self.zone_table().t() + self.move_prior[tokens["zone"]]
        logits = logits + self.seen_logits(tokens)
        if options is not None:
            by_level = h @ self.option_state.weight.t()  # (B, T, states)
            logits = logits + torch.gather(by_level, 2, options.long())
            if waits is not None:
                logits = logits - self.wait_cost(h, waits)
            if gaps is not None:
                logits = logits + torch.gather(h @ self.gap_state.weight.t(), 2, gaps)
        if self.uses_profile(tokens):
            logits = logits + self.interest_logits(tokens["profile"])[:, None, :]
        if self.uses_shows(tokens):
            by_show = h @ self.show_state.weight.t()  # (B, T, show states)
            logits = logits + torch.gather(by_show, 2, self.known_shows(tokens["shows"]).long())
        if mask_illegal:
            logits = logits.masked_fill(~self.legal[tokens["zone"]], float("-inf"))
        return GPTOutput(logits, h, attention if need_weights else None, cache)

    def feature_embeddings(self) -> list[nn.Embedding | None]:
        """The embedding of each token feature, in ``FEATURES`` order (None for a feature
        the model came before: it reads it as nothing)."""
        return [
            self.zone_emb,
            self.kind_emb,
            self.tod_emb,
            self.stay_emb,
            self.crowd_emb,
            self.dwell_emb,
            self.end_tod_emb,
            self.end_stay_emb,
            *(self.since_embs or [None] * len(NEED_KINDS)),
        ]

    def feature_sizes(self) -> list[int]:
        """How many values each token feature takes, in ``FEATURES`` order."""
        c = self.config
        sizes = [c.n_zones, c.n_kinds, c.n_tod, c.n_stay, c.n_crowd, c.n_dwell, c.n_tod, c.n_stay]
        return sizes + [N_SINCE] * len(NEED_KINDS)

    def token_table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The feature embeddings and the positions stacked in one table, and where each
        starts: a token is then one ``embedding_bag`` of it (a feature the model came
        before adds rows of zeros)."""
        d, embeddings = self.config.n_embd, self.feature_embeddings()
        tables = [
            torch.zeros(size, d) if e is None else e.weight
            for e, size in zip(embeddings, self.feature_sizes(), strict=True)
        ]
        tables.append(self.pos_emb.weight)
        sizes = torch.tensor([0] + [len(t) for t in tables[:-1]])
        return torch.cat(tables), torch.cumsum(sizes, 0)

    @torch.no_grad()
    def decode_step(
        self,
        tokens: dict[str, torch.Tensor],
        options: torch.Tensor,
        past: torch.Tensor,
        lengths: torch.Tensor,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor] | None]:
        """One new token for each of B sequences whose earlier keys/values are cached.

        ``tokens``: (B,) features of the new tokens (and ``profile`` (B, n_profile), if
        the model takes one, ``shows`` (B, Z) every zone's show state for a model that
        takes the programme, and ``seen`` (B, Z), the places in each context, this
        token's included: without it, this token's zone only); ``options``: (B, Z) option states of
        the candidate zones; ``past``: (B, layers, 2, heads, W, head_size) keys and values
        of each sequence's earlier tokens, valid below ``lengths`` (B,) (< W; what lies
        beyond is ignored but must be finite), overwritten at position ``lengths``.
        Returns the zone logits (B, Z) (not masked), the hidden states (B, C), the new
        token's keys and values (B, layers, 2, heads, head_size), for the caller's cache,
        and, if asked, each layer's (B, heads, W) attention weights (zero beyond each
        sequence's length). The same numbers as ``forward`` on the whole sequence, at the
        cost of one token; written with as few tensor operations as possible, since at a
        few hundred sequences their number is the cost, not their size.
        """
        b = lengths.shape[0]
        rows = torch.arange(b)
        c, heads = self.config.n_embd, self.config.n_head
        positions = lengths.clamp(max=self.config.block_size - 1)
        table, starts = self.token_table()
        features = [tokens[f] for f in FEATURES]
        ids = torch.stack([*features, positions], dim=1) + starts
        x = F.embedding_bag(ids, table, mode="sum")
        if self.config.n_options <= FULL_OPTION:
            options = self.known_options(options)
        shared = options.stride(0) == 0  # one venue state expanded over the batch
        gaps = None
        if self.config.queue_gap:
            gaps = self.queue_gaps(options[:1] if shared else options).expand(b, -1)
        options, waits = self.split_options(options)
        x = x + self.venue_view(options[:1] if shared else options)  # viewed once if shared
        if self.uses_profile(tokens):
            x = x + self.profile_vector(tokens["profile"])
        if self.config.show_view and self.uses_shows(tokens):
            x = x + self.programme_view(self.known_shows(tokens["shows"]))
        visible = torch.arange(past.shape[4])[None, :] <= lengths[:, None]  # (B, W)
        mask = visible[:, None, None, :]
        additive = torch.zeros(mask.shape).masked_fill_(~mask, float("-inf"))
        attention: list[torch.Tensor] = []
        new_kv: list[torch.Tensor] = []
        for layer, block in enumerate(self.blocks):

            def attend(qkv: torch.Tensor, layer: int = layer) -> torch.Tensor:
                qkv = qkv.view(b, 3, heads, -1)
                new_kv.append(qkv[:, 1:])
                past[rows, layer, :, :, lengths] = qkv[:, 1:]  # this token's key and value
                q = qkv[:, 0, :, None, :]  # (B, heads, 1, size)
                k, v = past[:, layer, 0], past[:, layer, 1]  # (B, heads, W, size)
                if need_weights:
                    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
                    weights = F.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
                    attention.append(weights[:, :, 0, :])
                    return (weights @ v).reshape(b, c)
                return F.scaled_dot_product_attention(q, k, v, attn_mask=additive).reshape(b, c)

            x = block_step(x, block.roles, attend, EVAL_OPS)
        hidden = F.layer_norm(x, (c,), self.ln_f.weight, self.ln_f.bias)
        logits = hidden @ self.zone_table().t() + self.move_prior[tokens["zone"]]
        by_level = hidden @ self.option_state.weight.t()
        logits = logits + torch.gather(by_level, 1, options.long())
        if waits is not None:
            logits = logits - self.wait_cost(hidden, waits)
        if gaps is not None:
            logits = logits + torch.gather(hidden @ self.gap_state.weight.t(), 1, gaps)
        seen = tokens.get("seen")
        if seen is None:  # no context given: the new token's own zone
            seen = F.one_hot(tokens["zone"], self.config.n_zones)
        logits = logits + seen.to(self.seen_gain.dtype) * self.seen_gain[self.zone_kind]
        if self.uses_profile(tokens):
            logits = logits + self.interest_logits(tokens["profile"])
        if self.uses_shows(tokens):
            by_show = hidden @ self.show_state.weight.t()
            logits = logits + torch.gather(by_show, 1, self.known_shows(tokens["shows"]).long())
        return logits, hidden, torch.stack(new_kv, 1), attention if need_weights else None

    def dwell_logits(
        self, hidden: torch.Tensor, next_zone: torch.Tensor, next_show: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, T, dwell classes) for the stay at ``next_zone`` (B, T), which shows
        ``next_show`` (B, T) of the programme (for a model that takes one): the buckets,
        then ``UNTIL_SHOW_ENDS`` for a model that has it (``show_end_dwell``)."""
        x = hidden + self.zone_table()[next_zone.clamp(min=0)]
        if next_show is not None and self.config.n_show_states:
            next_show = self.known_shows(next_show.long())
            x = x + self.show_state(next_show)
        return self.dwell_head(x)

    def loss(
        self, batch: dict[str, torch.Tensor], reduction: str = "mean"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Next-zone and next-dwell cross-entropy over the positions with a target (their
        mean, or with ``reduction="sum"`` their sum)."""
        out = self.forward(batch, batch["options"])
        target = batch["next_zone"]
        zone_loss = F.cross_entropy(
            out.zone_logits.flatten(0, 1),
            target.flatten(),
            ignore_index=-1,
            reduction=reduction,
        )
        shows = batch.get("shows")
        next_show = None
        if shows is not None:
            next_show = torch.gather(shows.long(), 2, target.clamp(min=0)[..., None])[..., 0]
        dwell = self.dwell_logits(out.hidden, target, next_show)
        dwell_target = batch["next_dwell"]
        ends = batch.get("next_show_end")
        if self.config.show_end_dwell and ends is not None:
            # A stay until the end of a show this model has no class for keeps its bucket.
            known = (ends >= 0) & (ends < self.config.show_end_dwell)
            dwell_target = torch.where(known, UNTIL_SHOW_ENDS + ends, dwell_target)
        dwell_loss = F.cross_entropy(
            dwell.flatten(0, 1),
            dwell_target.flatten(),
            ignore_index=-1,
            reduction=reduction,
        )
        return zone_loss, dwell_loss

    def matmul_weights(self) -> int:
        """The weights each token is multiplied by in a forward pass: every linear map (the
        blocks', the dwell head's) and the tables read out by a product with the hidden
        state (zones, option and show states) or the declared profile. The lookup tables
        summed into the input (the features', the venue state's) multiply nothing and are
        not counted, however large."""
        c = self.config
        linears = sum(m.weight.numel() for m in self.modules() if isinstance(m, nn.Linear))
        return linears + (c.n_zones + c.n_options + c.n_show_states + c.n_profile) * c.n_embd

    def forward_flops(self, context: int | None = None) -> float:
        """Forward FLOPs per token: 2N, and the attention's 4 per layer, width and position
        of context (scores and mixed values); a live decision costs this."""
        t = context or self.config.block_size
        return 2 * self.matmul_weights() + 4 * self.config.n_layer * self.config.n_embd * t

    def flops_per_token(self, context: int | None = None) -> float:
        """Forward+backward FLOPs per token (6N plus attention), as in the PaLM paper."""
        return 3 * self.forward_flops(context)
