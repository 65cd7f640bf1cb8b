"""Model inputs computed from visits: the one place that turns a visit into features.

The twin (live) and the log reader (training) both call these functions, so an avatar sees
at decision time exactly what the model saw when it was trained.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from llm.zones import FRUIN_BOUNDS, KIND_INDEX, crowd_level

# --------------------------------------------------------------------------- buckets
#: Time of day is cut into five-minute buckets (shows start and end on the clock).
TOD_BUCKET_S = 300.0
N_TOD = 288
#: Time since the avatar's first visit, in quarter hours, the last bucket open-ended.
STAY_BUCKET_S = 900.0
N_STAY = 32
#: Dwell buckets: upper bounds in seconds (the last bucket is open-ended). Fine enough
#: (about 1.1x apart from ten minutes on) that a stay until the end of a show lands near it.
DWELL_EDGES_S: tuple[float, ...] = (
    5,
    15,
    30,
    45,
    60,
    75,
    90,
    120,
    150,
    180,
    240,
    300,
    360,
    420,
    480,
    600,
    720,
    840,
    960,
    1080,
    1200,
    1380,
    1560,
    1740,
    1920,
    2160,
    2400,
    2700,
    3000,
    3300,
    3600,
    4050,
    4500,
    5100,
    5700,
    6300,
    7200,
    9000,
)
N_DWELL = len(DWELL_EDGES_S) + 1
#: A typical dwell of each bucket (seconds): the geometric middle of its bounds.
DWELL_CENTRES_S: tuple[float, ...] = tuple(
    round((lo * hi) ** 0.5, 1)
    for lo, hi in zip((1.0, *DWELL_EDGES_S), (*DWELL_EDGES_S, 2 * DWELL_EDGES_S[-1]), strict=True)
)
#: The dwell class after the buckets, of a model whose dwell head has it
#: (``GPTConfig.show_end_dwell``): "until the show there ends", a stay at a stage that ends
#: with the first show there on or still to come when the visitor came in. Learnt from
#: the programme and the log (``show_end_class``), so that a model says which visitors
#: stay to the end, and the twin reads the end from the programme, to the second.
#: ``UNTIL_SHOW_ENDS + k``: until the (k+1)-th show there ends (a model with
#: ``show_end_dwell`` above k has it): an audience that stays on through the interval
#: for the next show, as a festival's crowd keeps its place for the headliner.
UNTIL_SHOW_ENDS = N_DWELL
#: The most "until a show ends" classes a model may have: the first show's end and the
#: next's. (A stay through two intervals is rare enough to be left to the buckets.)
MAX_SHOW_ENDS = 2
#: A visit ends with a show when the visitor chose to leave within this of the show's end.
SHOW_END_TOLERANCE_S = 120.0
N_CROWD = len(FRUIN_BOUNDS) + 1
#: Queue-wait levels of a candidate zone: upper bounds in seconds of the wait a visitor
#: joining now would have (the last bound open-ended). Level 0: no queue to speak of.
WAIT_EDGES_S: tuple[float, ...] = (20, 45, 90, 180, 360, 900)
WAIT_LABELS: tuple[str, ...] = (
    "none",
    "<45 s",
    "<1.5 min",
    "<3 min",
    "<6 min",
    "<15 min",
    "15+ min",
)
N_WAIT = len(WAIT_EDGES_S) + 1
#: What the model sees of each candidate zone: its crowd level and its queue-wait level.
N_OPTION = N_CROWD * N_WAIT
#: How much longer a candidate's queue is than at the quickest open place of its kind, in
#: wait levels: 0 (it is the quickest, or its kind's only open place) .. ``N_QUEUE_GAPS - 1``
#: (that many levels or more; a level is about twice the wait of the one below). What a
#: visitor compares when it picks one of two cafés: a queue's own level says as much of
#: how many want to go (logs show long queues after a talk, at a surge) as of what it
#: costs, its gap to the other café only the cost (``GPTConfig.queue_gap``).
N_QUEUE_GAPS = 4


def _millis(seconds: np.ndarray) -> np.ndarray:
    """Seconds rounded to the millisecond before bucketing: a log's nanosecond timestamps
    and the twin's float clock then agree at a bucket's edge (a show ends on the minute)."""
    return np.round(np.asarray(seconds, dtype=np.float64), 3)


def tod_bucket(seconds_of_day: np.ndarray) -> np.ndarray:
    return (_millis(seconds_of_day) // TOD_BUCKET_S).astype(np.int64) % N_TOD


def stay_bucket(since_arrival_s: np.ndarray) -> np.ndarray:
    buckets = _millis(since_arrival_s) // STAY_BUCKET_S
    return np.clip(buckets, 0, N_STAY - 1).astype(np.int64)


def dwell_bucket(dwell_s: np.ndarray) -> np.ndarray:
    edges = np.asarray(DWELL_EDGES_S)
    return np.searchsorted(edges, _millis(dwell_s), side="right").astype(np.int64)


def zone_crowd(occupancy: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Crowd level (Fruin, 0..5) of zones from persons present and their areas."""
    return crowd_level(np.asarray(occupancy, dtype=np.float64) / np.asarray(area))


