"""Read visits in, model-ready sequences out.

``encode`` turns a read log (``llm.logs.read_logs``) into one token per visit
(``llm.features.visit_features``) plus, for every visit, what it could see of every zone at
its choice (the moment the visitor chose where to go next): the crowd level and the queue
wait a newcomer would have. ``read_sequences`` is the one way from logs to tokens with a
fixed vocabulary. ``split`` divides visitors (never visits) into train/validation/test,
and ``blocks`` packs trajectories into fixed-length tensors.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from llm.causal import last_served_by_zone, present_at, stay_until_choice
from llm.features import (
    FEATURES,
    MAX_SHOW_ENDS,
    SHOW_ENDING_S,
    Capacities,
    Programme,
    dwell_bucket,
    needs_before,
    option_state,
    profile_vectors,
    show_end_class,
    show_left_s,
    show_states,
    visit_features,
    zone_crowd,
)
from llm.logs import Columns, LogError, _seconds, check_zones, read_logs
from llm.vocab import ZoneVocab
from llm.zones import queue_wait


# ============================================================================ encoding
@dataclass
class Sequences:
    """Every visit to a place of a set of trajectories, one token each, trajectory after
    trajectory (visits to passages are left out: see ``encode``)."""

    features: dict[str, np.ndarray]  # name -> (N,) int64, see llm.features.visit_features
    options: np.ndarray  # (N, Z) int8: option state of every zone at the visit's choice
    dwell_s: np.ndarray  # (N,) float64 seconds, up to the choice
    known: np.ndarray  # (N,) bool: the zone is in the vocabulary by name (not unseen)
    offsets: np.ndarray  # (n_trajectories + 1,) start of each trajectory
    keys: np.ndarray  # (n_trajectories,) trajectory names
    visitors: np.ndarray  # (n_trajectories,) who walked each (the split is by visitor)
    #: (n_trajectories, Z + N_TAG_BUCKETS) uint8: each trajectory's declared profile
    #: (``llm.features.profile_vectors``); all zero where the log states none.
    profiles: np.ndarray | None = None
    #: (N, Z) int8 show state of every zone at each visit's choice (``llm.features.
    #: show_states``), where a programme was given; None otherwise.
    shows: np.ndarray | None = None
    #: (N,) int64 dwell bucket of the stay from the start of service to the choice (the
    #: dwell less the log's queue wait, 0 where it states none): what the model predicts
    #: of a next visit, the twin adding the queue it has then (``GPTPolicy.dwell_from``).
    served_dwell: np.ndarray | None = None
    #: (N, MAX_SHOW_ENDS) float64 seconds from each visit's entry until the first show at
    #: its zone that is on or to come then ends, and the next one (``llm.features.
    #: show_left_s``; inf where none), where a programme was given: whether a visit stayed
    #: until a show ended, and which.
    show_left_s: np.ndarray | None = None

    def show_end_class(self) -> np.ndarray:
        """(N,) int64: k for visits that stayed until the (k+1)-th show at their zone ended
        (``llm.features.show_end_class``), -1 for the others (all without a programme)."""
        if self.show_left_s is None:
            return np.full(self.n_visits, -1, dtype=np.int64)
        return show_end_class(self.dwell_s, self.show_left_s)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def n_visits(self) -> int:
        return int(self.offsets[-1])

    @property
    def n_targets(self) -> int:
        """Visits with a next visit in their trajectory: what a next place is learnt and
        scored on."""
        return int(np.maximum(np.diff(self.offsets) - 1, 0).sum())

    def take(self, which: np.ndarray) -> Sequences:
        """The trajectories at positions ``which``, in that order."""
        which = np.asarray(which, dtype=np.int64)
        starts, ends = self.offsets[which], self.offsets[which + 1]
        lengths = ends - starts
        offsets = np.r_[0, np.cumsum(lengths)]
        rows = np.arange(offsets[-1]) + np.repeat(starts - offsets[:-1], lengths)
        return Sequences(
            features={k: v[rows] for k, v in self.features.items()},
            options=self.options[rows],
            dwell_s=self.dwell_s[rows],
            known=self.known[rows],
            offsets=offsets,
            keys=self.keys[which],
            visitors=self.visitors[which],
            profiles=None if self.profiles is None else self.profiles[which],
            served_dwell=None if self.served_dwell is None else self.served_dwell[rows],
            shows=None if self.shows is None else self.shows[rows],
            show_left_s=None if self.show_left_s is None else self.show_left_s[rows],
        )

    @property
    def has_profiles(self) -> bool:
        return self.profiles is not None and bool(self.profiles.any())

    def trajectories(self) -> list[np.ndarray]:
        """Zone indices of each trajectory."""
        zone = self.features["zone"]
        return [zone[s:e] for s, e in zip(self.offsets[:-1], self.offsets[1:], strict=True)]


def encode(
    frame: pd.DataFrame,
    vocab: ZoneVocab,
    programme: Programme | Sequence[Programme] | None = None,
    capacities: Capacities | Sequence[Capacities] | None = None,
    show_grace_s: float = SHOW_ENDING_S,
) -> Sequences:
    """Tokens for every visit of a read log to a place (passages such as corridors are
    walked through, not visited: ``llm.zones.PASSAGE_KINDS``), with what every zone
    showed at each visit's choice (``llm.causal``). Crowds and queues count every row,
    passages included. Zones a log vocabulary has not seen are its ``UNKNOWN_ZONE``.
    With a ``programme``, every zone's show state at each choice (``show_states``): the
    shows on the clock then, and whether the visitor's profile booked them; with one
    programme per log read (``frame["log"]``), each log's own (days whose shows moved).
    With ``capacities`` (the day's, as ``Capacities``; one per log read, or one for all), a
    zone holding as many as it takes (or closed) shows ``FULL_OPTION`` at a choice.
    ``show_grace_s``: how long a show reads as on after its end (``llm.features.
    show_grace_s`` of the model the tokens are for; the newest by default)."""
    frame = with_gates(frame, vocab)
    zone, known = vocab.lookup(frame["zone"])
    if not known.all() and vocab.unknown is None:
        raise LogError("log visits zones outside the vocabulary; call check_zones first")
    # A visit's token is what the visitor knew when choosing where to go next: its stay
    # until then, not the wait to leave that followed (``leave_wait_s``), as live.
    decided = stay_until_choice(frame["dwell_s"], frame["leave_wait_s"])
    since_arrival = frame["since_arrival_s"].to_numpy()
    trajectory = frame["trajectory"].to_numpy()
    first_row = np.maximum.accumulate(
        np.where(np.r_[True, trajectory[1:] != trajectory[:-1]], np.arange(len(frame)), 0)
    )
    features = visit_features(
        zone,
        vocab.kind_ids,
        frame["seconds_of_day"].to_numpy(),
        since_arrival,
        zone_crowd(frame["occupancy"].to_numpy(), vocab.area[zone]),
        decided,
        needs_before(vocab.kind_ids[zone], since_arrival + decided, first_row),
    )
    limits = capacity_arrays(capacities, vocab, int(frame["log"].max()) + 1 if len(frame) else 0)
    options = _options_at_choices(frame, zone, vocab, decided, limits)  # every visit counts
    served = dwell_bucket(np.maximum(decided - frame["wait_s"].to_numpy(), 0.0))
    shows = None
    programmes = [programme] if isinstance(programme, Programme) else list(programme or [])
    if any(len(p) for p in programmes):
        if len(programmes) > 1 and len(programmes) != frame["log"].max() + 1:
            raise LogError(f"{len(programmes)} programmes for {frame['log'].max() + 1} logs")
        which = frame["log"].to_numpy() if len(programmes) > 1 else np.zeros(len(frame), int)
        profiles = frame["profile"].to_numpy() if "profile" in frame else np.full(len(frame), "")
        moment = frame["seconds_of_day"].to_numpy() + decided
        shows = np.zeros((len(frame), len(vocab)), dtype=np.int8)
        show_left = np.full((len(frame), MAX_SHOW_ENDS), np.inf)
        for i, day in enumerate(programmes):
            rows = np.flatnonzero(which == i)
            if len(day) == 0 or len(rows) == 0:
                continue
            stage = np.array([vocab.index.get(s, -1) for s in day.stages], dtype=np.int64)
            shows[rows] = show_states(
                moment[rows],
                stage,
                np.asarray(day.start_s),
                np.asarray(day.end_s),
                day.wanted(profiles[rows]),
                len(vocab),
                show_grace_s,
            )
            show_left[rows] = show_left_s(
                stage,
                np.asarray(day.end_s),
                zone[rows],
                frame["seconds_of_day"].to_numpy()[rows],
                MAX_SHOW_ENDS,
            )
    place = ~vocab.passage[zone]  # ... but only places are tokens
    trajectory = trajectory[place]
    starts = np.flatnonzero(np.r_[True, trajectory[1:] != trajectory[:-1]])
    return Sequences(
        features={name: values[place] for name, values in features.items()},
        options=options[place],
        dwell_s=decided[place],
        known=known[place],
        offsets=np.r_[starts, int(place.sum())],
        keys=trajectory[starts],
        visitors=frame["visitor"].to_numpy()[place][starts],
        served_dwell=served[place],
        shows=None if shows is None else shows[place],
        show_left_s=None if shows is None else show_left[place],
        profiles=profile_vectors(frame["profile"].to_numpy()[place][starts], vocab.index)
        if "profile" in frame
        else None,
    )


def read_sequences(
    logs: Sequence[str | os.PathLike[str]],
    vocab: ZoneVocab,
    columns: Columns = Columns(),
    programme: Programme | None = None,
    capacities: Capacities | None = None,
    show_grace_s: float = SHOW_ENDING_S,
) -> Sequences:
    """Logs to tokens, the one way: read (``read_logs``), refuse zones the vocabulary lacks
    (``check_zones``), encode (``encode``). Used wherever a model or a baseline meets logs
    with a vocabulary already fixed: evaluation, the Markov avatars."""
    frame = read_logs(logs, columns)
    where = ", ".join(map(str, logs))
    check_zones(frame, vocab, where, vocab.source)
    try:
        return encode(frame, vocab, programme, capacities, show_grace_s)
    except LogError as exc:
        raise LogError(f"{where}: {exc}") from None


def with_gates(frame: pd.DataFrame, vocab: ZoneVocab) -> pd.DataFrame:
    """A log of places only (photos, scans at attractions), read on a venue with gates:
    every trajectory that does not begin at an entrance is given a visit to one just before
    its first row, and a visit to an exit just after its last, as a visitor of the twin
    comes in by a gate and leaves by an exit. So a model learns where visitors go first
    and when they leave (the entrance and exit act as the beginning and end of a
    sentence). The entrance is one from which the first place can be chosen (the exit,
    one that can be chosen after the last place), the same for a trajectory every time;
    these visits last no time and see nobody else. Trajectories that begin at an entrance
    (a twin's own logs) are left as they are."""
    kinds = np.array(vocab.kinds)
    entrances, exits = np.flatnonzero(kinds == "entrance"), np.flatnonzero(kinds == "exit")
    if len(frame) == 0 or len(entrances) == 0 or len(exits) == 0:
        return frame
    zone, known = vocab.lookup(frame["zone"])
    trajectory = frame["trajectory"].to_numpy()
    first = np.flatnonzero(np.r_[True, trajectory[1:] != trajectory[:-1]])
    last = np.r_[first[1:], len(frame)] - 1
    open_ = known[first] & (kinds[np.maximum(zone[first], 0)] != "entrance") & known[last]
    if not open_.any():
        return frame
    first, last = first[open_], last[open_]
    choices = vocab.destinations
    pick = np.array([zlib.crc32(str(k).encode()) for k in trajectory[first]], dtype=np.int64)

    def gate(candidates: np.ndarray) -> np.ndarray:  # (n, G) bool -> (n,) zone, -1: none
        count = candidates.sum(axis=1)
        nth = pick % np.maximum(count, 1)
        ranked = np.cumsum(candidates, axis=1) - 1
        column = np.argmax(candidates & (ranked == nth[:, None]), axis=1)
        return np.where(count > 0, column, -1)

    came = gate(choices[np.ix_(entrances, zone[first])].T)
    went = gate(choices[np.ix_(zone[last], exits)])
    both = (came >= 0) & (went >= 0)
    first, last, came, went = first[both], last[both], came[both], went[both]
    before = frame.iloc[first].copy()
    before["zone"] = np.array(vocab.names, dtype=object)[entrances[came]]
    before["since_arrival_s"] = 0.0
    after = frame.iloc[last].copy()
    stay = after["dwell_s"].to_numpy(np.float64)
    after["zone"] = np.array(vocab.names, dtype=object)[exits[went]]
    after["timestamp"] = after["timestamp"] + pd.to_timedelta(stay, unit="s")
    after["seconds_of_day"] = (after["seconds_of_day"].to_numpy() + stay) % 86400.0
    after["since_arrival_s"] = after["since_arrival_s"].to_numpy() + stay
    for added, kind in ((before, "entrance"), (after, "exit")):
        for name in ("dwell_s", "present_s", "wait_s", "leave_wait_s"):
            if name in added:
                added[name] = 0.0
        added["occupancy"] = 1
        if "zone_kind" in added:
            added["zone_kind"] = kind
    order = np.r_[np.arange(len(frame), dtype=np.float64), first - 0.5, last + 0.25]
    joined = pd.concat([frame, before, after], ignore_index=True)
    return joined.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)


def capacity_arrays(
    capacities: Capacities | Sequence[Capacities] | None, vocab: ZoneVocab, n_logs: int
) -> list[np.ndarray] | None:
    """(Z,) capacity of every zone (inf where none is stated) for each of ``n_logs`` logs;
    None without capacities. A zone outside the vocabulary, a capacity that is not a
    number of persons, or a count of capacities that is not the logs' raises ``LogError``."""
    if capacities is None:
        return None
    days = [capacities] if isinstance(capacities, Mapping) else list(capacities)
    if len(days) not in (1, n_logs):
        raise LogError(f"{len(days)} capacities for {n_logs} logs")
    out = []
    for day in days:
        limit = np.full(len(vocab), np.inf)
        for name, value in day.items():
            if name not in vocab.index:
                raise LogError(f"capacities: zone {name!r} is not in the vocabulary")
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = -1.0
            if not number >= 0:
                raise LogError(f"capacities: zone {name!r}: {value!r} is not a number >= 0")
            limit[vocab.index[name]] = number
        out.append(limit)
    return out * n_logs if len(out) == 1 else out


def _options_at_choices(
    frame: pd.DataFrame,
    zone: np.ndarray,
    vocab: ZoneVocab,
    decided: np.ndarray,
    limits: list[np.ndarray] | None = None,
) -> np.ndarray:
    """(N, Z) option state (``llm.features.option_state``) of every zone at each visit's
    choice (``decided`` seconds into it), from the visits of the same run as the
    causality rule allows (``llm.causal``): the persons vouched present then, and the wait
    behind the last to queue before then; with ``limits`` (each log's capacities), whether
    a zone then held as many as it takes (``FULL_OPTION``)."""
    start = _seconds(frame["timestamp"])
    present = frame["present_s"].to_numpy()
    served = start + frame["wait_s"].to_numpy()
    states = np.zeros((len(frame), len(vocab)), dtype=np.int8)
    for _, rows in frame.groupby("run_id", sort=False).indices.items():
        occupancy = np.zeros((len(rows), len(vocab)), dtype=np.int64)
        when = start[rows] + decided[rows]
        last_served = last_served_by_zone(zone[rows], start[rows], served[rows], when, len(vocab))
        for z in np.unique(zone[rows]):
            here = rows[zone[rows] == z]
            occupancy[:, z] = present_at(start[here], present[here], when)
        crowd = zone_crowd(occupancy, vocab.area[None, :])
        full = None
        if limits is not None:
            full = occupancy >= limits[int(frame["log"].iat[rows[0]])][None, :]
        states[rows] = option_state(crowd, queue_wait(last_served, when[:, None]), full)
    return states


#: Train, validation and test fractions of the visitors.
Fractions = tuple[float, float, float]
FRACTIONS: Fractions = (0.8, 0.1, 0.1)


def visitor_order(visitors: np.ndarray, seed: int) -> np.ndarray:
    """The distinct visitors in an order fixed by ``seed`` and each visitor's name alone
    (a hash), so the same visitor falls on the same side of a split in any log."""
    unique = np.unique(np.asarray(visitors, dtype=str))
    digests = [hashlib.sha256(f"{seed}\x00{v}".encode()).digest()[:8] for v in unique]
    return unique[np.argsort(np.array(digests, dtype="S8"), kind="stable")]


def visitor_digests(visitors: Iterable[str]) -> np.ndarray:
    """(n,) int64 digests of visitor names: what a checkpoint keeps of who trained it
    (never the names, which may be personal data)."""
    return np.array(
        [
            int.from_bytes(hashlib.sha256(str(v).encode()).digest()[:8], "little", signed=True)
            for v in visitors
        ],
        dtype=np.int64,
    )


def visitor_parts(
    visitors: np.ndarray | pd.Series, fractions: Fractions = FRACTIONS, seed: int = 0
) -> np.ndarray:
    """Which part (0 train, 1 validation, 2 test) each of ``visitors`` falls in: the
    distinct visitors in ``visitor_order``, cut by ``fractions`` (at least one visitor in
    validation, and in test unless ``fractions[2]`` is 0 or there are only 2)."""
    names = np.asarray(visitors, dtype=str)
    order = visitor_order(names, seed)
    n = len(order)
    if n < 2:
        raise LogError(
            f"the logs hold {n} visitor{'s' if n != 1 else ''}: need at least 2 to hold some out"
        )
    n_val = max(1, round(n * fractions[1]))
    n_test = max(1, round(n * fractions[2])) if n >= 3 and fractions[2] > 0 else 0
    n_train = max(1, n - n_val - n_test)
    part_of = np.repeat(np.array([0, 1, 2], dtype=np.int8), [n_train, n_val, n - n_train - n_val])
    # order[r] is the visitor of rank r; the distinct visitors sorted by name are
    # order[argsort(order)], so name j of them has part part_of[argsort(order)[j]].
    by_name = part_of[np.argsort(order)]
    return by_name[np.searchsorted(np.sort(order), names)]


def split(
    seqs: Sequences, fractions: Fractions = FRACTIONS, seed: int = 0
) -> tuple[Sequences, Sequences, Sequences]:
    """Train/validation/test by visitor (``visitor_parts``): all trajectories (sessions)
    of a visitor fall in one part. Without a test part, validation stands in for it."""
    of = visitor_parts(seqs.visitors, fractions, seed)
    train, val, test = (seqs.take(np.flatnonzero(of == p)) for p in (0, 1, 2))
    return train, val, (test if len(test) else val)


# ============================================================================ tensors


def blocks(seqs: Sequences, block_size: int) -> dict[str, torch.Tensor]:
    """Fixed-length windows of trajectories as tensors.

    Each window holds the token features (B, T), ``options`` (B, T, Z) option states,
    ``profile`` (B, P) the trajectory's declared profile (where ``seqs`` has profiles),
    the targets ``next_zone`` and ``next_dwell`` (B, T; -1 where there is none),
    ``next_show_end`` (B, T) int, k where that next visit stayed until the (k+1)-th show
    there ended (the ``UNTIL_SHOW_ENDS + k`` class of a model that has it), else -1, and
    ``length``. A
    trajectory longer than the window is cut into windows overlapping by half, and each
    target is counted in one window only.
    """
    stride = max(1, block_size // 2)
    windows: list[tuple[int, int, int]] = []  # (start, end, first position with a target)
    for s, e in zip(seqs.offsets[:-1], seqs.offsets[1:], strict=True):
        begin = int(s)
        windows.append((begin, min(int(e), begin + block_size), 0))
        while begin + block_size < e:
            begin += stride
            windows.append((begin, min(int(e), begin + block_size), block_size - stride))
    n, z = len(windows), seqs.options.shape[1]
    out = {name: np.zeros((n, block_size), dtype=np.int64) for name in FEATURES}
    out["options"] = np.zeros((n, block_size, z), dtype=np.int8)
    out["next_zone"] = np.full((n, block_size), -1, dtype=np.int64)
    out["next_dwell"] = np.full((n, block_size), -1, dtype=np.int64)
    out["next_show_end"] = np.full((n, block_size), -1, dtype=np.int64)
    show_end = seqs.show_end_class()
    out["length"] = np.zeros(n, dtype=np.int64)
    if seqs.shows is not None:
        out["shows"] = np.zeros((n, block_size, z), dtype=np.int8)
    if seqs.profiles is not None:
        out["profile"] = np.zeros((n, seqs.profiles.shape[1]), dtype=np.uint8)
        of_visit = np.repeat(np.arange(len(seqs)), np.diff(seqs.offsets))
    ends = np.zeros(seqs.n_visits, dtype=np.int64)  # end of each visit's trajectory
    for s, e in zip(seqs.offsets[:-1], seqs.offsets[1:], strict=True):
        ends[s:e] = e
    for w, (s, e, first) in enumerate(windows):
        length = e - s
        out["length"][w] = length
        for name in FEATURES:
            out[name][w, :length] = seqs.features[name][s:e]
        out["options"][w, :length] = seqs.options[s:e]
        if seqs.shows is not None:
            out["shows"][w, :length] = seqs.shows[s:e]
        if seqs.profiles is not None:
            out["profile"][w] = seqs.profiles[of_visit[s]]
        has_next = np.arange(s, e) + 1 < ends[s:e]
        positions = np.arange(length)
        keep = has_next & (positions >= first)
        nxt = np.minimum(np.arange(s, e) + 1, seqs.n_visits - 1)
        out["next_zone"][w, :length] = np.where(keep, seqs.features["zone"][nxt], -1)
        dwell = seqs.features["dwell"] if seqs.served_dwell is None else seqs.served_dwell
        out["next_dwell"][w, :length] = np.where(keep, dwell[nxt], -1)
        out["next_show_end"][w, :length] = np.where(keep, show_end[nxt], -1)
    return {k: torch.from_numpy(v) for k, v in out.items()}
