"""The models that ship with venuetwin load for their venues and beat the baselines."""

from __future__ import annotations

import re

import pytest

from llm import checkpoint
from twin import load_venue
from twin.catalog import shipped_model_path
from twin.venue import BUILTIN_VENUES


@pytest.mark.parametrize("venue", BUILTIN_VENUES)
def test_shipped_model_fits_its_venue_and_beats_markov(venue: str) -> None:
    path = shipped_model_path(venue)
    assert path is not None, f"no shipped model for {venue}: run `make model`"
    assert path.stat().st_size < 4 * 2**20  # a few MB at most
    ckpt = checkpoint.load(path, venue_vocab=load_venue(venue).vocabulary())
    figures = ckpt.training["evaluation"]
    markov2 = figures["baselines"]["markov2"]
    assert figures["perplexity"] < markov2["perplexity"]
    assert figures["acc1"] > markov2["acc1"]
    assert ckpt.training["rebuild"] == "python -m twin.shipped"
    # Scored on a run it never saw: the held-out seed is none of the training runs'.
    seed_of = lambda text: int(re.search(r"seed (\d+)", text).group(1))  # noqa: E731
    trained_on = {seed_of(log) for log in ckpt.training["logs"]}
    assert len(trained_on) == len(ckpt.training["logs"]) >= 2
    assert seed_of(figures["held_out"]) not in trained_on
