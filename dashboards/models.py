"""GPT checkpoints for the dashboard: loaded once per file content (``st.cache_resource``
keyed by the file's SHA-256), and the GPT policy a scenario's avatars decide with.

Checkpoints are safetensors with JSON metadata (``llm.checkpoint``): nothing that a user
uploads is ever unpickled.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from agents.policy import Policy
from llm import checkpoint
from llm.fileio import sha256_file
from twin import Scenario
from twin.model import make_policy


@st.cache_resource(show_spinner=False, max_entries=16)
def _load(sha256: str, _path: str) -> checkpoint.Checkpoint:
    return checkpoint.load(_path)


def load_checkpoint(path: str | os.PathLike[str]) -> checkpoint.Checkpoint:
    """The checkpoint at ``path``, loaded once per distinct file content.

    Raises ``llm.checkpoint.CheckpointError`` naming the file when it is missing or not a
    usable venuetwin checkpoint."""
    if not Path(path).is_file():
        raise checkpoint.CheckpointError(f"{path}: no such checkpoint file")
    return _load(sha256_file(path), str(path))


def policy_for(scenario: Scenario) -> Policy:
    """The scenario's policy as the twin makes it (``twin.model.make_policy``), with the
    checkpoint loaded once per file content (``load_checkpoint``)."""
    return make_policy(scenario, scenario.load_venue(), load=load_checkpoint)
