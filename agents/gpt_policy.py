"""GPT-driven avatars: every avatar that decides in a step goes through one batched step
of the trained GPT.

Each avatar's context is kept incrementally, in arrays: a key/value cache slot per avatar
inside the venue (float16, ``block_size`` tokens), so a decision costs one token whatever
the avatar's history. When a slot is full, its last ``block_size / 2`` visits are
re-encoded into the start of the slot, exactly as training cut long trajectories into
half-overlapping windows. The tokens are built by ``llm.features.visit_features``, the
same function that reads the training logs, so an avatar sees live what the model saw in
training, including the crowd level and queue wait of every zone it could go to.

Draws come from a counter-based hash of (seed, avatar, visit), so a run is reproducible
whatever the batch sizes. ``explain(avatar, visit)`` recomputes a past decision with the
attention weights of every layer and head; nothing is captured for it unless asked,
beyond the visit tokens and the zones' states the policy keeps anyway.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import torch

from agents.needs import Needs
from agents.policy import PLANNING_SPEED, Decision, Layout, Observation
from agents.sampling import choose, dwell_bounds, dwell_seconds, uniforms
from llm import checkpoint
from llm.features import (
    DWELL_EDGES_S,
    FEATURES,
    FRUIN_LABELS,
    N_CROWD,
    TOD_BUCKET_S,
    WAIT_LABELS,
    option_state,
    visit_features,
    zone_crowd,
)

#: Visits remembered per avatar for explanations (the cache itself holds block_size).
MEMORY = 128
#: Every this many decision calls, all nearly full caches (within TIDY_MARGIN tokens of
#: the window) are re-encoded in one batch, so that few calls need a pass of their own.
TIDY_EVERY, TIDY_MARGIN = 4, 6
#: Caches are kept in float32 up to this size, in float16 beyond (100,000 avatars).
FLOAT32_CACHE_BYTES = 1 << 30
_ZONE_DRAW, _DWELL_DRAW = 1, 2
#: A stay ends with the show when the show ends within this many dwell buckets of the one
#: drawn: the model knows the time of day to five minutes, so it cannot pin the bucket.
SHOW_END_REACH = 1


def seconds_of_day(opening: datetime, t: np.ndarray) -> np.ndarray:
    start = opening.hour * 3600 + opening.minute * 60 + opening.second
    return (start + np.asarray(t)) % 86400.0


@dataclass
class Explanation:
    """Why an avatar chose its next zone: the visits it looked at, the attention of every
    layer and head over them, and the probability of every candidate."""

    avatar: int
    visit: int  # index of the visit that was ending
    time_s: float  # decision time, seconds after opening
    context: list[str]  # labels of the visits in the context, oldest first
    attention: np.ndarray  # (layers, heads, T, T) attention weights over the context
    candidates: list[tuple[str, float]]  # legal next zones with probabilities, best first
    chosen: str | None  # the zone actually chosen next (None if not yet known)
    #: What each candidate showed the avatar (crowd level, queue wait), as candidates.
    shown: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "avatar": self.avatar,
            "visit": self.visit,
            "time_s": self.time_s,
            "context": self.context,
            "attention": self.attention.tolist(),
            "candidates": self.candidates,
            "chosen": self.chosen,
            "shown": self.shown,
        }


class GPTPolicy:
    """Avatars that decide with a trained GPT checkpoint."""

    name = "gpt"
    dwell_from_entry = True  # the model learnt whole stays, queues included

    def __init__(
        self,
        model: str | os.PathLike[str] | checkpoint.Checkpoint,
        temperature: float = 1.0,
        top_k: int | None = None,
        cache_dtype: torch.dtype | None = None,
    ) -> None:
        self.ckpt = model if isinstance(model, checkpoint.Checkpoint) else checkpoint.load(model)
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        self.temperature, self.top_k, self.cache_dtype = temperature, top_k, cache_dtype
        self.model = self.ckpt.model.eval()

    # ------------------------------------------------------------------ set-up
    def bind(self, layout: Layout, needs: Needs, rng: np.random.Generator) -> None:
        checkpoint.check_vocab(self.ckpt.vocab, layout.vocabulary(), self.ckpt.path)
        config = self.model.config
        self.layout = layout
        self.seed = int(rng.integers(2**62))
        self.kind_ids, self.area = self.ckpt.vocab.kind_ids, layout.area
        self.is_exit = np.array(layout.kinds) == "exit"
        self.window, self.keep = config.block_size, config.block_size // 2
        n = len(needs.arrived_s)
        self.tokens = np.zeros((n, MEMORY, len(FEATURES)), dtype=np.int16)
        self.count = np.zeros(n, dtype=np.int64)  # tokens kept per avatar
        self.decided_at = np.full((n, MEMORY), np.nan, dtype=np.float32)  # when decided
        self.call_of = np.full((n, MEMORY), -1, dtype=np.int32)  # which decide() call
        #: Option states of every zone at each decide() call (rows grow as calls come).
        self.states = np.zeros((256, layout.n_zones), dtype=np.int8)
        self.n_states = 0
        self.chosen = np.full((n, MEMORY), -1, dtype=np.int16)
        self.window_start = np.zeros(n, dtype=np.int64)  # first visit in each live cache
        self.context_of = np.zeros((n, MEMORY), dtype=np.int8)  # visits in context - 1
        self.last_probs: np.ndarray | None = None  # the latest call's probabilities
        self.last_avatars: np.ndarray | None = None  # ... and whose they were
        self.slot = np.full(n, -1, dtype=np.int64)
        heads, size = config.n_head, config.n_embd // config.n_head
        self.cache_shape = (config.n_layer, 2, heads, self.window, size)
        per_avatar = 4 * int(np.prod(self.cache_shape))
        dtype = self.cache_dtype or (
            torch.float32 if n * per_avatar <= FLOAT32_CACHE_BYTES else torch.float16
        )
        # One slot per avatar, reserved but not touched: the operating system only backs
        # the slots in use with memory (freed slots are reused first), so the resident
        # size follows the crowd inside, and nothing is ever copied to grow.
        self.cache = torch.empty((n, *self.cache_shape), dtype=dtype)
        self.avatar_in = np.full(n, -1, dtype=np.int64)  # avatar of each slot (-1: free)
        self.lengths = torch.zeros(n, dtype=torch.long)
        self.free = np.arange(n - 1, -1, -1, dtype=np.int64)  # a stack: free slots on top
        self.n_free = n
        self.calls = 0

    @property
    def cache_bytes(self) -> int:
        """Bytes of the caches of the avatars inside now."""
        per_slot = self.cache[0].numel() * self.cache.element_size() if len(self.cache) else 0
        return int((self.avatar_in >= 0).sum()) * per_slot

    # ------------------------------------------------------------------ decide
    def decide(self, obs: Observation) -> Decision:
        idx = obs.avatar
        visit = obs.visits - 1  # index of the visit that is ending
        token = visit_features(
            obs.zone,
            self.kind_ids,
            self.area,
            seconds_of_day(self.layout.opening, obs.entered_s),
            obs.entered_s - obs.arrived_s,
            obs.entry_occupancy,
            obs.now_s - obs.entered_s,
        )
        slots = self.slots_for(idx, visit)
        self.rewindow(idx, slots)
        stacked = np.stack([token[f] for f in FEATURES], axis=1)
        self.remember(idx, visit, stacked, obs.now_s)
        state = option_state(zone_crowd(obs.occupancy, self.area), obs.queue_wait_s)
        self.call_of[idx, visit % MEMORY] = self.keep_state(state)

        slots_t = torch.from_numpy(slots)
        lengths = self.lengths[slots_t]
        options = torch.from_numpy(state.astype(np.int64)).expand(len(idx), -1)
        past = self.cache.index_select(0, slots_t)  # whole rows: a plain copy, the fastest
        with torch.no_grad():
            logits, hidden, new_kv, _ = self.model.decode_step(
                {f: torch.from_numpy(token[f]) for f in FEATURES},
                options,
                past.float(),  # a no-op for float32 caches
                lengths,
            )
        self.cache[slots_t, :, :, :, lengths] = new_kv.to(self.cache.dtype)
        self.lengths[slots_t] = lengths + 1

        self.context_of[idx, visit % MEMORY] = visit - self.window_start[idx]
        probs = self.probabilities(logits, obs.legal)
        self.last_probs, self.last_avatars = probs, idx
        next_zone = choose(probs, uniforms(self.seed, idx, visit, _ZONE_DRAW))
        no_move = ~obs.legal.any(axis=1)
        next_zone = np.where(no_move, obs.zone, next_zone)
        with torch.no_grad():
            dwell_logits = self.model.dwell_logits(hidden, torch.from_numpy(next_zone))
        dwell_probs = softmax_rows(dwell_logits.double().numpy() / self.temperature)
        bucket = choose(dwell_probs, uniforms(self.seed, idx, visit, _DWELL_DRAW))
        dwell = dwell_seconds(bucket, uniforms(self.seed, idx, visit, _DWELL_DRAW + 1))
        dwell = self.until_show_ends(obs, next_zone, bucket, dwell)
        self.chosen[idx, visit % MEMORY] = next_zone
        self.release(idx[self.is_exit[next_zone]])
        return Decision(next_zone=next_zone.astype(np.int64), dwell_s=dwell)

    def until_show_ends(
        self, obs: Observation, next_zone: np.ndarray, bucket: np.ndarray, dwell: np.ndarray
    ) -> np.ndarray:
        """A stay at a stage whose dwell bucket (or one within ``SHOW_END_REACH`` of it)
        holds the end of the show on there (or about to begin) lasts until the show ends:
        the model chose how long to stay, in buckets; the programme says when. So the
        audience leaves together, as visitors do, and the bars by the stage see the rush."""
        lay = self.layout
        if len(lay.show_stage) == 0:
            return dwell
        entry = obs.now_s + lay.distance[obs.zone, next_zone] / PLANNING_SPEED
        remaining = lay.show_end_after(next_zone, entry) - entry
        lower, _ = dwell_bounds(np.maximum(bucket - SHOW_END_REACH, 0))
        _, upper = dwell_bounds(bucket + SHOW_END_REACH)
        ends_within = (remaining >= lower) & (remaining <= upper)
        return np.where(ends_within, remaining, dwell)

    def probabilities(self, logits: torch.Tensor, legal: np.ndarray | torch.Tensor) -> np.ndarray:
        """Next-zone probabilities over the legal moves, with temperature and top-k (rows
        without a legal move are all zero)."""
        scaled = np.where(np.asarray(legal), logits.double().numpy() / self.temperature, -np.inf)
        if self.top_k is not None and self.top_k < scaled.shape[1]:
            kth = np.partition(scaled, -self.top_k, axis=1)[:, -self.top_k :][:, :1]
            scaled = np.where(scaled < kth, -np.inf, scaled)
        return softmax_rows(scaled)

    # ------------------------------------------------------------------ the cache
    def slots_for(self, idx: np.ndarray, visit: np.ndarray) -> np.ndarray:
        """Each avatar's cache slot (new avatars get one). An avatar deciding again about
        the same visit (refused at a full zone) has that visit's token taken back."""
        missing = idx[self.slot[idx] < 0]
        if len(missing):
            fresh = self.free[self.n_free - len(missing) : self.n_free][::-1].copy()
            self.n_free -= len(missing)
            self.slot[missing] = fresh
            self.avatar_in[fresh] = missing
            self.lengths[fresh] = 0
            self.cache[torch.from_numpy(fresh)] = 0  # first touch of this memory
            self.window_start[missing] = self.count[missing]
        slots = self.slot[idx]
        again = self.count[idx] > visit
        if again.any():
            self.count[idx[again]] -= 1
            self.lengths[torch.from_numpy(slots[again])] -= 1
        return slots

    def rewindow(self, idx: np.ndarray, slots: np.ndarray) -> None:
        """Caches that are full, or (every ``TIDY_EVERY`` calls, for all avatars at once)
        nearly full, keep their last ``keep`` visits, re-encoded from position 0."""
        self.calls += 1
        full = (self.lengths[torch.from_numpy(slots)] >= self.window).numpy()
        who = idx[full]
        if self.calls % TIDY_EVERY == 0:  # one batched pass instead of one per step
            nearly = torch.nonzero(self.lengths >= self.window - TIDY_MARGIN)[:, 0].numpy()
            who = np.union1d(who, self.avatar_in[nearly])
        who = who[who >= 0]
        if len(who) == 0:
            return
        where = torch.from_numpy(self.slot[who])
        positions = (self.count[who, None] - self.keep + np.arange(self.keep)) % MEMORY
        recent = self.tokens[who[:, None], positions].astype(np.int64)  # (b, keep, F)
        tokens = {f: torch.from_numpy(recent[:, :, i]) for i, f in enumerate(FEATURES)}
        options = torch.from_numpy(self.states[self.call_of[who[:, None], positions]])
        with torch.no_grad():
            past = self.model(tokens, options, mask_illegal=False).past
        kv = torch.stack([torch.stack(layer, 1) for layer in past], 1)  # (b, L, 2, H, keep, S)
        self.cache[where, :, :, :, : self.keep] = kv.to(self.cache.dtype)
        self.lengths[where] = self.keep
        self.window_start[who] = self.count[who] - self.keep

    def keep_state(self, state: np.ndarray) -> int:
        """Store one call's option states of every zone; its row number."""
        if self.n_states == len(self.states):
            self.states = np.concatenate([self.states, np.zeros_like(self.states)])
        self.states[self.n_states] = state
        self.n_states += 1
        return self.n_states - 1

    def remember(
        self, idx: np.ndarray, visit: np.ndarray, token: np.ndarray, now: np.ndarray
    ) -> None:
        self.tokens[idx, visit % MEMORY] = token
        self.decided_at[idx, visit % MEMORY] = now
        self.count[idx] = visit + 1

    def release(self, idx: np.ndarray) -> None:
        """Avatars heading out give their cache slots back."""
        idx = idx[self.slot[idx] >= 0]
        if len(idx) == 0:
            return
        freed = self.slot[idx]
        self.free[self.n_free : self.n_free + len(freed)] = freed
        self.n_free += len(freed)
        self.avatar_in[freed] = -1
        self.lengths[torch.from_numpy(freed)] = 0
        self.slot[idx] = -1

    # ------------------------------------------------------------------ explain
    def explain(self, avatar: int, visit: int | None = None) -> Explanation:
        """Recompute one decision of ``avatar`` (its latest by default) with attention."""
        count = int(self.count[avatar])
        if count == 0:
            raise ValueError(f"avatar {avatar} has not decided yet")
        visit = count - 1 if visit is None else int(visit)
        if not (max(0, count - MEMORY) <= visit < count):
            raise ValueError(f"avatar {avatar}: no decision at visit {visit} in memory")
        start = visit - int(self.context_of[avatar, visit % MEMORY])
        rows = np.arange(start, visit + 1) % MEMORY
        tokens = self.tokens[avatar, rows].astype(np.int64)
        feed = {f: torch.from_numpy(tokens[None, :, i]) for i, f in enumerate(FEATURES)}
        options = torch.from_numpy(self.states[self.call_of[avatar, rows]][None])
        state = self.states[self.call_of[avatar, visit % MEMORY]]
        with torch.no_grad():
            out = self.model(feed, options, need_weights=True, mask_illegal=False)
        last_zone = int(tokens[-1, 0])
        legal = torch.from_numpy(self.layout.adjacency[last_zone][None, :])
        probs = self.probabilities(out.zone_logits[:, -1], legal)[0]
        names = self.layout.zones
        order = np.argsort(-probs)
        shown = [z for z in order if probs[z] > 0]
        candidates = [(names[z], float(probs[z])) for z in shown]
        chosen = int(self.chosen[avatar, visit % MEMORY])
        return Explanation(
            avatar=avatar,
            visit=visit,
            time_s=float(self.decided_at[avatar, visit % MEMORY]),
            context=[self.label(t) for t in tokens],
            attention=torch.stack(out.attention)[:, 0].numpy(),
            candidates=candidates,
            chosen=names[chosen] if chosen >= 0 else None,
            shown=[describe_option(int(state[z])) for z in shown],
        )

    def label(self, token: np.ndarray) -> str:
        """A visit token as a reader sees it: zone, clock on entry, crowd level, dwell."""
        feature = dict(zip(FEATURES, (int(v) for v in token), strict=True))
        zone, tod, crowd, dwell = (feature[f] for f in ("zone", "tod", "crowd", "dwell"))
        clock = int(tod * TOD_BUCKET_S)
        upper = DWELL_EDGES_S[dwell] if dwell < len(DWELL_EDGES_S) else None
        stay = f"<{_short(upper)}" if upper is not None else f">{_short(DWELL_EDGES_S[-1])}"
        return (
            f"{self.layout.zones[zone]} {clock // 3600:02d}:{clock % 3600 // 60:02d} "
            f"{FRUIN_LABELS[crowd]} {stay}"
        )


def softmax_rows(scores: np.ndarray) -> np.ndarray:
    """Softmax of each row (``-inf`` scores get 0; a row of them all is all zero)."""
    top = scores.max(axis=1, keepdims=True)
    weights = np.exp(scores - np.where(np.isfinite(top), top, 0.0))
    total = weights.sum(axis=1, keepdims=True)
    return np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)


def describe_option(state: int) -> str:
    """What a candidate zone showed, from its option state: "crowd B, queue <5 min"."""
    return f"crowd {FRUIN_LABELS[state % N_CROWD]}, queue {WAIT_LABELS[state // N_CROWD]}"


def _short(seconds: float) -> str:
    return f"{seconds / 60:g}m" if seconds >= 60 else f"{seconds:g}s"
