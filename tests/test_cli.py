"""The ``venuetwin`` command line: outputs, exit statuses, nothing half-written."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from llm.logschema import VISIT_DTYPES
from twin import cli
from twin.model import VenueModel

SMALL = ["--venue", "concert_hall", "--avatars", "300", "--hours", "1", "--quiet"]


def test_simulate_writes_logs_zones_and_kpis(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert cli.main(["simulate", *SMALL, "--seed", "4", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "kpis.json",
        "provenance.json",
        "visits.parquet",
        "zones.parquet",
    ]
    visits = pd.read_parquet(out / "visits.parquet")
    assert list(visits.columns) == list(VISIT_DTYPES)
    assert visits["avatar_id"].nunique() == 300
    kpis = json.loads((out / "kpis.json").read_text())
    assert kpis["avatars"] == 300 and kpis["venue"] == "concert_hall" and kpis["seed"] == 4
    for key in (
        "mean_wait_s",
        "p95_wait_s",
        "person_minutes_los_ef",
        "peak_density",
        "mean_satisfaction",
        "throughput_per_gate",
    ):
        assert key in kpis
    zones = pd.read_parquet(out / "zones.parquet")
    assert set(visits["zone"]) <= set(zones["zone"]) and zones["zone"].nunique() == 13
    assert set(zones["fruin"]) <= set("ABCDEF")
    printed = capsys.readouterr().out
    assert "mean wait" in printed and "300" in printed


def test_csv_and_scenario_file(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text('venue = "concert_hall"\navatars = 200\nhours = 1.0\nseed = 9\n')
    out = tmp_path / "run"
    assert cli.main(["simulate", str(scenario), "--csv", "--quiet", "--out", str(out)]) == 0
    visits = pd.read_csv(out / "visits.csv")
    assert visits["avatar_id"].nunique() == 200
    assert json.loads((out / "kpis.json").read_text())["seed"] == 9


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--venue", "atlantis"], "atlantis: no such venue file"),
        (["--avatars", "0"], "avatars must be 1..10000000"),
        (["--hours", "-2"], "hours must be in"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], message: str
) -> None:
    out = tmp_path / "run"
    assert cli.main(["simulate", *args, "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and err.startswith("venuetwin: error:")
    assert not out.exists()


def test_bad_scenario_file_names_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    scenario = tmp_path / "bad.toml"
    scenario.write_text('venue = "expo"\navatrs = 10\n')
    assert cli.main(["simulate", str(scenario), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "'avatrs'" in err


def test_bad_venue_file_names_the_edge(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    venue = tmp_path / "v.json"
    venue.write_text(
        json.dumps(
            {
                "nodes": [
                    {"id": "in", "kind": "entrance", "area": 10, "servers": 1, "service_s": 5},
                    {"id": "out", "kind": "exit", "area": 10},
                ],
                "edges": [{"source": "in", "target": "out", "length": 5, "width": -1}],
            }
        )
    )
    assert cli.main(["simulate", "--venue", str(venue), "--out", str(tmp_path / "r")]) == 2
    assert "edge 'in'-'out': width must be 0.1..10000 m, got -1" in capsys.readouterr().err


def test_interrupted_run_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: VenueModel, progress: bool = False) -> None:
        self.step()
        raise KeyboardInterrupt

    monkeypatch.setattr(VenueModel, "run", interrupted)
    out = tmp_path / "run"
    assert cli.main(["simulate", *SMALL, "--out", str(out)]) == 130
    assert not out.exists() or not any(out.iterdir())


def test_rerun_replaces_outputs_atomically(tmp_path: Path) -> None:
    out = tmp_path / "run"
    for seed in ("1", "2"):
        assert cli.main(["simulate", *SMALL, "--seed", seed, "--out", str(out)]) == 0
    assert json.loads((out / "kpis.json").read_text())["seed"] == 2
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_venues_lists_the_built_ins(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["venues"]) == 0
    printed = capsys.readouterr().out
    for name in ("concert_hall", "expo", "festival"):
        assert name in printed


def test_console_script_exit_status() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "twin.cli", "simulate", "--venue", "nowhere", "--out", "/tmp/x"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "nowhere" in done.stderr


def test_simulate_with_a_model_named_on_the_command_line(tmp_path: Path, capsys) -> None:
    """``--model`` runs GPT avatars with that checkpoint: a copy of the shipped one gives
    the shipped one's run; a missing file or another venue's model is one line, status 2."""
    import shutil

    from twin.catalog import shipped_model_path

    copy = tmp_path / "mine.safetensors"
    shutil.copy(shipped_model_path("concert_hall"), copy)
    runs = {}
    for name, extra in (("shipped", []), ("copy", ["--model", str(copy)])):
        out = tmp_path / name
        assert cli.main(["simulate", *SMALL, "--policy", "gpt", *extra, "--out", str(out)]) == 0
        runs[name] = json.loads((out / "kpis.json").read_text())
    assert runs["copy"]["mean_wait_s"] == runs["shipped"]["mean_wait_s"]
    assert runs["copy"]["visits"] == runs["shipped"]["visits"]
    capsys.readouterr()
    missing = tmp_path / "none.safetensors"
    assert (
        cli.main(["simulate", *SMALL, "--model", str(missing), "--out", str(tmp_path / "x")]) == 2
    )
    assert "none.safetensors" in capsys.readouterr().err
    other = ["--model", str(shipped_model_path("expo"))]
    assert cli.main(["simulate", *SMALL, *other, "--out", str(tmp_path / "y")]) == 2
    assert "vocabulary" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_run_killed_outright_leaves_nothing_the_next_run_keeps(tmp_path: Path) -> None:
    """kill -9 during a run leaves its hidden folder of streamed visit parts (and, killed
    while writing, temporary files); the next run in that folder removes them, and its
    outputs are whole."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "twin.cli", "simulate", "--venue", "festival"]
    command += ["--avatars", "30000", "--hours", "6", "--quiet", "--out", str(out)]
    worker = subprocess.Popen(command, cwd=Path(__file__).parents[1])
    try:
        for _ in range(600):  # until the run has begun streaming its visit log
            if list(out.glob(".visits-*")):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the run never began")
    finally:
        worker.kill()
        worker.wait()
    (out / ".kpis.json.abc123.tmp").write_text("{half")
    assert list(out.glob(".visits-*")) and list(out.glob(".*.tmp"))
    assert cli.main(["simulate", *SMALL, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "kpis.json",
        "provenance.json",
        "visits.parquet",
        "zones.parquet",
    ]
