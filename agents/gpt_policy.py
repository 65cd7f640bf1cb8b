"""GPT-driven avatars: every avatar that decides in a step goes through one batched step
of the trained GPT.

An avatar chooses its next *place* where a visit to a place ends (``chooses = "place"``:
the twin walks it there through corridors without asking the model, ``twin.crowd.Walks``);
at the door of a place whose queue has grown since, it thinks again: it chooses with the
model's odds now, from the same draw as the first time (draws are keyed by the visit), so
it changes its mind only as far as the odds have moved.

Each avatar's context is kept incrementally: a key/value cache slot per avatar inside the
venue (``llm.decoder``: float32, or float16 at 100,000 avatars; ``block_size`` tokens, held in
pages of 8 as the context grows), so
a decision costs one token whatever the avatar's history. When a slot is full, its last
``block_size / 2`` visits are re-encoded into the start of the slot, exactly as training
cut long trajectories into half-overlapping windows. The tokens are built by
``llm.features.visit_features``, the same function that reads the training logs, so an
avatar sees live what the model saw in training, including the crowd level and queue wait
of every zone it could go to.

Draws come from a counter-based hash of (seed, avatar, visit) (``llm.sampling``), so a run
is reproducible whatever the batch sizes. ``explain(avatar, visit)`` recomputes a past
decision with the attention weights of every layer and head (``agents.explain``); nothing
is captured for it unless asked, beyond the visit tokens and the zones' states the policy
keeps anyway.
"""

from __future__ import annotations

import os
from datetime import datetime

import numpy as np
import torch

from agents.explain import MEMORY, Explanation, explain_decision
from agents.needs import Needs, declared_profiles
from agents.policy import PLANNING_SPEED, TRANSIT_DWELL_S, Decision, Layout, Observation
from llm import checkpoint
from llm.decoder import Decoder
from llm.features import (
    FEATURES,
    FULL_OPTION,
    NEED_KINDS,
    UNTIL_SHOW_ENDS,
    cap_show_states,
    needs_met,
    option_state,
    profile_vectors,
    show_grace_s,
    show_left_s,
    show_states,
    visit_features,
    wait_level,
)
from llm.sampling import choose, dwell_bounds, dwell_seconds, uniforms

#: Every this many decision calls, all nearly full caches (within TIDY_MARGIN tokens of
#: the window) are re-encoded in one batch, so that few calls need a pass of their own.
TIDY_EVERY, TIDY_MARGIN = 4, 6
_ZONE_DRAW, _DWELL_DRAW = 1, 2
#: A stay ends with the show when the show ends within this many dwell buckets of the one
#: drawn: the model knows the time of day to five minutes, so it cannot pin the bucket.
SHOW_END_REACH = 1


def seconds_of_day(opening: datetime, t: np.ndarray) -> np.ndarray:
    start = opening.hour * 3600 + opening.minute * 60 + opening.second
    return (start + np.asarray(t)) % 86400.0  # as Layout.opening_clock_s, per moment