def wait_level(wait_s: np.ndarray | float) -> np.ndarray:
    """Queue-wait level 0 (none) .. 6 (15 minutes or more) from seconds."""
    return np.searchsorted(np.asarray(WAIT_EDGES_S), np.asarray(wait_s), side="left").astype(
        np.int8
    )


#: A candidate zone that takes nobody more (at its capacity, or closed: a cap of 0) shows
#: that, whatever its crowd and queue: the option state after the (crowd, wait) ones. A
#: model learns it from logs read with the day's capacities (``llm.data.encode``); one
#: trained without them (``n_options == N_OPTION``) is never shown it live, and in a log
#: read with capacities sees a full zone as its most crowded state (``known_option_states``).
FULL_OPTION = N_OPTION
N_OPTION_STATES = N_OPTION + 1


def option_state(
    crowd: np.ndarray, wait_s: np.ndarray, full: np.ndarray | None = None
) -> np.ndarray:
    """What the model sees of a candidate zone: one index for (crowd level, wait level),
    or ``FULL_OPTION`` where ``full`` (a model that knows it)."""
    state = np.asarray(crowd, dtype=np.int64) + N_CROWD * wait_level(wait_s)
    if full is not None:
        state = np.where(full, FULL_OPTION, state)
    return state.astype(np.int8)


def known_option_states(n_options: int) -> np.ndarray:
    """(N_OPTION_STATES,) int8: each option state as a model with ``n_options`` of them
    knows it: one trained before ``FULL_OPTION`` sees a full zone as crowd F with a queue of
    15 minutes or more (the most a zone could keep it out)."""
    table = np.arange(N_OPTION_STATES, dtype=np.int8)
    if n_options <= FULL_OPTION:
        table[FULL_OPTION] = N_OPTION - 1
    return table


#: Kinds of place a visitor goes to for a need that grows with time since it was last met
#: (thirst and hunger, a restroom, rest): each token holds how long ago the visitor last
#: left a place of each (``since_needs``), so that a choice knows it however far back in
#: the day the visit was, beyond the context's window or not.
NEED_KINDS: tuple[str, ...] = ("bar", "restroom", "lounge")
NEED_KIND_IDS = np.array([KIND_INDEX[k] for k in NEED_KINDS], dtype=np.int64)
#: Time since a need was last met: upper bounds in seconds of buckets 1.. (the last
#: open-ended); bucket 0 is "never met since arrival" (how long ago that was, ``end_stay``
#: says).
SINCE_EDGES_S: tuple[float, ...] = (600, 1200, 1800, 2700, 3600, 5400, 7200)
N_SINCE = len(SINCE_EDGES_S) + 2

