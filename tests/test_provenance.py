"""Provenance: every run records what made it; ``venuetwin verify`` names the file that
changed since, and the ledger's chain names the entry altered, removed or moved."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from twin import cli
from twin.provenance import default_ledger, read_record

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = ["--venue", "concert_hall", "--avatars", "150", "--hours", "0.5", "--quiet"]


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger.jsonl"
    monkeypatch.setenv("VENUETWIN_LEDGER", str(path))
    return path


def simulate(out: Path, *extra: str) -> Path:
    assert cli.main(["simulate", *SMALL, *extra, "--out", str(out)]) == 0
    return out


def verify(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = cli.main(["verify", *argv])
    return code, capsys.readouterr().out


def test_a_run_records_its_inputs_and_outputs_and_verifies(tmp_path, ledger, capsys):
    venue = shutil.copy(Path(cli.__file__).parent / "venues" / "concert_hall.json", tmp_path)
    run = simulate(tmp_path / "run", "--venue", str(venue), "--policy", "scripted", "--seed", "3")
    record = read_record(run / "provenance.json")
    assert record["command"] == "simulate" and record["options"]["seed"] == 3
    assert record["code"]["venuetwin"] and record["code"]["python"]
    assert record["inputs"]["venue"][0]["path"] == str(Path(venue).resolve())
    outputs = {item["path"] for files in record["outputs"].values() for item in files}
    assert outputs == {str(run / n) for n in ("visits.parquet", "zones.parquet", "kpis.json")}
    assert verify(capsys, str(run))[0] == 0
    # An output changed: named, exit 1.
    (run / "kpis.json").write_text('{"mean_wait_s": 0}\n')
    code, out = verify(capsys, str(run))
    assert code == 1 and f"output kpis: {run / 'kpis.json'} changed since the run" in out
    assert "visits.parquet" not in out
    # An input changed too.
    data = json.loads(Path(venue).read_text())
    data["nodes"][0]["area"] = 250.0
    Path(venue).write_text(json.dumps(data))
    code, out = verify(capsys, str(run))
    assert code == 1 and "input venue" in out and str(Path(venue).resolve()) in out
    (run / "zones.parquet").unlink()
    code, out = verify(capsys, str(run))
    assert code == 1 and f"output zones: {run / 'zones.parquet'} is missing" in out


def test_the_ledger_names_the_entry_altered_removed_or_moved(tmp_path, ledger, capsys):
    for k in range(4):
        simulate(tmp_path / f"run{k}", "--policy", "scripted", "--seed", str(k))
    assert len(ledger.read_text().splitlines()) == 4
    code, out = verify(capsys, "--ledger", str(ledger))
    assert code == 0 and "4 entries, intact" in out
    lines = ledger.read_text().splitlines()

    def broken(new_lines: list[str]) -> str:
        ledger.write_text("\n".join(new_lines) + "\n")
        code, out = verify(capsys, "--ledger", str(ledger))
        assert code == 1 and "BROKEN" in out
        return out

    altered = json.loads(lines[1])
    altered["command"] = "train"
    assert "line 2 (entry 1) was altered" in broken([lines[0], json.dumps(altered), *lines[2:]])
    assert "an entry before it was removed" in broken([lines[0], *lines[2:]])
    assert "line 2 (entry 2)" in broken([lines[0], lines[2], lines[1], lines[3]])
    assert "line 3 is not a ledger entry" in broken([*lines[:2], "{oops", *lines[3:]])
    ledger.write_text("\n".join(lines) + "\n")
    # A record rewritten to match rewritten outputs is not the one the ledger holds.
    run = tmp_path / "run2"
    record = json.loads((run / "provenance.json").read_text())
    (run / "kpis.json").write_text("{}\n")
    from twin.provenance import sha256_file

    record["outputs"]["kpis"][0]["sha256"] = sha256_file(run / "kpis.json")
    (run / "provenance.json").write_text(json.dumps(record, indent=2))
    code, out = verify(capsys, str(run), "--ledger", str(ledger))
    assert code == 1 and "not in the ledger" in out


def test_a_signed_record_fails_when_edited(tmp_path, ledger, capsys):
    key = tmp_path / "key.pem"
    assert cli.main(["keygen", str(key)]) == 0
    assert key.stat().st_mode & 0o077 == 0  # the owner's only
    run = simulate(tmp_path / "run", "--policy", "scripted", "--sign", str(key))
    record = json.loads((run / "provenance.json").read_text())
    assert record["signature"]["algorithm"] == "ed25519"
    assert verify(capsys, str(run))[0] == 0
    record["options"]["seed"] = 99
    (run / "provenance.json").write_text(json.dumps(record, indent=2))
    code, out = verify(capsys, str(run))
    assert code == 1 and "the signature does not match" in out
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    assert cli.main(["simulate", *SMALL, "--sign", str(bad), "--out", str(tmp_path / "b")]) == 2
    assert not (tmp_path / "b" / "visits.parquet").exists()  # refused before the run


def test_train_validate_and_optimize_record_their_runs_too(tmp_path, ledger):
    run = simulate(tmp_path / "run", "--policy", "scripted", "--hours", "1")
    log = run / "visits.parquet"
    model = tmp_path / "model"
    assert cli.main(["train", str(log), "--max-steps", "2", "--quiet", "--out", str(model)]) == 0
    trained = read_record(model / "provenance.json")
    assert trained["inputs"]["logs"][0]["path"] == str(log.resolve())
    names = {Path(i["path"]).name for i in trained["outputs"]["files"]}
    assert "model.safetensors" in names and "provenance.json" not in names
    report = tmp_path / "v.json"
    argv = ["validate", *SMALL[:6], "--seeds", "1", "--no-interventions", "--quiet"]
    assert cli.main([*argv, "--json", str(report)]) in (0, 1)
    checked = read_record(tmp_path / "v.json.provenance.json")
    assert checked["outputs"]["report"][0]["path"] == str(report.resolve())
    study = tmp_path / "study"
    argv = ["optimize", *SMALL[:4], "--hours", "0.5", "--trials", "1", "--seeds", "1"]
    assert cli.main([*argv, "--quiet", "--out", str(study)]) == 0
    optimised = read_record(study / "provenance.json")
    assert {Path(i["path"]).name for i in optimised["outputs"]["results"]} >= {"pareto.csv"}
    assert optimised["inputs"]["venue"][0]["path"].endswith("concert_hall.json")
    commands = [json.loads(line)["command"] for line in default_ledger().read_text().splitlines()]
    assert commands == ["simulate", "train", "validate", "optimize"]
