"""Every dashboard run kept as a folder with its provenance record, and shown with the
record's verification state (``twin.provenance``).

A run of the Simulate page is written to ``<workdir>/runs/<time>-<id>/`` as
``venuetwin simulate`` writes one (visit log, zones, KPIs, ``provenance.json``) and its
record appended to the ledger; the folder keeps the newest ``KEEP_RUNS`` runs.
"""

from __future__ import annotations

import datetime
import shutil
import uuid
from pathlib import Path
from typing import Any

import streamlit as st

from twin import VenueModel
from twin import provenance as prov
from twin.output import write_run

#: Runs the dashboard keeps on disk; the oldest go first.
KEEP_RUNS = 20


def save_run(model: VenueModel, folder: Path) -> Path:
    """Write the run and its provenance record into a new folder under ``folder``."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    where = folder / f"{stamp}-{uuid.uuid4().hex[:6]}"
    paths = write_run(model, where)
    scenario = model.scenario
    inputs = prov.scenario_inputs(scenario, None)
    checkpoint_path = getattr(getattr(model.policy, "ckpt", None), "path", None)
    if checkpoint_path:  # the model the avatars used (an uploaded or trained one too)
        inputs["model"] = checkpoint_path
    prov.write_record(
        where / prov.RECORD_NAME,
        command="dashboard simulate",
        argv=[],
        options=scenario.to_dict(),
        inputs=inputs,
        outputs=paths,
    )
    for old in sorted(p for p in folder.iterdir() if p.is_dir())[:-KEEP_RUNS]:
        shutil.rmtree(old, ignore_errors=True)
    return where


def show(where: Path) -> None:
    """The run's record and whether its files are as recorded, in an expander."""
    try:
        record = prov.read_record(where / prov.RECORD_NAME)
        problems = prov.verify_record(where)
    except prov.ProvenanceError as exc:
        st.warning(f"No provenance for this run: {exc}")
        return
    state = "every file as recorded" if not problems else f"{len(problems)} change(s)"
    with st.expander(f"Provenance: {state}", expanded=bool(problems)):
        if problems:
            for problem in problems:
                st.error(problem)
        else:
            st.success(f"Verified: {where} matches its record and the ledger.")
        code = record["code"]
        commit = (code.get("git_commit") or "no git")[:12]
        changed = ", changed" if code.get("git_dirty") else ""
        st.caption(
            f"venuetwin {code.get('venuetwin')} ({commit}{changed}), "
            f"Python {code.get('python')}, torch {code.get('torch')}; "
            f"recorded {record['created']}; ledger {prov.default_ledger()}"
        )
        st.dataframe(files_table(record), hide_index=True, width="stretch")


def files_table(record: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for side in ("inputs", "outputs"):
        for role, files in record.get(side, {}).items():
            for item in files:
                name = Path(item["path"]).name
                rows.append({"": side[:-1], "role": role, "file": name, "sha256": item["sha256"]})
    return rows