#: A visit token's features, in the order the model and the policy's arrays keep them.
FEATURES: tuple[str, ...] = (
    "zone",
    "kind",
    "tod",
    "stay",
    "crowd",
    "dwell",
    "end_tod",
    "end_stay",
    *(f"since_{kind}" for kind in NEED_KINDS),
)


def since_bucket(since_s: np.ndarray) -> np.ndarray:
    """Bucket of the time since a need was last met (NaN: never, bucket 0)."""
    since = _millis(since_s)
    buckets = 1 + np.searchsorted(np.asarray(SINCE_EDGES_S), since, side="right")
    return np.where(np.isnan(since), 0, buckets).astype(np.int64)


def needs_met(kind: np.ndarray, chose_at_s: np.ndarray, before_s: np.ndarray) -> np.ndarray:
    """(N, K) when each need (``NEED_KINDS``) was last met, this visit included: ``before_s``
    (N, K) the moments (seconds since arrival, at the choice that ended the visit; NaN: never)
    before the visits of kinds ``kind`` (N,), where this visit's choice ``chose_at_s`` (N,)
    takes the place of its own kind's."""
    mine = np.asarray(kind)[:, None] == NEED_KIND_IDS[None, :]
    return np.where(mine, np.asarray(chose_at_s, dtype=np.float64)[:, None], before_s)


def needs_before(kind: np.ndarray, chose_at_s: np.ndarray, first_row: np.ndarray) -> np.ndarray:
    """(N, K) when each need was last met before each visit of sequences laid end to end (a
    log's visits by trajectory, in order; ``first_row`` (N,) the row each visit's sequence
    starts at): as ``needs_met`` of the visit before, NaN where none in its sequence."""
    kind, chose_at = np.asarray(kind), np.asarray(chose_at_s, dtype=np.float64)
    rows = np.arange(len(kind))
    out = np.full((len(kind), len(NEED_KINDS)), np.nan)
    if len(kind) == 0:
        return out
    for k, need in enumerate(NEED_KIND_IDS):
        last = np.maximum.accumulate(np.where(kind == need, rows, -1))
        previous = np.r_[-1, last[:-1]]
        ok = previous >= np.asarray(first_row)
        out[ok, k] = chose_at[previous[ok]]
    return out


def visit_features(
    zone: np.ndarray,
    kind_of_zone: np.ndarray,
    seconds_of_day: np.ndarray,
    since_arrival_s: np.ndarray,
    crowd: np.ndarray,
    dwell_s: np.ndarray,
    needs_before_s: np.ndarray,
) -> dict[str, np.ndarray]:
    """The model's inputs for visits (one token each): every categorical feature, as
    ``FEATURES`` names them. ``tod`` is the clock when the visit began, ``end_tod`` when it
    ended: the moment the avatar chose where to go next (so the model knows how long a
    show on stage still runs, not only when the avatar came in); ``stay`` the time since
    the visitor's arrival when the visit began, ``end_stay`` at the choice (how long it has
    been on its feet, thirsty, waiting for a restroom: what a choice's needs grow with,
    which a model could not add up from the buckets of the first and the last token);
    ``since_<kind>`` how long before the choice the visitor last left a place of each of
    ``NEED_KINDS`` (this visit included), from ``needs_before_s`` (N, K): when each was last
    met before this visit, in seconds since arrival (``needs_before``, NaN: never).

    ``zone`` indexes the vocabulary; ``kind_of_zone`` is the vocabulary's per-zone array
    of kinds; ``crowd`` is the Fruin level (``zone_crowd``) of the zone when the visit
    began; the rest are per visit. Called on logs in training and on avatars live: one
    definition.
    """
    zone = np.array(zone, dtype=np.int64)  # a copy: a token never aliases its caller's array
    kind = np.asarray(kind_of_zone)[zone].astype(np.int64)
    chose_at = np.asarray(since_arrival_s) + np.asarray(dwell_s)
    met = needs_met(kind, chose_at, np.asarray(needs_before_s, dtype=np.float64))
    since = since_bucket(chose_at[:, None] - met)
    return {
        "zone": zone,
        "kind": kind,
        "tod": tod_bucket(seconds_of_day),
        "stay": stay_bucket(since_arrival_s),
        "crowd": np.asarray(crowd).astype(np.int64),
        "dwell": dwell_bucket(dwell_s),
        "end_tod": tod_bucket(np.asarray(seconds_of_day) + np.asarray(dwell_s)),
        "end_stay": stay_bucket(chose_at),
        **{f"since_{need}": since[:, k] for k, need in enumerate(NEED_KINDS)},
    }


