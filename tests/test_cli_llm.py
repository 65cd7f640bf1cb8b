"""``venuetwin train`` / ``evaluate`` / ``vocab``: outputs, figures and exit statuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from llm import checkpoint
from llm.features import N_SHOW_STATES
from twin import Scenario, VenueModel, cli

TINY = ["--n-layer", "1", "--n-embd", "32", "--n-head", "2", "--block-size", "64", "--quiet"]


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("logs")
    model = VenueModel(
        Scenario(venue="concert_hall", avatars=500, hours=2.0, seed=2, policy="scripted")
    ).run()
    model.visits().to_parquet(folder / "visits.parquet")
    model.visits().rename(columns={"avatar_id": "guest", "zone": "room"}).to_csv(
        folder / "renamed.csv", index=False
    )
    return folder


def test_train_then_evaluate(logs: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "model"
    code = cli.main(
        [
            "train",
            str(logs / "visits.parquet"),
            "--venue",
            "concert_hall",
            "--max-steps",
            "40",
            "--eval-every",
            "20",
            *TINY,
            "--out",
            str(out),
        ]
    )
    assert code == 0
    ckpt = checkpoint.load(out / "model.safetensors")
    assert ckpt.vocab.source == "venue:concert_hall" and len(ckpt.vocab) == 13
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 40 and metrics["best_val_perplexity"] > 1
    capsys.readouterr()

    report = tmp_path / "eval.json"
    code = cli.main(
        [
            "evaluate",
            str(out / "model.safetensors"),
            str(logs / "visits.parquet"),
            "--bleu-trajectories",
            "40",
            "--json",
            str(report),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "markov2" in printed and "perplexity" in printed
    result = json.loads(report.read_text())
    for row in [result, *result["baselines"].values()]:
        assert {"perplexity", "acc1", "acc5", "bleu4"} <= set(row)
        assert row["perplexity"] >= 1 and 0 <= row["acc1"] <= row["acc5"] <= 1
    assert set(result["baselines"]) == {"markov1", "markov2", "popular"}


def test_fine_tune_from_another_venue(logs: Path, tmp_path: Path) -> None:
    expo = tmp_path / "expo.parquet"
    VenueModel(
        Scenario(venue="expo", avatars=200, hours=1.5, seed=1, policy="scripted")
    ).run().visits().to_parquet(expo)
    assert (
        cli.main(
            [
                "train",
                str(expo),
                "--venue",
                "expo",
                "--max-steps",
                "10",
                *TINY,
                "--out",
                str(tmp_path / "expo"),
            ]
        )
        == 0
    )
    assert (
        cli.main(
            [
                "train",
                str(logs / "visits.parquet"),
                "--venue",
                "concert_hall",
                "--init",
                str(tmp_path / "expo" / "model.safetensors"),
                "--max-steps",
                "10",
                "--quiet",
                "--out",
                str(tmp_path / "hall"),
            ]
        )
        == 0
    )
    source = checkpoint.load(tmp_path / "expo" / "model.safetensors")
    tuned = checkpoint.load(tmp_path / "hall" / "model.safetensors")
    assert len(tuned.vocab) == 13 and tuned.model.config.n_embd == 32
    assert tuned.training["init"].endswith("model.safetensors")
    assert not torch.equal(source.model.kind_emb.weight, tuned.model.kind_emb.weight)


def test_column_mapping(logs: Path, tmp_path: Path) -> None:
    args = [
        "train",
        str(logs / "renamed.csv"),
        "--venue",
        "concert_hall",
        "--max-steps",
        "5",
        *TINY,
        "--out",
        str(tmp_path / "m"),
    ]
    assert cli.main([*args, "--id-col", "guest", "--zone-col", "room"]) == 0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("avatar_id,timestamp,zone\n"), "the log is empty"),
        (
            lambda p: p.write_text("avatar_id,time,zone\n1,0,foyer\n2,5,foyer\n"),
            "column 'timestamp' is missing",
        ),
        (
            lambda p: p.write_text("avatar_id,timestamp,zone\n1,0,foyer\n2,yesterday,foyer\n"),
            "row 2, column 'timestamp'",
        ),
        (
            lambda p: p.write_text("avatar_id,timestamp,zone\n1,0,foyer\n2,5,atrium\n"),
            "zone 'atrium' is not in venue",
        ),
        (
            lambda p: p.write_text("avatar_id,timestamp,zone\n1,0,foyer\n1,5,main_hall\n"),
            "need at least 2",
        ),
    ],
)
def test_bad_logs_exit_2_and_write_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    make,
    message: str,  # noqa: ANN001
) -> None:
    log = tmp_path / "log.csv"
    make(log)
    out = tmp_path / "out"
    code = cli.main(["train", str(log), "--venue", "concert_hall", *TINY, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "log.csv" in err and "\n" not in err
    assert not out.exists()


def test_bad_checkpoint_exit_2(tmp_path: Path, logs: Path, capsys: pytest.CaptureFixture) -> None:
    fake = tmp_path / "model.safetensors"
    torch.save({"weights": torch.zeros(3)}, fake)  # a pickle in disguise
    assert cli.main(["evaluate", str(fake), str(logs / "visits.parquet")]) == 2
    assert "not a safetensors file" in capsys.readouterr().err


def test_vocab_command(tmp_path: Path) -> None:
    out = tmp_path / "vocab.json"
    assert cli.main(["vocab", "expo", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert len(data["names"]) == 37 and data["source"] == "venue:expo"


@pytest.mark.slow
def test_train_with_two_processes(logs: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    code = cli.main(
        [
            "train",
            str(logs / "visits.parquet"),
            "--venue",
            "concert_hall",
            "--nproc",
            "2",
            "--max-steps",
            "6",
            *TINY,
            "--out",
            str(out),
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert metrics["replica_digests"][0] == metrics["replica_digests"][1]
    assert checkpoint.load(out / "model.safetensors").vocab.source == "venue:concert_hall"


def test_train_with_a_programme_and_attributes(logs: Path, tmp_path: Path, capsys) -> None:
    """``--programme`` makes a model that sees the shows (kept in the checkpoint, read
    again by evaluate); a bad programme or attribute column is one line and status 2."""
    shows = tmp_path / "shows.csv"
    shows.write_text("stage,start,end\nmain_hall,18:45,19:30\n")
    out = tmp_path / "model"
    base = ["train", str(logs / "visits.parquet"), "--venue", "concert_hall", *TINY]
    code = cli.main([*base, "--max-steps", "20", "--programme", str(shows), "--out", str(out)])
    assert code == 0
    ckpt = checkpoint.load(out / "model.safetensors")
    assert ckpt.model.config.n_show_states == N_SHOW_STATES and ckpt.model.config.n_profile > 0
    assert ckpt.training["programme"]["stages"] == ["main_hall"]
    assert cli.main(["evaluate", str(out / "model.safetensors"), str(logs / "visits.parquet"),
                     "--bleu-trajectories", "5"]) == 0  # fmt: skip
    capsys.readouterr()
    bad = tmp_path / "bad.csv"
    bad.write_text("stage,start\nmain_hall,18:45\n")
    code = cli.main([*base, "--programme", str(bad), "--out", str(tmp_path / "no")])
    err = capsys.readouterr().err
    assert code == 2 and "bad.csv: missing column(s) end" in err and "\n" not in err.strip()
    code = cli.main([*base, "--attr-col", "ticket", "--out", str(tmp_path / "no")])
    err = capsys.readouterr().err
    assert code == 2 and "attribute column 'ticket' is missing" in err
    assert not (tmp_path / "no").exists()


def test_train_with_the_days_capacities(logs: Path, tmp_path: Path, capsys) -> None:
    """``--capacities`` makes a model that sees full zones (kept in the checkpoint and
    read again by evaluate); a bad file, or a zone the venue lacks, is one line naming it
    and status 2, and nothing is written."""
    from llm.features import N_OPTION_STATES

    caps = tmp_path / "caps.csv"
    caps.write_text("zone,capacity\nfoyer_bar,0\nmain_hall,1800\n")
    out = tmp_path / "model"
    base = ["train", str(logs / "visits.parquet"), "--venue", "concert_hall", *TINY]
    code = cli.main([*base, "--max-steps", "10", "--capacities", str(caps), "--out", str(out)])
    assert code == 0
    ckpt = checkpoint.load(out / "model.safetensors")
    assert ckpt.model.config.n_options == N_OPTION_STATES
    assert ckpt.training["capacities"] == {"foyer_bar": 0.0, "main_hall": 1800.0}
    assert cli.main(["evaluate", str(out / "model.safetensors"), str(logs / "visits.parquet"),
                     "--bleu-trajectories", "5"]) == 0  # fmt: skip
    capsys.readouterr()
    for text, message in (
        ("zone,cap\nfoyer_bar,0\n", "bad.csv: missing column(s) capacity"),
        ("zone,capacity\nfoyer_bar,-3\n", "bad.csv: row 2, column 'capacity': '-3' is not"),
        ("zone,capacity\nfoyer_bar,lots\n", "bad.csv: row 2, column 'capacity': 'lots'"),
        ("zone,capacity\nroof_bar,10\n", "capacities: zone 'roof_bar' is not in the vocabulary"),
    ):
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        code = cli.main([*base, "--capacities", str(bad), "--out", str(tmp_path / "no")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "\n" not in err.strip(), err
    assert not (tmp_path / "no").exists()