class GPTPolicy:
    """Avatars that decide with a trained GPT checkpoint."""

    name = "gpt"
    chooses = "place"  # as its training tokens do; the twin walks avatars there
    # The model learnt stays from the start of service: a log's dwell less its stated
    # queue wait (``llm.data.Sequences.next_dwell``); the twin adds the queue it has now.
    dwell_from = "service_start"

    def __init__(
        self,
        model: str | os.PathLike[str] | checkpoint.Checkpoint,
        temperature: float = 1.0,
        top_k: int | None = None,
        cache_dtype: torch.dtype | None = None,
        window: int | None = None,
    ) -> None:
        """``window``: visits each avatar's cache holds (default and most: the model's
        ``block_size``); a shorter one saves memory and re-encodes more often."""
        self.ckpt = model if isinstance(model, checkpoint.Checkpoint) else checkpoint.load(model)
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        self.temperature, self.top_k, self.cache_dtype = temperature, top_k, cache_dtype
        block = self.ckpt.model.config.block_size
        if window is not None and not 2 <= window <= block:
            raise ValueError(f"window must be between 2 and the model's {block} visits")
        self.window_size = window or block
        self.model = self.ckpt.model.eval()

    # ------------------------------------------------------------------ set-up
    def bind(self, layout: Layout, needs: Needs, rng: np.random.Generator) -> None:
        checkpoint.check_vocab(self.ckpt.vocab, layout.vocabulary(), self.ckpt.path)
        config = self.model.config
        self.layout = layout
        self.seed = int(rng.integers(2**62))
        self.kind_ids, self.n_zones = self.ckpt.vocab.kind_ids, layout.n_zones
        self.is_exit = np.array(layout.kinds) == "exit"
        self.window, self.keep = self.window_size, self.window_size // 2
        n = len(needs.arrived_s)
        self.tokens = np.zeros((n, MEMORY, len(FEATURES)), dtype=np.int16)
        self.count = np.zeros(n, dtype=np.int64)  # tokens kept per avatar
        self.decided_at = np.full((n, MEMORY), np.nan, dtype=np.float32)  # when decided
        self.call_of = np.full((n, MEMORY), -1, dtype=np.int32)  # its row of ``states``
        #: Option states of every zone at the decisions (rows alike in a call kept once).
        self.states = np.zeros((256, layout.n_zones), dtype=np.int8)
        self.n_states = 0
        self.chosen = np.full((n, MEMORY), -1, dtype=np.int16)
        self.window_start = np.zeros(n, dtype=np.int64)  # first visit in each live cache
        self.context_of = np.zeros((n, MEMORY), dtype=np.int8)  # visits in context - 1
        self.last_probs: np.ndarray | None = None  # the latest call's probabilities
        self.last_avatars: np.ndarray | None = None  # ... and whose they were
        #: The model's live decoding (its weights as they are now) and each avatar's cache.
        self.decoder = Decoder(self.model, n, self.window, self.cache_dtype)
        self.kv = self.decoder.cache
        self.calls = 0
        #: The visit (the twin's count) of each avatar's latest place taken in as a token.
        self.place_visit = np.full(n, -1, dtype=np.int64)
        #: The wait level of each avatar's place when it chose it.
        self.goal_wait = np.zeros(n, dtype=np.int64)
        #: Places that turned each avatar away (full when it got there): not chosen again,
        #: as a visitor remembers being turned away (the scripted one gives them up too).
        self.turned_away = np.zeros((n, layout.n_zones), dtype=bool)
        #: The places of each kind met for a need (bars, restrooms, lounges), among which
        #: an avatar turned away from one looks for another (``probabilities``).
        kinds = np.array(layout.kinds)
        places = (np.flatnonzero(kinds == k) for k in NEED_KINDS)
        self.need_places = [p for p in places if len(p)]
        self.need_place = np.isin(kinds, NEED_KINDS)
        #: Each avatar's declared profile, for a model that takes one: what a log's
        #: ``profile`` column would say of its visitor, never its needs' state.
        #: The programme on the clock, and the shows each avatar's profile booked.
        self.programme = layout.programme()
        self.profile = None
        tags = [""] * n
        if config.n_profile or config.n_show_states:
            tags = declared_profiles(needs, layout.zones, self.programme)
        if config.n_profile:
            self.profile = profile_vectors(tags, self.ckpt.vocab.index)
        self.show_wanted = self.programme.wanted(tags)
        #: When each avatar last met each need (``llm.features.NEED_KINDS``; seconds since
        #: its arrival, NaN: never): up to its latest place, and before it.
        self.needs_met = np.full((n, len(NEED_KINDS)), np.nan)
        self.needs_before = np.full((n, len(NEED_KINDS)), np.nan)

    # ------------------------------------------------------------------ decide
    def decide(self, obs: Observation) -> Decision:
        """Avatars on their way to the place they chose walk on (the twin walks them); the
        others, and those at the door of a place whose queue has grown, choose their next
        place and stay in one batched step of the model."""
        walking = obs.walking & ~self.at_a_longer_queue(obs)
        place = np.where(walking, obs.goal, -1)
        stay = np.where(walking, obs.goal_stay_s, TRANSIT_DWELL_S)
        deciding = np.flatnonzero(~walking)
        if len(deciding):
            place[deciding], stay[deciding] = self.choose_places(obs, deciding)
        return Decision(next_zone=place, dwell_s=stay)

    def at_a_longer_queue(self, obs: Observation) -> np.ndarray:
        """(B,) bool: avatars one step from their place whose queue has grown (a higher
        wait level) since they chose it. As a visitor at the door, they think again."""
        door = self.at_door(obs.zone, obs.goal)
        if not door.any():
            return door
        rows = np.flatnonzero(door)
        level = wait_level(obs.queue_wait_s[rows, obs.goal[rows]])
        door[rows] = level > self.goal_wait[obs.avatar[rows]]
        return door & self.has_slot(obs.avatar)

    def at_door(self, zone: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """(B,) bool: avatars in a passage one step from their place ``goal``."""
        next_to = self.layout.place_hop[zone, np.maximum(goal, 0)] == goal
        return (goal >= 0) & next_to & self.layout.passage[zone]

    def choose_places(self, obs: Observation, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The next place (-1: none open, stay on) and stay of the avatars in rows ``r``.

        At a place, the visit ending there becomes the avatar's newest token. An avatar
        asked again about the same visit (a full zone refused it), at the place or on the
        way in a passage, has that token taken back and read again with the venue as it
        is now, and chooses among the places still open to it."""
        idx = obs.avatar[r]
        out = ~self.has_slot(idx)  # heading out already: no model, the nearest exit
        choices = self.not_turned_away(obs, r, obs.places[r])
        place, stay = np.full(len(r), -1), np.full(len(r), TRANSIT_DWELL_S)
        if out.any():
            o = np.flatnonzero(out)
            place[o] = self.nearest_exit(obs.zone[r[o]], choices[o])
            stay[o] = 0.0
        think = np.flatnonzero(~out)
        if len(think):
            chosen, stays = self.think(obs, r[think], choices[think])
            go = choices[think].any(axis=1)  # nowhere open: stay on, and ask again
            place[think[go]], stay[think[go]] = chosen[go], stays[go]
        return place, stay

    def not_turned_away(self, obs: Observation, r: np.ndarray, choices: np.ndarray) -> np.ndarray:
        """An avatar asked again about its visit at the door of its place, which refused it
        (full), remembers that place as turned away (a full corridor on the way does not
        count); the places that turned it away are left out of its choices (unless nothing
        else is open)."""
        idx, zone, goal = obs.avatar[r], obs.zone[r], obs.goal[r]
        again = ~self.is_new(idx, zone, obs.visits[r]) & (goal >= 0) & (goal != zone)
        at_door = self.layout.place_hop[zone, np.maximum(goal, 0)] == goal
        refused = again & at_door & ~choices[np.arange(len(r)), np.maximum(goal, 0)]
        self.turned_away[idx[refused], goal[refused]] = True
        kept = choices & ~self.turned_away[idx]
        return np.where(kept.any(axis=1, keepdims=True), kept, choices)

    def is_new(self, idx: np.ndarray, zone: np.ndarray, visits: np.ndarray) -> np.ndarray:
        """(B,) bool: avatars at a place whose visit there is new (not one the policy is
        asked about again after a full zone refused it)."""
        return ~self.layout.passage[zone] & (self.place_visit[idx] != visits - 1)

    def think(
        self, obs: Observation, r: np.ndarray, choices: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """One batched step of the model: the next place and the stay there, per avatar."""
        idx, zone, now = obs.avatar[r], obs.zone[r], obs.now_s[r]
        new = self.is_new(idx, zone, obs.visits[r])
        self.place_visit[idx[new]] = obs.visits[r][new] - 1
        visit = np.where(new, self.count[idx], self.count[idx] - 1)  # token index
        entered = obs.entered_s[r]
        self.needs_before[idx[new]] = self.needs_met[idx[new]]
        since_arrival, stay = entered - obs.arrived_s[r], now - entered
        token = visit_features(
            zone,
            self.kind_ids,
            seconds_of_day(self.layout.opening, entered),
            since_arrival,
            obs.entry_crowd[r],
            stay,
            self.needs_before[idx],
        )
        at_place = ~self.layout.passage[zone]
        self.needs_met[idx[at_place]] = needs_met(
            self.kind_ids[zone[at_place]],
            (since_arrival + stay)[at_place],
            self.needs_before[idx[at_place]],
        )
        kept = np.flatnonzero(~at_place)  # its place's token, read again
        for i, f in enumerate(FEATURES):
            token[f][kept] = self.tokens[idx[kept], visit[kept] % MEMORY, i]
        slots = self.slots_for(idx, visit)
        self.rewindow(idx, slots)
        stacked = np.stack([token[f] for f in FEATURES], axis=1)
        self.remember(idx, visit, stacked, now)
        full = obs.full if self.model.config.n_options > FULL_OPTION else None
        # Each avatar's option states (its own queue waits); the rows alike are kept once
        # (most steps: one row for all).
        each = option_state(obs.crowd, obs.queue_wait_s[r], full)
        if (each == each[0]).all():
            states, row = each[:1], np.zeros(len(r), dtype=np.int64)
        else:
            states, row = np.unique(each, axis=0, return_inverse=True)
            row = row.reshape(-1)
        self.call_of[idx, visit % MEMORY] = self.keep_states(states)[row]

        profile = None if self.profile is None else self.profile[idx]
        seen = self.seen_in_context(idx, visit, self.kv.lengths[slots] + 1)
        shows = self.shows_at(idx, now)
        logits, hidden = self.decoder.step(
            slots, stacked, states.astype(np.int64), profile, seen, shows, row
        )
        self.context_of[idx, visit % MEMORY] = visit - self.window_start[idx]
        probs = self.probabilities(logits, choices, self.turned_away[idx])
        self.last_probs, self.last_avatars = probs, idx
        place = choose(probs, uniforms(self.seed, idx, visit, _ZONE_DRAW))
        place = np.where(choices.any(axis=1), place, zone)  # nowhere open: stays on
        next_show = None if shows is None else shows[np.arange(len(idx)), place]
        dwell_logits = self.decoder.dwell_logits(hidden, place, next_show).astype(np.float64)
        ends = self.model.config.show_end_dwell
        left = self.show_left(zone, now, place, max(ends, 1))  # (B, classes)
        until = slice(UNTIL_SHOW_ENDS, UNTIL_SHOW_ENDS + ends)
        # "until a show ends" only where that show is still to end
        open_ = np.isfinite(left[:, :ends])
        dwell_logits[:, until] = np.where(open_, dwell_logits[:, until], -np.inf)
        dwell_probs = softmax_rows(dwell_logits / self.temperature)
        bucket = choose(dwell_probs, uniforms(self.seed, idx, visit, _DWELL_DRAW))
        stay = dwell_seconds(bucket, uniforms(self.seed, idx, visit, _DWELL_DRAW + 1))
        if ends:
            nth = np.clip(bucket - UNTIL_SHOW_ENDS, 0, ends - 1)
            stay = np.where(bucket >= UNTIL_SHOW_ENDS, left[np.arange(len(idx)), nth], stay)
        else:
            stay = self.until_show_ends(left[:, 0], bucket, stay)
        self.goal_wait[idx] = wait_level(obs.queue_wait_s[r, place])
        self.chosen[idx, visit % MEMORY] = place
        self.kv.release(idx[self.is_exit[place]])  # heading out: no more decisions
        return place, stay

    def shows_at(self, idx: np.ndarray, now_s: np.ndarray) -> np.ndarray | None:
        """(B, Z) show state of every zone for avatars ``idx`` choosing at ``now_s``
        (seconds after opening), for a model that takes the programme.

        A show at a stage that turned the avatar away (full) reads as one it did not book:
        it will not see it there, and chooses as a visitor who came for other things (the
        scripted visitor gives such a show up too). A log shows no refusal, so no model
        learns what a refused visitor does. Shown its show as still wanted, and the stage
        masked, the model's odds went where no visitor's did: on the festival (12,000
        visitors, the main stage capped at 6,000) the GPT avatars turned away there went
        home 35 minutes earlier than on a plain day, with no more visits, where the
        refused visitors stayed on at the bars, shops and other stages (now: 11 minutes
        earlier, six visits more each); on the concert hall, with nothing else to see,
        they wandered its foyer and bars (3.3 visits more each, the visitors none)."""
        if not self.model.config.n_show_states:
            return None
        stage = self.layout.show_stage
        wanted = self.show_wanted[idx] & ~self.turned_away[np.asarray(idx)[:, None], stage]
        states = show_states(
            seconds_of_day(self.layout.opening, now_s),
            stage,
            np.asarray(self.programme.start_s),
            np.asarray(self.programme.end_s),
            wanted,
            self.n_zones,
            show_grace_s(self.model.config.n_show_states),
        )
        return cap_show_states(states, self.model.config.n_show_states)

    def seen_in_context(self, idx: np.ndarray, visit: np.ndarray, span: np.ndarray) -> np.ndarray:
        """(B, Z) uint8: the places of each avatar's context, the ``span`` visits up to and
        including ``visit``, as the model sees them in training (``GPT.seen_logits``)."""
        positions = np.arange(int(span.max()))
        rows = (visit[:, None] - span[:, None] + 1 + positions) % MEMORY
        zones = self.tokens[idx[:, None], rows, 0].astype(np.int64)
        valid = positions[None, :] < span[:, None]
        seen = np.zeros((len(idx), self.n_zones), dtype=np.uint8)
        seen[np.nonzero(valid)[0], zones[valid]] = 1
        return seen

    def has_slot(self, idx: np.ndarray) -> np.ndarray:
        """Avatars with a cache, or none yet because they have not decided yet."""
        return self.kv.holds(idx) | (self.count[idx] == 0)

    def nearest_exit(self, zone: np.ndarray, choices: np.ndarray) -> np.ndarray:
        """The closest exit open to each avatar (-1 where none is)."""
        far = np.where(choices & self.is_exit[None, :], self.layout.place_distance[zone], np.inf)
        best = far.argmin(axis=1)
        return np.where(np.isfinite(far[np.arange(len(zone)), best]), best, -1)

    def show_left(
        self, zone: np.ndarray, now: np.ndarray, place: np.ndarray, n: int = 1
    ) -> np.ndarray:
        """(B, n) seconds from the avatars' entry at ``place`` (walking there from ``zone``
        from ``now``) until the first show there that is on or to come then ends, and the
        ``n - 1`` after it (inf where none: not a stage, or its shows over)."""
        lay = self.layout
        left = np.full((len(place), n), np.inf)
        staged = np.flatnonzero(np.isin(place, lay.show_stage))
        if len(staged):
            here, stage = zone[staged], place[staged]
            entry = now[staged] + lay.place_distance[here, stage] / PLANNING_SPEED
            left[staged] = show_left_s(lay.show_stage, lay.show_end_s, stage, entry, n)
        return left

    def until_show_ends(
        self, left: np.ndarray, bucket: np.ndarray, dwell: np.ndarray
    ) -> np.ndarray:
        """For a model without the "until the show ends" class (``show_end_dwell``): a stay
        at a stage whose dwell bucket (or one within ``SHOW_END_REACH`` of it) holds the
        end of the first show there that is on or still to come (``left`` seconds after
        entry) lasts until that show ends: the model chose how long to stay, in buckets;
        the programme says when. So the audience leaves together, as visitors do, and the
        bars by the stage see the rush. (A long stay chosen hours before a show, in the
        last, open-ended buckets, lasts until that show ends too.)"""
        lower, _ = dwell_bounds(bucket - SHOW_END_REACH)
        _, upper = dwell_bounds(bucket + SHOW_END_REACH)
        ends_within = np.isfinite(left) & (left >= lower) & (left <= upper)
        return np.where(ends_within, left, dwell)

    def probabilities(
        self, logits: np.ndarray, legal: np.ndarray, turned_away: np.ndarray | None = None
    ) -> np.ndarray:
        """Next-place probabilities over the places open (``legal``), with temperature and
        top-k (rows with none open are all zero).

        ``turned_away`` (B, Z): places that refused each avatar (closed, or full). A visitor
        turned away from a bar, a restroom or a lounge keeps its purpose: the odds the model
        gives such a place go to the open places of its kind (``NEED_KINDS``), in proportion
        to their own, where there are any (else to every open place, as the others' do). A
        log shows no refusal, so no model learns it: renormalised over every place, a
        thirsty avatar turned away from a closed café went to the other café half as
        often as its visitors did (expo: +518 visits there against +937)."""
        legal = np.asarray(legal)
        moved = np.zeros_like(legal) if turned_away is None else np.asarray(turned_away)
        moved = moved & ~legal & self.need_place[None, :]
        scores = np.asarray(logits, dtype=np.float64) / self.temperature
        scaled = np.where(legal | moved, scores, -np.inf)
        if self.top_k is not None and self.top_k < scaled.shape[1]:
            kth = np.partition(scaled, -self.top_k, axis=1)[:, -self.top_k :][:, :1]
            scaled = np.where(scaled < kth, -np.inf, scaled)
        probs = softmax_rows(scaled)
        if moved.any():
            open_ = np.where(legal, probs, 0.0)
            for places in self.need_places:
                lost = np.where(moved[:, places], probs[:, places], 0.0).sum(axis=1)
                kin = open_[:, places]
                total = kin.sum(axis=1)
                share = np.divide(
                    kin, total[:, None], out=np.zeros_like(kin), where=total[:, None] > 0
                )
                open_[:, places] += lost[:, None] * share
            probs = open_ / np.maximum(open_.sum(axis=1, keepdims=True), 1e-300)
        return probs

    # ------------------------------------------------------------------ the cache
    def slots_for(self, idx: np.ndarray, visit: np.ndarray) -> np.ndarray:
        """Each avatar's cache slot (new avatars get one). An avatar deciding again about
        the same visit (refused at a full zone) has that visit's token taken back."""
        missing = idx[~self.kv.holds(idx)]
        if len(missing):
            self.kv.take(missing)
            self.window_start[missing] = self.count[missing]
        slots = self.kv.slot[idx]
        again = self.count[idx] > visit
        if again.any():
            self.count[idx[again]] -= 1
            self.kv.lengths[slots[again]] -= 1
        return slots

    def rewindow(self, idx: np.ndarray, slots: np.ndarray) -> None:
        """Caches that are full, or (every ``TIDY_EVERY`` calls, for all avatars at once)
        nearly full, keep their last ``keep`` visits, re-encoded from position 0."""
        self.calls += 1
        full = self.kv.lengths[slots] >= self.window
        who = idx[full]
        if self.calls % TIDY_EVERY == 0:  # one batched pass instead of one per step
            nearly = np.flatnonzero(self.kv.lengths >= self.window - TIDY_MARGIN)
            who = np.union1d(who, self.kv.owner[nearly])
        who = who[who >= 0]
        if len(who) == 0:
            return
        positions = (self.count[who, None] - self.keep + np.arange(self.keep)) % MEMORY
        recent = self.tokens[who[:, None], positions].astype(np.int64)  # (b, keep, F)
        tokens = {f: torch.from_numpy(recent[:, :, i]) for i, f in enumerate(FEATURES)}
        if self.profile is not None:
            tokens["profile"] = torch.from_numpy(self.profile[who])
        options = torch.from_numpy(self.states[self.call_of[who[:, None], positions]])
        if self.model.config.show_view:  # the programme as each kept visit's choice saw it
            when = self.decided_at[who[:, None], positions].astype(np.float64)
            shows = self.shows_at(np.repeat(who, self.keep), when.ravel())
            tokens["shows"] = torch.from_numpy(shows.reshape(len(who), self.keep, -1))
        self.decoder.reencode(self.kv.slot[who], tokens, options)
        self.window_start[who] = self.count[who] - self.keep

    def keep_states(self, states: np.ndarray) -> np.ndarray:
        """Store rows of option states of every zone (U, Z); their row numbers."""
        while self.n_states + len(states) > len(self.states):
            self.states = np.concatenate([self.states, np.zeros_like(self.states)])
        rows = self.n_states + np.arange(len(states))
        self.states[rows] = states
        self.n_states += len(states)
        return rows

    def remember(
        self, idx: np.ndarray, visit: np.ndarray, token: np.ndarray, now: np.ndarray
    ) -> None:
        self.tokens[idx, visit % MEMORY] = token
        self.decided_at[idx, visit % MEMORY] = now
        self.count[idx] = visit + 1

    # ------------------------------------------------------------------ explain
    def explain(self, avatar: int, visit: int | None = None) -> Explanation:
        """Recompute one decision of ``avatar`` (its latest by default) with attention
        (``agents.explain``)."""
        return explain_decision(self, avatar, visit)


def softmax_rows(scores: np.ndarray) -> np.ndarray:
    """Softmax of each row (``-inf`` scores get 0; a row of them all is all zero)."""
    top = scores.max(axis=1, keepdims=True)
    weights = np.exp(scores - np.where(np.isfinite(top), top, 0.0))
    total = weights.sum(axis=1, keepdims=True)
    return np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