# --------------------------------------------------------------------------- profiles
#: A visitor's declared attributes (its profile): tags, each a zone of the vocabulary (an
#: interest declared at registration) or any other text ("ticket=vip", a booked show),
#: hashed into ``N_TAG_BUCKETS``. In a log: the ``profile`` column, tags joined by
#: ``PROFILE_SEP``, and any attribute columns named at training (``column=value`` tags).
N_TAG_BUCKETS = 128
PROFILE_SEP = "|"
#: The prefix of a booked show's tag (``show_tag``).
SHOW_TAG = "show="


def profile_size(n_zones: int) -> int:
    """Length of a profile's multi-hot vector for a vocabulary of ``n_zones`` zones."""
    return n_zones + N_TAG_BUCKETS


def tag_bucket(tag: str) -> int:
    """The bucket of a tag that is not a zone: a stable hash (the same in every process)."""
    return zlib.crc32(tag.encode("utf-8")) % N_TAG_BUCKETS


def profile_vectors(profiles: Sequence[str], zone_index: dict[str, int]) -> np.ndarray:
    """(N, Z + N_TAG_BUCKETS) uint8 multi-hot of each profile (tags joined by
    ``PROFILE_SEP``; "" for none): a zone's own column, or its tag's bucket after them.
    Booked shows (``show=`` tags) are left out: they are read against the programme
    (``Programme.wanted``), so that a model knows "a show this visitor booked starts
    there soon" whatever the timetable, not "visitors with this tag go there at 20:15"."""
    n_zones = len(zone_index)
    out = np.zeros((len(profiles), profile_size(n_zones)), dtype=np.uint8)
    columns: dict[str, int] = {}
    for row, text in enumerate(profiles):
        if not text:
            continue
        for tag in str(text).split(PROFILE_SEP):
            tag = tag.strip()
            if not tag or tag.startswith(SHOW_TAG):
                continue
            col = columns.get(tag)
            if col is None:
                col = zone_index.get(tag, -1)
                col = col if col >= 0 else n_zones + tag_bucket(tag)
                columns[tag] = col
            out[row, col] = 1
    return out


