"""Visitors' needs: interests, thirst, bladder and fatigue that grow with time.

``Needs`` holds one row per avatar (arrays, not objects). The twin draws the traits at the
start of a run and updates the state as visits end; the scripted policy reads them to
decide, and the twin scores satisfaction from them whatever policy drives the avatars.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llm.features import PROFILE_SEP, Programme

#: Zone kinds a visitor can be interested in for their own sake.
ATTRACTION_KINDS: tuple[str, ...] = ("booth", "shop", "stage", "lounge", "hall")


@dataclass
class Needs:
    """Per-avatar traits (fixed) and state (updated by the twin), all arrays of length N."""

    interest: np.ndarray  # (N, Z) float32 in [0, 1]: how much each zone appeals
    show_wanted: np.ndarray  # (N, S) bool: shows the avatar came for
    thirst_rate: np.ndarray  # (N,) thirst units per second (1 = needs a drink)
    bladder_rate: np.ndarray  # (N,)
    stamina_s: np.ndarray  # (N,) seconds on their feet before fatigue reaches 1
    arrived_s: np.ndarray  # (N,) arrival time (inf until arrived)
    last_drink_s: np.ndarray  # (N,)
    last_restroom_s: np.ndarray  # (N,)
    rested_s: np.ndarray  # (N,) seconds spent resting in lounges
    seen: np.ndarray  # (N, Z) bool: zones already visited
    show_watched: np.ndarray  # (N, S) float: share of each show watched

    @classmethod
    def draw(
        cls,
        n_avatars: int,
        zone_kinds: tuple[str, ...],
        show_draw: np.ndarray,
        rng: np.random.Generator,
    ) -> Needs:
        """Draw a population of visitors: interests, shows they want, needs' rates."""
        n_zones = len(zone_kinds)
        attractive = np.array([k in ATTRACTION_KINDS for k in zone_kinds])
        # Each visitor cares strongly about a few zones and a little about many.
        interest = rng.beta(0.6, 1.6, size=(n_avatars, n_zones)).astype(np.float32)
        interest *= attractive[None, :]
        show_wanted = rng.random((n_avatars, len(show_draw))) < show_draw[None, :]
        return cls(
            interest=interest,
            show_wanted=show_wanted,
            thirst_rate=rng.uniform(1 / 7200, 1 / 3600, n_avatars),
            bladder_rate=rng.uniform(1 / 10800, 1 / 5400, n_avatars),
            stamina_s=rng.uniform(2.0, 5.0, n_avatars) * 3600,
            arrived_s=np.full(n_avatars, np.inf),
            last_drink_s=np.full(n_avatars, np.inf),
            last_restroom_s=np.full(n_avatars, np.inf),
            rested_s=np.zeros(n_avatars),
            seen=np.zeros((n_avatars, n_zones), dtype=bool),
            show_watched=np.zeros((n_avatars, len(show_draw))),
        )

    # ------------------------------------------------------------------ levels
    def thirst(self, idx: np.ndarray, now_s: np.ndarray) -> np.ndarray:
        return (now_s - self.last_drink_s[idx]) * self.thirst_rate[idx]

    def bladder(self, idx: np.ndarray, now_s: np.ndarray) -> np.ndarray:
        return (now_s - self.last_restroom_s[idx]) * self.bladder_rate[idx]

    def fatigue(self, idx: np.ndarray, now_s: np.ndarray) -> np.ndarray:
        on_feet = now_s - self.arrived_s[idx] - 2.0 * self.rested_s[idx]
        return np.maximum(on_feet, 0.0) / self.stamina_s[idx]

    # ------------------------------------------------------------------ updates
    def arrive(self, idx: np.ndarray, now_s: np.ndarray) -> None:
        """Avatars enter the venue: their needs start growing from now."""
        self.arrived_s[idx] = now_s
        self.last_drink_s[idx] = now_s
        self.last_restroom_s[idx] = now_s

    def end_visits(
        self,
        idx: np.ndarray,
        zone: np.ndarray,
        zone_kinds: np.ndarray,
        entered_s: np.ndarray,
        left_s: np.ndarray,
        show_stage: np.ndarray,
        show_start_s: np.ndarray,
        show_end_s: np.ndarray,
    ) -> None:
        """Visits that ended: drinks quench thirst, restrooms empty bladders, lounges rest,
        stages count the share of each show that was watched, every zone is now seen."""
        self.seen[idx, zone] = True
        drank = zone_kinds == "bar"
        self.last_drink_s[idx[drank]] = left_s[drank]
        relieved = zone_kinds == "restroom"
        self.last_restroom_s[idx[relieved]] = left_s[relieved]
        rested = zone_kinds == "lounge"
        self.rested_s[idx[rested]] += left_s[rested] - entered_s[rested]
        if len(show_stage):
            overlap = np.minimum(left_s[:, None], show_end_s[None, :]) - np.maximum(
                entered_s[:, None], show_start_s[None, :]
            )
            share = np.clip(overlap / (show_end_s - show_start_s)[None, :], 0.0, 1.0)
            share *= zone[:, None] == show_stage[None, :]
            self.show_watched[idx] = np.maximum(self.show_watched[idx], share)


#: Interest from which a visitor declares a zone in its profile (ticks it at registration):
#: the attractions it thinks worth a visit (``agents.scripted.MIN_INTEREST``). Measured on
#: the expo with 0.5: 43% of GPT avatars' first visits to attractions went to zones their
#: visitor cared little for (interest < 0.3), against 5% of the scripted visitors'.
DECLARED_INTEREST = 0.3


def declared_profiles(needs: Needs, zones: tuple[str, ...], programme: Programme) -> list[str]:
    """What each visitor declared before it came, as a log's ``profile`` column holds it
    (``llm.features.profile_vectors``): the attractions it is interested in (interest
    of at least ``DECLARED_INTEREST``) and the shows it came for (``show=<stage>@<HH:MM>``).
    Never its thirst, bladder or fatigue, which no log states: GPT avatars see this and
    their visits, nothing else of their visitor. ``programme``: the run's shows, in the
    order of ``needs.show_wanted``'s columns (``Layout.programme``)."""
    names = np.array(zones, dtype=object)
    shows = np.array(programme.tags(), dtype=object)
    interested = needs.interest >= DECLARED_INTEREST
    out = []
    for row in range(len(interested)):
        tags = [*names[interested[row]], *shows[needs.show_wanted[row]]]
        out.append(PROFILE_SEP.join(tags))
    return out
