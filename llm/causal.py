"""The causality rule: what a visitor could know at the moment it chose where to go next.

A visit's *choice* is the moment its visitor chose the next place: the visit's start plus
its stay up to then (``stay_until_choice``: its dwell less the wait to leave that followed,
a door's queue, say). Everything a choice is shown comes from what had happened
*strictly before* it:

- a log row vouches for its visitor's presence from its timestamp for the dwell it states
  (``dwell_s``), and for nothing beyond: a row without a stated dwell (a photo, a ticket
  scan) shows no one present at any later moment, since only a later row (the future)
  could tell how long its visitor stayed;
- a zone's crowd at a moment counts the visits begun strictly before it and still present
  then (``present_at``: a visit ending at that very moment still counts, as live, where a
  visitor deciding is still in its zone); a visit beginning at the moment of the choice,
  the chooser's own next visit above all, does not;
- a queue's wait at a moment is that of the last visitor who joined strictly before it;
- a visit's own features (its zone, start, stay and entry crowd) come from its own rows,
  never from the visitor's later ones: a log that gives one timestamp per row gives a
  visit the time between its first and last rows as its stay (0 for one row), not the
  time until the next visit, which includes the walk there and is not known at the choice.

``llm.data`` reads logs through these functions for training and evaluation alike. The
live twin keeps the same rule by construction where it matters, the chooser's own next
visit (it does not exist before the choice), and shows its avatars the venue as it stands
in the step of their decision: other avatars' moves within that step (``step_s``, 5 s by
default) are already counted, a resolution the twin's logs cannot show either.
``tests/test_causality.py`` holds it as a property: changing, adding or deleting any
row that begins at or after a choice leaves that choice's inputs bit-identical.
"""

from __future__ import annotations

import numpy as np


def stay_until_choice(dwell_s: np.ndarray, leave_wait_s: np.ndarray) -> np.ndarray:
    """Seconds from each visit's start to its choice of the next place: its dwell less the
    wait to leave that followed the choice (a door's queue, a full zone ahead)."""
    return np.asarray(dwell_s, dtype=np.float64) - np.asarray(leave_wait_s, dtype=np.float64)


def millis(seconds: np.ndarray | float) -> np.ndarray:
    """Seconds rounded to the millisecond: moments are compared at that resolution, so a
    next visit logged as beginning when the previous one ended (its start and the choice
    differ by a float's rounding) is not taken for one that began before the choice."""
    return np.round(np.asarray(seconds, dtype=np.float64), 3)


def present_at(start_s: np.ndarray, present_s: np.ndarray, when_s: np.ndarray) -> np.ndarray:
    """(len(when_s),) how many of the visits (``start_s``, vouched present for
    ``present_s`` seconds) were present at each moment ``when_s``: begun strictly before
    it and not yet gone (``start < when <= start + present``, to the millisecond)."""
    start = np.asarray(start_s, dtype=np.float64)
    starts, ends = np.sort(millis(start)), np.sort(millis(start + np.asarray(present_s)))
    when = millis(when_s)
    return np.searchsorted(starts, when, "left") - np.searchsorted(ends, when, "left")


def last_served_by_zone(
    zone: np.ndarray,
    start_s: np.ndarray,
    served_s: np.ndarray,
    when_s: np.ndarray,
    n_zones: int,
) -> np.ndarray:
    """(len(when_s), n_zones) per zone, the latest start of service (``served_s``) among
    its visits (``zone``, ``start_s``, each (N,)) begun strictly before each moment
    ``when_s``, to the millisecond (-inf where none): the wait a newcomer would have is
    from then (``llm.zones.queue_wait``). Every zone at once, one sort for all: the log
    reader asks this of every run, the live twin of every step's joins."""
    out = np.full((len(np.atleast_1d(when_s)), n_zones), -np.inf)
    zone = np.asarray(zone, dtype=np.int64)
    if len(zone) == 0:
        return out
    # Moments as whole milliseconds (the resolution of ``millis``), so that a visit's zone
    # and start make one exact sort key.
    start_ms = np.rint(np.asarray(start_s, dtype=np.float64) * 1000.0).astype(np.int64)
    when_ms = np.rint(np.asarray(when_s, dtype=np.float64) * 1000.0).astype(np.int64)
    span = int(max(start_ms.max(), when_ms.max()) - min(start_ms.min(), when_ms.min())) + 1
    base = int(min(start_ms.min(), when_ms.min()))
    key = zone * span + (start_ms - base)
    order = np.argsort(key, kind="stable")
    key, zone = key[order], zone[order]
    served = np.asarray(served_s, dtype=np.float64)[order]
    zones, first, count = np.unique(zone, return_index=True, return_counts=True)
    # The latest start of service so far within each zone: a running maximum that starts
    # again at each zone, on the services' ranks (exact integers), not on their values.
    rank_order = np.argsort(served, kind="stable")
    rank = np.empty(len(served), dtype=np.int64)
    rank[rank_order] = np.arange(len(served))
    segment = np.repeat(np.arange(len(zones)), count)
    running = np.maximum.accumulate(rank + segment * len(served)) - segment * len(served)
    latest = served[rank_order][running]
    queries = zones[None, :] * span + (when_ms[:, None] - base)
    before = np.searchsorted(key, queries, "left") - 1  # the last begun strictly before
    found = before >= first[None, :]
    out[:, zones] = np.where(found, latest[np.maximum(before, 0)], -np.inf)
    return out