# --------------------------------------------------------------------------- programme
#: What a candidate zone shows a visitor of the venue's programme (public: the stages'
#: timetable) and of its own profile (the shows it declared it came for): nothing, another
#: show starting within ``SHOW_SOON_S`` or running, a wanted show later today, starting
#: soon or running, or a wanted show that is over (a zone with several shows shows the most
#: pressing: a wanted show on, soon, in so many minutes, later, then another show on, soon,
#: then a wanted one over). A wanted show to come is told by how soon it starts
#: (``WANTED_IN_MIN``: "wanted in 30-40 min"), so that a visitor at another stage, or at a
#: bar, knows how long it may stay before it must go; "wanted later" is beyond the last.
#: A wanted show to come that is not the visitor's next (another it booked is on, or
#: starts before it) says so: "wanted in 60-75 min, after another", so that the order of a
#: visitor's shows is read from the programme and its bookings, as its day is lived.
#: States came in six models' times, each appended: six (before issue 25), "wanted over"
#: (index 6), the minutes (7 on), "after another" (16 on), "wanted on, another after"
#: (25, with ``SHOW_GRACE_S``), then "wanted ending" and "wanted ending, another after"
#: (26 and 27, with ``SHOW_ENDING_S``). A model trained with fewer sees the newer ones as
#: it was shown them (``cap_show_states``, ``show_grace_s``): "ending" as "on", "wanted
#: on, another after" as "wanted on", "after another" as the plain minutes, the minutes as
#: "wanted later", "over" as "none".
WANTED_IN_MIN: tuple[int, ...] = (15, 20, 25, 30, 40, 50, 60, 75, 90, 120)
_MINUTES: tuple[str, ...] = tuple(
    f"wanted in {lo}-{hi} min" for lo, hi in zip(WANTED_IN_MIN[:-1], WANTED_IN_MIN[1:], strict=True)
)
SHOW_STATES: tuple[str, ...] = (
    "none",
    "show soon",
    "show on",
    "wanted later",
    "wanted soon",
    "wanted on",
    "wanted over",
    *_MINUTES,
    *(f"{name}, after another" for name in _MINUTES),
    "wanted on, another after",
    "wanted ending",
    "wanted ending, another after",
)
N_SHOW_STATES = len(SHOW_STATES)
WANTED_LATER = SHOW_STATES.index("wanted later")
WANTED_OVER = SHOW_STATES.index("wanted over")
#: The first "wanted in ... min" state (the soonest); the others follow, later and later.
WANTED_IN = WANTED_OVER + 1
#: The first "wanted in ... min, after another" state; ``WANTED_AFTER + i`` is
#: ``WANTED_IN + i`` for a show that is not the visitor's next.
WANTED_AFTER = WANTED_IN + len(_MINUTES)
WANTED_ON = SHOW_STATES.index("wanted on")
#: A wanted show on at a zone where the visitor booked another show still to come: its
#: audience leaving at the end knows whether it will be back (to the bar in the interval)
#: or is done (home after the headline), where "wanted on" alone hides the later show.
WANTED_ON_MORE = SHOW_STATES.index("wanted on, another after")
#: For models that know ``WANTED_ON_MORE``: a show reads as on until this long after its
#: end, so that its audience, deciding to leave in the seconds around the end, sees the
#: same state whether it chose a few seconds before the end (as logs mostly show visitors
#: off to the bar) or after it (as the twin's "until the show ends" class leaves, on the
#: second). Older models read shows as over at their end (``show_grace_s``).
SHOW_GRACE_S = 60.0
#: A wanted show in the minutes around its end: its audience choosing then is leaving at
#: the end (as logs date it, within ``SHOW_END_TOLERANCE_S`` of the end; the twin's "until
#: the show ends" class on the second), not walking out of a show still running, as those
#: with a need to meet do ("wanted on"), whom the grace alone read alike. (Measured on the
#: expo: alone it did not change its avatars' café rush after a talk; ``end_stay`` did.)
WANTED_ENDING = SHOW_STATES.index("wanted ending")
WANTED_ENDING_MORE = SHOW_STATES.index("wanted ending, another after")
#: For models that know "wanted ending": a wanted show reads as ending from this long before
#: its end until this long after it (then over), the window of the "until the show ends"
#: class, so that a log's visitors leaving at the end and the twin's read alike.
SHOW_ENDING_S = SHOW_END_TOLERANCE_S
#: How pressing each state is (by index): where a zone has several shows, the highest wins.
#: none, wanted over, show soon, show on, wanted later, the minutes after another (latest
#: first), the minutes (latest first), wanted soon, wanted ending, wanted on (then the
#: states "another after" that follow from them, never a single show's).
_PRESSING = (
    "none",
    "wanted over",
    "show soon",
    "show on",
    "wanted later",
    *reversed(SHOW_STATES[WANTED_AFTER:WANTED_ON_MORE]),
    *reversed(SHOW_STATES[WANTED_IN:WANTED_AFTER]),
    "wanted soon",
    "wanted ending",
    "wanted on",
    "wanted on, another after",
    "wanted ending, another after",
)
SHOW_STATE_RANK = np.array([_PRESSING.index(s) for s in SHOW_STATES], dtype=np.int8)
SHOW_SOON_S = 60.0 * WANTED_IN_MIN[0]


