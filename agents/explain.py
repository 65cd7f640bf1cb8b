"""Why a GPT avatar chose where it went: a past decision recomputed with its attention.

Nothing is captured for explanations while the twin runs beyond what the GPT policy keeps
anyway (each avatar's recent visit tokens, when it decided, the venue's option states at
each decision call): ``explain_decision`` feeds that context through the model's forward
pass with ``need_weights`` and returns the weights of every layer and head, the
candidates with their probabilities and what each showed (crowd level, queue wait, for a
model that compares queues how much longer its queue was than the quickest of its kind, and
for a model that takes the programme, its show state: "wanted in 30-40 min").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from llm.features import (
    DWELL_EDGES_S,
    FEATURES,
    FULL_OPTION,
    N_CROWD,
    N_QUEUE_GAPS,
    SHOW_STATES,
    TOD_BUCKET_S,
    WAIT_LABELS,
)
from llm.zones import FRUIN_LABELS, ZONE_KINDS

#: Visits remembered per avatar for explanations (the cache itself holds block_size).
MEMORY = 128


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
    #: What each candidate showed the avatar (crowd level, queue wait, show), as candidates.
    shown: list[str] = field(default_factory=list)


def explain_decision(policy: Any, avatar: int, visit: int | None = None) -> Explanation:
    """Recompute one decision of ``avatar`` (its latest by default) of a ``GPTPolicy``
    with the attention weights of every layer and head: its context (the visit tokens
    and the venue's states the policy keeps), the model's forward pass with
    ``need_weights``, the probabilities of the places it could choose."""
    count = int(policy.count[avatar])
    if count == 0:
        raise ValueError(f"avatar {avatar} has not decided yet")
    visit = count - 1 if visit is None else int(visit)
    if not (max(0, count - MEMORY) <= visit < count):
        raise ValueError(f"avatar {avatar}: no decision at visit {visit} in memory")
    start = visit - int(policy.context_of[avatar, visit % MEMORY])
    rows = np.arange(start, visit + 1) % MEMORY
    tokens = policy.tokens[avatar, rows].astype(np.int64)
    feed = {f: torch.from_numpy(tokens[None, :, i]) for i, f in enumerate(FEATURES)}
    if policy.profile is not None:
        feed["profile"] = torch.from_numpy(policy.profile[avatar : avatar + 1])
    when = policy.decided_at[avatar, rows].astype(np.float64)  # each choice's moment
    shows = policy.shows_at(np.full(len(rows), avatar), when)
    if shows is not None:
        feed["shows"] = torch.from_numpy(shows[None])
    options = torch.from_numpy(policy.states[policy.call_of[avatar, rows]][None])
    state = policy.states[policy.call_of[avatar, visit % MEMORY]]
    with torch.no_grad():
        out = policy.model(feed, options, need_weights=True, mask_illegal=False)
        gaps = None
        if policy.model.config.queue_gap:
            known = policy.model.known_options(torch.from_numpy(state))
            gaps = (policy.model.queue_gaps(known) % N_QUEUE_GAPS).numpy()
    last_zone = int(tokens[-1, 0])
    places = policy.layout.place_hop[last_zone][None, :] >= 0
    probs = policy.probabilities(out.zone_logits[:, -1].numpy(), places)[0]
    names = policy.layout.zones
    order = np.argsort(-probs)
    shown = [z for z in order if probs[z] > 0]
    candidates = [(names[z], float(probs[z])) for z in shown]
    chosen = int(policy.chosen[avatar, visit % MEMORY])
    return Explanation(
        avatar=avatar,
        visit=visit,
        time_s=float(policy.decided_at[avatar, visit % MEMORY]),
        context=[label(policy.layout.zones, t) for t in tokens],
        attention=torch.stack(out.attention)[:, 0].numpy(),
        candidates=candidates,
        chosen=names[chosen] if chosen >= 0 else None,
        shown=[
            describe_option(
                int(state[z]),
                None if shows is None else int(shows[-1, z]),
                0 if gaps is None else int(gaps[z]),
                ZONE_KINDS[int(policy.model.zone_kind[z])],
            )
            for z in shown
        ],
    )


def label(zones: Sequence[str], token: np.ndarray) -> str:
    """A visit token as a reader sees it: zone, clock on entry, crowd level, dwell."""
    feature = dict(zip(FEATURES, (int(v) for v in token), strict=True))
    zone, tod, crowd, dwell = (feature[f] for f in ("zone", "tod", "crowd", "dwell"))
    clock = int(tod * TOD_BUCKET_S)
    upper = DWELL_EDGES_S[dwell] if dwell < len(DWELL_EDGES_S) else None
    stay = f"<{_short(upper)}" if upper is not None else f">{_short(DWELL_EDGES_S[-1])}"
    return (
        f"{zones[zone]} {clock // 3600:02d}:{clock % 3600 // 60:02d} {FRUIN_LABELS[crowd]} {stay}"
    )


def describe_option(state: int, show: int | None = None, gap: int = 0, kind: str = "") -> str:
    """What a candidate zone showed, from its option state, show state and queue gap: "crowd
    B, queue <6 min", "crowd B, queue <6 min, 2 levels over the quickest bar" or "crowd C,
    queue none, wanted in 30-40 min" (no show state, no gap: none named)."""
    if state == FULL_OPTION:
        text = "full"
    else:
        text = f"crowd {FRUIN_LABELS[state % N_CROWD]}, queue {WAIT_LABELS[state // N_CROWD]}"
    if gap:
        more = "+" if gap == N_QUEUE_GAPS - 1 else ""
        text += f", {gap}{more} level{'s' if gap > 1 else ''} over the quickest {kind}"
    return f"{text}, {SHOW_STATES[show]}" if show else text


def _short(seconds: float) -> str:
    return f"{seconds / 60:g}m" if seconds >= 60 else f"{seconds:g}s"
