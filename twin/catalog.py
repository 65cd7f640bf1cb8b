"""Where the models shipped for the built-in venues live (``twin/models/<venue>.*``), and
which checkpoint a scenario's GPT avatars use."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

MODELS_DIR = Path(__file__).parent / "models"


def shipped_model_path(venue_name: str) -> Path | None:
    """The shipped checkpoint for a built-in venue, if there is one."""
    path = resources.files("twin").joinpath("models", f"{venue_name}.safetensors")
    return Path(str(path)) if path.is_file() else None


def model_for(model: str | None, venue_name: str) -> str | None:
    """The checkpoint GPT avatars use: the scenario's own ``model``, else the venue's
    shipped one (None when there is neither)."""
    if model:
        return model
    shipped = shipped_model_path(venue_name)
    return str(shipped) if shipped else None