def show_tag(stage: str, start_s_of_day: float) -> str:
    """A booked show as a profile tag: ``show=<stage>@<HH:MM>`` (its start on the clock)."""
    minutes = int(round(start_s_of_day)) // 60 % (24 * 60)
    return f"{SHOW_TAG}{stage}@{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class Programme:
    """The shows of an event: stage names and start and end times on the clock (seconds
    of the day). Given to training (``venuetwin train --programme``) and stored in the
    checkpoint; live, the twin's scenario gives it."""

    stages: tuple[str, ...]
    start_s: tuple[float, ...]
    end_s: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.stages)

    def tags(self) -> list[str]:
        return [show_tag(s, t) for s, t in zip(self.stages, self.start_s, strict=True)]

    def wanted(self, profiles: Sequence[str]) -> np.ndarray:
        """(N, S) bool: which shows each profile (``PROFILE_SEP``-joined tags) booked."""
        tags = self.tags()
        out = np.zeros((len(profiles), len(tags)), dtype=bool)
        for row, text in enumerate(profiles):
            if text and SHOW_TAG in text:
                mine = set(str(text).split(PROFILE_SEP))
                out[row] = [t in mine for t in tags]
        return out

    def to_json(self) -> dict:
        return {
            "stages": list(self.stages),
            "start_s": list(self.start_s),
            "end_s": list(self.end_s),
        }

    @classmethod
    def from_json(cls, data: dict) -> Programme:
        return cls(tuple(data["stages"]), tuple(data["start_s"]), tuple(data["end_s"]))


def show_left_s(
    show_zone: np.ndarray,
    end_s: np.ndarray,
    zone: np.ndarray,
    entered_s: np.ndarray,
    n: int = 1,
) -> np.ndarray:
    """(B, n) seconds from each visit's entry (``entered_s``, on the clock of ``end_s``:
    the day's in a log, the twin's since opening live) at ``zone`` until the first show
    there that is on or to come then ends, and the ``n - 1`` after it (inf where none).
    ``show_zone`` and ``end_s`` (S,): the programme's shows."""
    entered = np.asarray(entered_s, dtype=np.float64)
    end_s = np.asarray(end_s, dtype=np.float64)
    on = (np.asarray(show_zone)[None, :] == np.asarray(zone)[:, None]) & (
        end_s[None, :] > entered[:, None]
    )
    ends = np.sort(np.where(on, end_s[None, :], np.inf), axis=1)[:, :n]
    if ends.shape[1] < n:  # fewer shows than asked for
        ends = np.pad(ends, ((0, 0), (0, n - ends.shape[1])), constant_values=np.inf)
    return ends - entered[:, None]


def show_end_class(stay_s: np.ndarray, show_left: np.ndarray) -> np.ndarray:
    """(B,) int64: k where a visit's choice to leave (``stay_s`` after entry) came within
    ``SHOW_END_TOLERANCE_S`` of the end of the (k+1)-th show there (``show_left`` (B, K),
    ``show_left_s``), the earliest such; -1 where none: the "until a show ends" class
    ``UNTIL_SHOW_ENDS + k`` of a model that has it."""
    near = np.abs(np.asarray(stay_s)[:, None] - np.asarray(show_left)) <= SHOW_END_TOLERANCE_S
    return np.where(near.any(axis=1), near.argmax(axis=1), -1).astype(np.int64)


