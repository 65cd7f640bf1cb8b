"""What the Simulate page offers for download: the visit log and the KPIs, as bytes."""

from __future__ import annotations

import io
import json

from llm import logschema
from twin import VenueModel


def visits_parquet(model: VenueModel) -> bytes:
    buffer = io.BytesIO()
    model.visits().to_parquet(buffer, index=False)
    return buffer.getvalue()


def visits_csv(model: VenueModel) -> bytes:
    return logschema.visits_csv(model.visits()).encode("utf-8")


def kpis_json(model: VenueModel) -> bytes:
    return (json.dumps(model.kpis(), indent=2) + "\n").encode("utf-8")
