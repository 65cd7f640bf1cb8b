"""How sure a fidelity figure is: its noise floor, and whether it is met, missed or too noisy.

    floors = {"reference": pair_floor(halves_of_log, measure), "twin": pair_floor(seeds, measure)}
    annotate(report, floors, TARGETS)   # each figure gains noise_floor, noise and status

A figure compares the twin's sample of visits with the reference's, and part of any
difference is chance. A figure's **noise floor** is the same figure between two samples
that differ by chance alone: two random halves of a log's visitors (``HALVINGS`` of them,
the median), or two seeds of the scripted visitors; and two of the twin's seeds. The floor
is the larger of the two. A figure whose floor is above its target cannot be told met or
missed at this sample size: its **status** is ``"too noisy"`` (a larger sample, more
``--avatars`` or ``--seeds`` or a longer log, brings the floor down), else ``"met"`` or
``"missed"``.

A floor measured between halves (or single seeds) is that of samples half the size of
those compared (or one seed's), so it errs on the safe side: a figure within it is
within chance.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Random halvings of a log's visitors for its floor (the median over them).
HALVINGS = 20
#: Statuses of a figure.
MET, MISSED, TOO_NOISY = "met", "missed", "too noisy"

Measure = Callable[[Any, Any], dict[str, float]]


def figure_values(report: dict[str, Any], keys: Sequence[str]) -> dict[str, float]:
    """Each figure's size of difference: its distance, or its relative error's magnitude
    (figures a comparison could not make are left out)."""
    out = {}
    for key in keys:
        item = report.get(key)
        if not isinstance(item, dict):
            continue
        value = item.get("distance", item.get("rel_error"))
        if value is not None and np.isfinite(value):
            out[key] = float(abs(value))
    return out


def pair_floor(samples: Sequence[Any], measure: Measure) -> dict[str, float]:
    """Median over every pair of ``samples`` of each figure ``measure(a, b)`` gives
    (empty with fewer than two samples)."""
    return _medians(itertools.combinations(samples, 2), measure)


def halves_floor(
    frame: pd.DataFrame,
    stats_of: Callable[[pd.DataFrame], Any],
    measure: Measure,
    visitor: str = "visitor",
    rounds: int = HALVINGS,
    seed: int = 0,
) -> dict[str, float]:
    """Median over ``rounds`` random halvings of ``frame``'s visitors of each figure between
    the halves' statistics (``stats_of``)."""
    halves = (
        (stats_of(frame[mine]), stats_of(frame[~mine]))
        for mine in _halvings(frame[visitor].to_numpy(), rounds, seed)
    )
    return _medians(halves, measure)


def _medians(pairs: Iterable[tuple[Any, Any]], measure: Measure) -> dict[str, float]:
    found: dict[str, list[float]] = {}
    for a, b in pairs:
        for key, value in measure(a, b).items():
            found.setdefault(key, []).append(value)
    return {key: float(statistics.median(values)) for key, values in found.items()}


def _halvings(visitors: np.ndarray, rounds: int, seed: int) -> Iterator[np.ndarray]:
    codes, names = pd.factorize(visitors)
    if len(names) < 2:
        return
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        half = np.zeros(len(names), dtype=bool)
        half[rng.permutation(len(names))[: len(names) // 2]] = True
        yield half[codes]


def status(passed: bool, floor: float | None, target: float) -> str:
    """``"too noisy"`` where the floor is above the target, else met or missed."""
    if floor is not None and floor > target:
        return TOO_NOISY
    return MET if passed else MISSED


def annotate(
    report: dict[str, Any], floors: dict[str, dict[str, float]], targets: dict[str, float]
) -> None:
    """Give each of ``report``'s figures with a target its ``noise_floor`` (the largest of
    ``floors``' sources: None where none measured it), ``noise`` (by source) and
    ``status``."""
    for key, target in targets.items():
        item = report.get(key)
        if not isinstance(item, dict) or "passed" not in item:
            continue
        noise = {source: values.get(key) for source, values in floors.items()}
        known = [v for v in noise.values() if v is not None]
        item["noise"] = noise
        item["noise_floor"] = max(known) if known else None
        item["status"] = status(bool(item["passed"]), item["noise_floor"], target)


__all__ = ["HALVINGS", "MET", "MISSED", "TOO_NOISY", "annotate", "figure_values", "halves_floor"]
__all__ += ["pair_floor", "status"]