def show_states(
    now_s_of_day: np.ndarray,
    show_zone: np.ndarray,
    start_s: np.ndarray,
    end_s: np.ndarray,
    wanted: np.ndarray,
    n_zones: int,
    grace_s: float = SHOW_ENDING_S,
) -> np.ndarray:
    """(B, Z) int8 show state (``SHOW_STATES``) of every zone for B visitors choosing at
    ``now_s_of_day`` (B,): ``show_zone``/``start_s``/``end_s`` (S,) the programme's shows
    (their zones in the vocabulary, -1 for none), ``wanted`` (B, S) the shows each booked.
    A zone with several shows shows the most pressing (``SHOW_STATE_RANK``); a wanted show
    on where another booked there is to come, "wanted on, another after". A show reads as
    on until ``grace_s`` after its end, and a wanted one as "ending" from ``grace_s`` before
    it (``show_grace_s``: the window of the model the states are for; a model before
    "wanted ending" reads it as "wanted on", ``known_show_states``). A visitor's next show
    is the earliest to start of those it booked that are not over."""
    now = np.round(np.asarray(now_s_of_day, dtype=np.float64), 3)[:, None]
    out = np.zeros((len(now), n_zones), dtype=np.int8)
    show_zone = np.asarray(show_zone)
    shows = np.flatnonzero(show_zone >= 0)
    if len(shows) == 0:
        return out
    shows = shows[np.argsort(show_zone[shows], kind="stable")]  # grouped by zone
    start, end = np.asarray(start_s)[shows], np.asarray(end_s)[shows]
    booked = np.asarray(wanted)[:, shows].astype(bool)  # (B, S)
    later = now < start - SHOW_SOON_S
    soon = (now >= start - SHOW_SOON_S) & (now < start)
    ending = booked & (now >= end - grace_s) & (now < end + grace_s) & (now >= start)
    end = end + grace_s
    on = (now >= start) & (now < end)
    state = np.where(soon, 1, np.where(on, 2, 0)) + 3 * (booked & (soon | on))
    state = np.where(ending, WANTED_ENDING, state)
    # A wanted show to come: how many minutes until it starts (beyond the last: "later"),
    # and whether another booked show comes first (on now, or starting before it).
    step = np.searchsorted(60.0 * np.asarray(WANTED_IN_MIN[1:]), start - now, side="left")
    first = np.where(booked & (now < end), start, np.inf).min(axis=1, keepdims=True)
    minutes = np.where(start > first, WANTED_AFTER, WANTED_IN) + step
    in_minutes = np.where(step < WANTED_AFTER - WANTED_IN, minutes, WANTED_LATER)
    state = np.where(booked & later, in_minutes, state)
    state = np.where(booked & (now >= end), WANTED_OVER, state).astype(np.int8)
    zones, first = np.unique(show_zone[shows], return_index=True)
    rank = np.maximum.reduceat(SHOW_STATE_RANK[state], first, axis=1)  # a zone's most pressing
    pressing = np.argsort(SHOW_STATE_RANK)[rank]
    to_come = np.maximum.reduceat((booked & (now < start)).astype(np.int8), first, axis=1)
    more = np.where(pressing == WANTED_ENDING, WANTED_ENDING_MORE, WANTED_ON_MORE)
    ends_here = (pressing == WANTED_ON) | (pressing == WANTED_ENDING)
    out[:, zones] = np.where(ends_here & (to_come > 0), more, pressing)
    return out


def show_grace_s(n_show_states: int) -> float:
    """How long after its end a show still reads as on (and, to a model that knows "wanted
    ending", how long before and after its end a wanted one reads as ending) to a model with
    ``n_show_states`` show states: ``SHOW_ENDING_S`` from "wanted ending" on,
    ``SHOW_GRACE_S`` from "wanted on, another after" on, none before."""
    if n_show_states > WANTED_ENDING:
        return SHOW_ENDING_S
    return SHOW_GRACE_S if n_show_states > WANTED_ON_MORE else 0.0


