"""The built-in venues, loaded once per server (``st.cache_resource``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import streamlit as st

from twin import Venue, load_venue
from twin.venue import BUILTIN_VENUES


@st.cache_resource(show_spinner=False)
def builtin_venue(name: str) -> Venue:
    return load_venue(name)


def venue_label(value: str | Venue) -> str:
    """A venue as the forms name it: its name, a built-in's, or a venue file's name."""
    if isinstance(value, Venue):
        return value.name
    return value if value in BUILTIN_VENUES else Path(value).name


def venue_of(value: str | Venue) -> Venue:
    """A scenario's venue: a ``Venue``, a built-in's name, or a venue JSON file."""
    if isinstance(value, Venue):
        return value
    return builtin_venue(value) if value in BUILTIN_VENUES else load_venue(value)


def venue_for_zones(zones: Iterable[str]) -> str | None:
    """The first built-in venue that has every one of ``zones``, if any."""
    wanted = set(map(str, zones))
    for name in BUILTIN_VENUES:
        if wanted <= set(builtin_venue(name).zones):
            return name
    return None