def known_show_states(n_show_states: int) -> np.ndarray:
    """(N_SHOW_STATES,) int8: each show state as a model with ``n_show_states`` of them
    knows it: one trained before "wanted ending" sees it as "wanted on" (and "wanted ending,
    another after" as "wanted on, another after"), one before "wanted on, another after"
    sees it as "wanted on", one before "after another" sees those as the plain minutes, one
    before the minutes sees them as "wanted later", one before "wanted over" sees that as
    "none" (as each was shown then)."""
    table = np.arange(N_SHOW_STATES, dtype=np.int8)
    if n_show_states <= WANTED_ENDING:
        table[WANTED_ENDING] = WANTED_ON
        table[WANTED_ENDING_MORE] = WANTED_ON_MORE
    if n_show_states <= WANTED_ON_MORE:
        table[table == WANTED_ON_MORE] = WANTED_ON
    if n_show_states <= WANTED_AFTER:
        after = table >= WANTED_AFTER
        table[after] -= WANTED_AFTER - WANTED_IN
    if n_show_states <= WANTED_IN:
        table[table >= WANTED_IN] = WANTED_LATER
    if n_show_states <= WANTED_OVER:
        table[table == WANTED_OVER] = 0
    return table


def cap_show_states(shows: np.ndarray, n_show_states: int) -> np.ndarray:
    """Show states as a model with ``n_show_states`` of them knows them
    (``known_show_states``)."""
    if n_show_states >= N_SHOW_STATES:
        return shows
    return known_show_states(n_show_states)[shows].astype(shows.dtype)


def _csv_rows(
    path: str | os.PathLike[str], columns: tuple[str, ...], what: str
) -> list[tuple[int, dict[str, str]]]:
    """The rows of a small CSV file with at least ``columns``, each with its row number
    (the header is row 1); ``ValueError`` naming the file where it cannot be read or
    lacks a column."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = set(columns) - set(reader.fieldnames or ())
            if missing:
                raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
            return list(enumerate(reader, start=2))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the {what} ({exc.strerror})") from None


def read_programme(path: str | os.PathLike[str]) -> Programme:
    """A programme from a CSV file with columns ``stage``, ``start`` and ``end`` (clock
    times ``HH:MM``; an end before its start is past midnight). A bad file raises
    ``ValueError`` naming the file, the row and the column."""
    rows: list[tuple[str, float, float]] = []
    for number, row in _csv_rows(path, ("stage", "start", "end"), "programme"):
        start, end = (_clock(row[c], path, number, c) for c in ("start", "end"))
        rows.append((row["stage"].strip(), start, end if end > start else end + 86400))
    if not rows:
        raise ValueError(f"{path}: the programme lists no show")
    stages, starts, ends = zip(*rows, strict=True)
    return Programme(tuple(stages), tuple(starts), tuple(ends))


#: Zone name -> how many persons it took at most on a day (0: closed); zones not named take
#: any number (``llm.data.encode``: one for every log, or one per log read).
Capacities = Mapping[str, float]


def read_capacities(path: str | os.PathLike[str]) -> dict[str, float]:
    """Capacities from a CSV file with columns ``zone`` and ``capacity`` (persons, 0 for a
    zone closed that day). A bad file raises ``ValueError`` naming the file, the row and
    the column."""
    out: dict[str, float] = {}
    for number, row in _csv_rows(path, ("zone", "capacity"), "capacities"):
        zone, text = (row["zone"] or "").strip(), (row["capacity"] or "").strip()
        if not zone:
            raise ValueError(f"{path}: row {number}, column 'zone': no zone named")
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not (value >= 0 and math.isfinite(value)):
            raise ValueError(
                f"{path}: row {number}, column 'capacity': {text!r} is not a number >= 0"
            )
        out[zone] = value
    return out


def _clock(text: str | None, path: object, row: int, column: str) -> float:
    hours, _, minutes = (text or "").strip().partition(":")
    if not (hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60):
        raise ValueError(f"{path}: row {row}, column '{column}': {text!r} is not a time HH:MM")
    return int(hours) * 3600.0 + int(minutes) * 60.0
