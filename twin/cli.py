"""The ``venuetwin`` command line: ``simulate`` a scenario, ``optimize`` its levers,
``train`` and ``evaluate`` the avatar model, ``validate`` the GPT twin against its
reference, build a ``venue from-pois`` of a real place, list the built-in ``venues``.

Bad input (a malformed venue or scenario, an out-of-range option) prints one line naming
the file and the field, exits with status 2, and writes nothing.

Its length: every command of ``venuetwin`` in one place, a parser and a short function
each, so the command line's contract (one-line errors, status 2) is held in one ``main``.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llm.checkpoint import CheckpointError
from llm.fileio import OutputPathError
from llm.logs import LogError
from llm.train import OptionError
from twin import provenance
from twin.export3d import ExportError
from twin.from_pois import PoiError
from twin.provenance import ProvenanceError, load_key
from twin.scenario import POLICIES, Scenario, ScenarioError
from twin.venue import BUILTIN_VENUES, VenueError, load_venue
from twin.whatifs import WHATIFS

#: Errors that are the user's input, not a bug: one line, exit status 2.
INPUT_ERRORS: tuple[type[Exception], ...] = (
    VenueError,
    ScenarioError,
    LogError,
    CheckpointError,
    OptionError,
    PoiError,
    OutputPathError,
    ProvenanceError,
    ExportError,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_outputs(args)  # before any work: a run is not lost to a path it cannot write
        if getattr(args, "sign", None):
            load_key(args.sign)  # nor to a key that cannot sign
        return int(args.run(args) or 0)
    except INPUT_ERRORS as exc:
        message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"venuetwin: error: {message}", file=sys.stderr)  # one line, always
        return 2
    except KeyboardInterrupt:
        print("venuetwin: interrupted; nothing was written", file=sys.stderr)
        return 130


def add_sign_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sign", metavar="KEY", help="sign the provenance record with this Ed25519 key (PEM)"
    )


def record_provenance(
    args: argparse.Namespace,
    where: Path,
    inputs: dict[str, Any],
    outputs: dict[str, Any],
) -> None:
    """Write the run's provenance record and append it to the ledger (``twin.provenance``)."""
    from twin.provenance import argv_now, write_record

    options = {k: v for k, v in vars(args).items() if k not in {"run", "outputs", "sign"}}
    entry = write_record(
        where,
        command=args.command,
        argv=argv_now(),
        options=options,
        inputs=inputs,
        outputs=outputs,
        sign=args.sign,
    )
    print(f"provenance: {where} (ledger entry {entry['seq']})")


def verify_provenance(args: argparse.Namespace) -> int:
    """``venuetwin verify DIR`` / ``--ledger [FILE]``: 0 when all is as recorded, 1 when
    something changed (each change printed), 2 for what cannot be read."""
    from twin.provenance import default_ledger, find_record, verify_ledger, verify_record

    if args.target is None and args.ledger is None:
        raise OptionError("verify: give a run's folder, or --ledger")
    problems: list[str] = []
    if args.ledger is not None:
        ledger = args.ledger or default_ledger()
        count, found = verify_ledger(ledger)
        print(f"ledger {ledger}: {count} entries, " + ("intact" if not found else "BROKEN"))
        problems += found
    if args.target is not None:
        record = find_record(args.target)
        found = verify_record(record, args.ledger or None)
        print(f"{record}: " + ("every file as recorded" if not found else "CHANGED"))
        problems += found
    for problem in problems:
        print(f"  {problem}")
    return 1 if problems else 0


def export_scene(args: argparse.Namespace) -> int:
    from twin.export3d import export_glb

    if not 1 <= args.avatars <= 100_000:
        raise OptionError(f"--avatars must be 1..100000, got {args.avatars}")
    path = export_glb(args.run_dir, args.out, avatars=args.avatars, seed=args.seed)
    print(f"scene: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def make_key(args: argparse.Namespace) -> int:
    from twin.provenance import write_key

    print(f"key: {write_key(args.key)} (keep it private; --sign {args.key})")
    return 0


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse an output option (the command's ``outputs``: option -> file or folder) that
    cannot be written, naming the option."""
    from llm.fileio import check_writable, check_writable_folder

    for dest, kind in getattr(args, "outputs", {}).items():
        value = getattr(args, dest, None)
        if value:
            option = "--" + dest.replace("_", "-")
            (check_writable_folder if kind == "folder" else check_writable)(value, option)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="venuetwin", description="A digital twin of venues whose visitors think with a GPT."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    sim = commands.add_parser("simulate", help="run a scenario and write logs and KPIs")
    add_scenario_arguments(
        sim, "scenario TOML file (default: built-in)", "random seed (same seed, same run)"
    )
    sim.add_argument("--csv", action="store_true", help="write visits.csv instead of Parquet")
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    sim.add_argument("--out", required=True, help="output folder")
    add_sign_argument(sim)
    sim.set_defaults(run=simulate, outputs={"out": "folder"})

    opt = commands.add_parser(
        "optimize", help="tune the venue's levers with Optuna (crowd risk, waits, satisfaction)"
    )
    add_scenario_arguments(
        opt, "scenario TOML file with a [search] table", "first of the seeds every trial runs"
    )
    opt.add_argument("--trials", type=int, required=True, help="completed trials to reach")
    opt.add_argument("--seeds", type=int, default=3, help="runs per trial (common seeds)")
    opt.add_argument("--workers", type=int, default=1, help="worker processes on this machine")
    opt.add_argument("--storage", help="SQLAlchemy URL (default: sqlite in --out)")
    opt.add_argument("--study", help="study name (default: scenario-venue)")
    opt.add_argument("--heartbeat", type=int, help="seconds between a trial's heartbeats (10)")
    opt.add_argument("--quiet", action="store_true", help="no progress bar")
    opt.add_argument("--out", required=True, help="output folder")
    add_sign_argument(opt)
    opt.set_defaults(run=optimize_levers, outputs={"out": "folder"})

    venues = commands.add_parser("venues", help="list the built-in venues")
    venues.set_defaults(run=list_venues)

    from llm.train import add_arguments, add_log_format_arguments

    venue = commands.add_parser("venue", help="build a venue from a real place's data")
    venue_commands = venue.add_subparsers(dest="venue_command", required=True)
    pois = venue_commands.add_parser(
        "from-pois",
        help="a venue JSON from a table of points of interest and their visit logs",
        description="Zones from the POI table (ids as in the log), placed by lat/lon or "
        "x/y; kinds from the themes; streets, entrances, exits, service times and the "
        "crowd from the visits. Prints what was inferred and what was defaulted.",
    )
    pois.add_argument("pois", help="POI table (CSV, ';' or ',' separated: detected)")
    pois.add_argument("--visits", nargs="+", required=True, help="visit logs (CSV or Parquet)")
    add_log_format_arguments(pois)
    pois.add_argument("--poi-id-col", help="POI id column (default: --zone-col's, poiID, id)")
    pois.add_argument("--lat-col", help="latitude column, degrees (default: lat, latitude)")
    pois.add_argument("--lon-col", help="longitude column, degrees (default: lon, long, lng)")
    pois.add_argument("--x-col", help="x column in metres (with --y-col, instead of lat/lon)")
    pois.add_argument("--y-col", help="y column in metres")
    pois.add_argument("--kind-col", help="theme column (default: theme, kind, category, type)")
    pois.add_argument(
        "--kinds",
        help="THEME=KIND,... over the built-in mapping; KIND: a zone kind or 'ride' (a booth "
        "with a queue)",
    )
    pois.add_argument("--duration-col", help="column of a ride's or show's length")
    pois.add_argument("--duration-unit", choices=("min", "s"), default="min")
    pois.add_argument("--name-col", help="display name column (default: poiName, name)")
    pois.add_argument("--poi-sep", help="the POI table's separator (default: detected)")
    pois.add_argument(
        "--unvisited",
        choices=("error", "keep", "drop"),
        default="error",
        help="POIs no visitor went to: refuse (default), keep or drop them",
    )
    pois.add_argument(
        "--entrances", help="POI ids the entrance joins (default: where trajectories begin most)"
    )
    pois.add_argument("--exits", help="POI ids the exit joins (default: where they end most)")
    pois.add_argument(
        "--open",
        metavar="HH:MM-HH:MM",
        help="the place's opening hours, in the time zone of --tz (default: inferred from the "
        "visits' times of day)",
    )
    pois.add_argument("--name", help="the venue's name (default: the POI file's)")
    pois.add_argument(
        "--scenario-out", help="scenario TOML of the crowd (default: beside --out, .toml)"
    )
    pois.add_argument("--out", required=True, help="venue JSON to write")
    pois.set_defaults(run=venue_from_pois, outputs={"out": "file", "scenario_out": "file"})

    train = commands.add_parser("train", help="train or fine-tune the avatar GPT on visit logs")
    add_arguments(train)
    train.add_argument("--venue", help="venue whose zones the model uses (default: the logs')")
    train.add_argument(
        "--nproc", type=int, default=1, help="data-parallel processes on this machine (torchrun)"
    )
    add_sign_argument(train)
    train.set_defaults(run=train_model, outputs={"out": "folder"})

    evaluate = commands.add_parser(
        "evaluate", help="score a model on visitors it was not trained on, beside baselines"
    )
    evaluate.add_argument("checkpoint", help="model.safetensors")
    evaluate.add_argument(
        "logs",
        nargs="+",
        help="visit logs (CSV or Parquet); visitors the model trained on are left out",
    )
    add_log_format_arguments(evaluate, defaults=False)
    evaluate.add_argument(
        "--baseline-logs",
        nargs="+",
        help="logs to fit the Markov baselines on (default: the training visitors of the "
        "training logs named in the checkpoint, else a split of LOGS)",
    )
    evaluate.add_argument("--bleu-trajectories", type=int, default=300)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--json", help="also write the figures as JSON")
    evaluate.set_defaults(run=evaluate_model, outputs={"json": "file"})

    val = commands.add_parser(
        "validate",
        help="how closely the GPT twin behaves like its reference (scripted visitors or a log)",
    )
    val.add_argument("--venue", default="expo", help="built-in venue or venue JSON (expo)")
    val.add_argument("--avatars", type=int, help="visitors (default: the scenario's or the log's)")
    val.add_argument("--hours", type=float, help="length of the event (default: as --avatars)")
    val.add_argument("--seeds", type=int, default=2, help="seeds each side runs (common seeds)")
    val.add_argument("--seed", type=int, default=0, help="the first seed")
    val.add_argument("--model", help="GPT checkpoint (default: the venue's shipped model)")
    val.add_argument(
        "--reference",
        nargs="+",
        default=["scripted"],
        help="'scripted' (the scripted visitors, same scenario and seeds) or visit logs",
    )
    add_log_format_arguments(val, defaults=False)
    val.add_argument(
        "--open",
        metavar="HH:MM-HH:MM",
        help="against a log: the place's opening hours (default: inferred from the visits)",
    )
    val.add_argument("--scenario", help="scenario TOML file to start from (default: built-in)")
    val.add_argument("--no-interventions", action="store_true", help="skip the what-ifs")
    val.add_argument(
        "--interventions",
        type=lambda text: [k.strip() for k in text.split(",") if k.strip()],
        help="the what-ifs to run, comma-separated (default: all): " + ", ".join(WHATIFS),
    )
    val.add_argument("--workers", type=int, default=1, help="worker processes on this machine")
    val.add_argument("--json", required=True, help="write the report as JSON")
    val.add_argument("--html", help="also write the report as an HTML page (plotly)")
    val.add_argument(
        "--strict", action="store_true", help="exit with status 1 when a target is missed"
    )
    val.add_argument("--quiet", action="store_true", help="no progress bar")
    add_sign_argument(val)
    val.set_defaults(run=validate_twin, outputs={"json": "file", "html": "file"})

    verify = commands.add_parser(
        "verify", help="check a run's files against its provenance record, or the ledger"
    )
    verify.add_argument(
        "target",
        nargs="?",
        metavar="RUN",
        help="a run's folder (its provenance.json) or a record file",
    )
    verify.add_argument(
        "--ledger",
        nargs="?",
        const="",
        help="check the whole ledger's chain (default: $VENUETWIN_LEDGER or the user's)",
    )
    verify.set_defaults(run=verify_provenance)

    export = commands.add_parser(
        "export", help="a run as a 3D scene (glTF 2.0 binary) for 3D and VR tools"
    )
    export.add_argument("run_dir", metavar="RUN_DIR", help="a run's folder (venuetwin simulate)")
    export.add_argument("--format", choices=["glb"], default="glb", help="glb (glTF 2.0 binary)")
    export.add_argument("--avatars", type=int, default=500, help="avatars drawn (a sample; 500)")
    export.add_argument("--seed", type=int, default=0, help="which avatars the sample takes")
    export.add_argument("--out", required=True, help="the .glb file to write")
    export.set_defaults(run=export_scene, outputs={"out": "file"})

    keygen = commands.add_parser("keygen", help="write a new Ed25519 key for --sign")
    keygen.add_argument("key", help="PEM file to write (readable by you only)")
    keygen.set_defaults(run=make_key, outputs={"key": "file"})

    vocab = commands.add_parser("vocab", help="write a venue's zone vocabulary as JSON")
    vocab.add_argument("venue", help="built-in venue or venue JSON")
    vocab.add_argument("--out", required=True, help="vocabulary JSON file")
    vocab.set_defaults(run=write_vocab, outputs={"out": "file"})
    return parser


def add_scenario_arguments(parser: argparse.ArgumentParser, scenario: str, seed: str) -> None:
    """A scenario file and the overrides of its commonest fields (``scenario_from_args``)."""
    parser.add_argument("scenario", nargs="?", help=scenario)
    parser.add_argument("--venue", help=f"built-in venue ({', '.join(BUILTIN_VENUES)}) or JSON")
    parser.add_argument("--avatars", type=int, help="number of visitors")
    parser.add_argument("--hours", type=float, help="length of the event")
    parser.add_argument("--policy", choices=POLICIES, help="how avatars decide (default: gpt)")
    parser.add_argument(
        "--model", help="GPT checkpoint the avatars decide with (default: the venue's shipped one)"
    )
    parser.add_argument("--seed", type=int, help=seed)


def venue_from_pois(args: argparse.Namespace) -> int:
    """Build a venue (and its scenario) from a POI table and visit logs; print what was
    inferred and defaulted."""
    from llm.fileio import check_writable
    from llm.train import columns_from_args
    from twin.from_pois import PoiColumns, build_venue, parse_kinds
    from twin.log_crowd import parse_open

    out = Path(args.out)
    scenario_out = Path(args.scenario_out) if args.scenario_out else out.with_suffix(".toml")
    if out.suffix.lower() != ".json":
        raise OptionError(f"--out: {out}: a venue is written as .json")
    if scenario_out.resolve() == out.resolve():
        raise OptionError(f"--scenario-out: {scenario_out} is --out itself")
    for path, option in ((out, "--out"), (scenario_out, "--scenario-out")):
        check_writable(path, option)

    def ids(text: str | None) -> list[str] | None:
        return [t.strip() for t in text.split(",") if t.strip()] if text else None

    built = build_venue(
        args.pois,
        args.visits,
        log_columns=columns_from_args(args),
        poi_columns=PoiColumns(
            poi_id=args.poi_id_col,
            lat=args.lat_col,
            lon=args.lon_col,
            x=args.x_col,
            y=args.y_col,
            kind=args.kind_col,
            duration=args.duration_col,
            duration_unit=args.duration_unit,
            name=args.name_col,
            sep=args.poi_sep,
        ),
        kinds=parse_kinds(args.kinds),
        unvisited=args.unvisited,
        entrances=ids(args.entrances),
        exits=ids(args.exits),
        name=args.name,
        venue_path=str(out),
        hours=parse_open(args.open) if args.open else None,
    )
    for warning in built.warnings:
        print(f"venuetwin: warning: {warning}", file=sys.stderr)
    venue = built.venue
    print(f"{venue.name}: {venue.n_zones} zones, {len(venue.edge_list)} passages")
    for line in built.summary:
        print(f"  {line}")
    venue.save(out)
    built.scenario.to_toml(scenario_out)
    print(f"   venue: {out}\nscenario: {scenario_out}")
    return 0


def write_vocab(args: argparse.Namespace) -> int:
    from llm.fileio import write_text_atomic

    write_text_atomic(args.out, load_venue(args.venue).vocabulary().dumps() + "\n")
    print(args.out)
    return 0


def train_model(args: argparse.Namespace) -> int:
    import subprocess

    from llm.train import run_from_args

    vocab = load_venue(args.venue).vocabulary() if args.venue else None
    if args.nproc < 1:
        raise OptionError("--nproc must be at least 1")
    if args.nproc == 1:
        summary = run_from_args(args, vocab)
    else:
        from llm.fileio import write_text_atomic
        from llm.train import configs_from_args

        configs_from_args(args)  # refuse bad options before starting processes
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={args.nproc}",
            "-m",
            "llm.train",
            *forwarded(args),
        ]
        if vocab is not None:
            vocab_file = Path(args.out) / "vocab.json"
            write_text_atomic(vocab_file, vocab.dumps() + "\n")
            command += ["--vocab", str(vocab_file)]
        done = subprocess.run(command, check=False)
        if done.returncode != 0:
            return 2 if done.returncode == 2 else 1
        import json

        summary = json.loads((Path(args.out) / "metrics.json").read_text())
    ppl = summary.get("best_val_perplexity")
    print(
        f"trained {summary['steps']} steps on {summary['train_visits']:,} visits "
        f"({summary['world_size']} process(es), {summary['wall_s']} s); "
        f"validation perplexity {ppl:.3f}"
        if ppl
        else "no validation improvement"
    )
    print(f"  model: {args.out}/model.safetensors\nmetrics: {args.out}/metrics.json")
    out = Path(args.out)
    inputs = {
        "logs": args.logs,
        "init": args.init,
        "programme": args.programme,
        "capacities": args.capacities,
    }
    if args.venue:
        inputs |= provenance.scenario_inputs(Scenario(venue=args.venue, policy="scripted"), None)
    outputs = {"files": sorted(p for p in out.iterdir() if p.is_file() and p.name[0] != ".")}
    outputs["files"] = [p for p in outputs["files"] if p.name != "provenance.json"]
    record_provenance(args, out / "provenance.json", inputs, outputs)
    return 0


def forwarded(args: argparse.Namespace) -> list[str]:
    """The training options again, as command-line words for ``llm.train``."""
    words = [*args.logs, "--out", args.out]
    for column in args.id_col or []:
        words += ["--id-col", column]
    for column in args.attr_col or []:
        words += ["--attr-col", column]
    for name in (
        "time_col",
        "zone_col",
        "session_col",
        "sep",
        "tz",
        "programme",
        "test_fraction",
        "init",
        "epochs",
        "max_steps",
        "batch_size",
        "grad_accum",
        "lr",
        "eval_every",
        "checkpoint_every",
        "patience",
        "seed",
        "n_layer",
        "n_head",
        "n_embd",
        "block_size",
        "dropout",
    ):
        value = getattr(args, name)
        if value is not None:
            words += [f"--{name.replace('_', '-')}", str(value)]
    words += ["--resume"] if args.resume else []
    words += ["--quiet"] if args.quiet else []
    return words


def evaluate_model(args: argparse.Namespace) -> int:
    """Score a checkpoint on the visitors of LOGS it was not trained on, beside Markov and
    popularity baselines (``llm.evaluate.evaluate_checkpoint``)."""
    import json

    from llm import checkpoint
    from llm.evaluate import evaluate_checkpoint, format_table
    from llm.fileio import write_text_atomic
    from llm.logs import Columns
    from llm.train import columns_from_args

    ckpt = checkpoint.load(args.checkpoint)
    stored = ckpt.training.get("log_format")
    columns = columns_from_args(args, Columns.from_json(stored) if stored else None)
    result = evaluate_checkpoint(
        ckpt,
        args.logs,
        columns,
        baseline_logs=args.baseline_logs,
        seed=args.seed,
        bleu_trajectories=args.bleu_trajectories,
    )
    print(format_table(result))
    scored = result["scored"]
    print(
        f"scored {scored['trajectories']:,} trajectories of {scored['visitors']:,} visitors"
        f" ({scored['left_out_visitors']:,} left out: the model trained on them); baselines "
        f"fitted on the {result['baselines_fitted_on']}"
    )
    if args.json:
        write_text_atomic(args.json, json.dumps(result, indent=2) + "\n")
    return 0


def validate_twin(args: argparse.Namespace) -> int:
    """Run the GPT twin beside its reference and write the fidelity report."""
    import json

    from llm.fileio import write_text_atomic
    from llm.train import columns_from_args
    from twin.log_crowd import parse_open
    from twin.validate import validate
    from twin.validate_report import (
        attendance_rows,
        html,
        intervention_rows,
        log_text,
        readable_table,
        zone_rows,
    )

    if args.workers < 1:
        raise OptionError("--workers must be at least 1")
    if args.avatars is not None and args.avatars < 1:
        raise OptionError("--avatars must be at least 1")
    if args.hours is not None and args.hours <= 0:
        raise OptionError("--hours must be positive")
    reference = "scripted" if args.reference == ["scripted"] else args.reference
    if args.open and reference == "scripted":
        raise OptionError("--open: only against a log (--reference LOGS)")
    opening_hours = parse_open(args.open) if args.open else None
    if args.model is not None:
        from llm import checkpoint

        checkpoint.read_metadata(args.model)  # refuse a bad checkpoint before running
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(unit="run", desc="runs")

    def done(n: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.n = n
            bar.refresh()

    report = validate(
        args.venue,
        avatars=args.avatars,
        hours=args.hours,
        seeds=args.seeds,
        first_seed=args.seed,
        model=args.model,
        reference=reference,
        columns=columns_from_args(args),
        with_interventions=not args.no_interventions,
        intervention_keys=args.interventions,
        workers=args.workers,
        scenario=Scenario.from_toml(args.scenario) if args.scenario else None,
        opening_hours=opening_hours,
        on_done=done,
    )
    if bar is not None:
        bar.close()
    write_text_atomic(args.json, json.dumps(report, indent=2, default=float) + "\n")
    if args.html:
        write_text_atomic(args.html, html(report))
    report_path = Path(args.json)
    base = Scenario(venue=args.venue, policy="gpt", model=args.model)
    inputs = provenance.scenario_inputs(base, args.scenario)
    if reference != "scripted":
        inputs["reference"] = list(reference)
    record_provenance(
        args,
        report_path.with_name(report_path.name + ".provenance.json"),
        inputs,
        {"report": args.json, "html": args.html},
    )
    print(
        f"{report['venue']}: GPT twin against {report['reference']}, "
        f"{report['avatars']:,} visitors, {report['hours']} h, seeds {report['seeds']}"
    )
    if report.get("log"):
        print(textwrap.fill(log_text(report), 92, initial_indent="  ", subsequent_indent="  "))
    print(f"  {'figure':<42} {'error':>9} {'noise floor':>11}  {'target':<13} status")
    for row in readable_table(report):
        print(
            f"  {row['figure']:<42} {row['difference']:>9} {row['noise floor']:>11}  "
            f"{row['target']:<13} {row['status']}"
        )
    for row in attendance_rows(report):
        print(
            f"  attendance at {row['stage']}, {row['who']:<10} {row['twin']:>7.1%} vs "
            f"{row['reference']:>6.1%}  {'met' if row['met'] else 'MISSED'}"
        )
    for row in intervention_rows(report):
        ratio = f"{row['ratio']:.2f}" if row["ratio"] is not None else "—"
        print(
            f"  {row['intervention'] + ': ' + row['kpi']:<70} ratio {ratio:>6}  "
            f"{'met' if row['met'] else 'MISSED'}{' (within noise)' if row['within_noise'] else ''}"
        )
    for item in report["interventions"]:
        for of, what in (("zone_visits", "visits"), ("zone_crowd_risk", "crowd risk")):
            apart = ", ".join(
                f"{r['zone']} {r['twin']:+,.0f} vs {r['reference']:+,.0f}"
                for r in zone_rows(item, 3, of)
            )
            if apart:
                print(f"  {item['name']}: {what} most apart: {apart}")
    verdict = report["passed"]
    cells = verdict["intervention_cells"]
    if cells["of"]:
        print(f"{cells['met']} of {cells['of']} intervention cells met")
    noisy = f"; {len(verdict['too_noisy'])} too noisy to tell" if verdict["too_noisy"] else ""
    print(f"{sum(verdict['figures'].values())} of {len(verdict['figures'])} targets met{noisy}")
    for name in ("json", "html"):
        if getattr(args, name):
            print(f"{name:>5}: {getattr(args, name)}")
    return 1 if args.strict and not verdict["all"] else 0


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    """The scenario file (or the default scenario) with the command line's overrides."""
    scenario = Scenario.from_toml(args.scenario) if args.scenario else Scenario()
    source = args.scenario or "command line"
    overrides: dict[str, Any] = {
        key: getattr(args, key)
        for key in ("venue", "avatars", "hours", "policy", "model", "seed")
        if getattr(args, key) is not None
    }
    data = scenario.to_dict() | overrides
    return Scenario.from_dict(data, source)


def simulate(args: argparse.Namespace) -> int:
    from llm.fileio import check_writable
    from twin.model import VenueModel
    from twin.output import clear_leftovers, write_run

    scenario = scenario_from_args(args)
    started = time.perf_counter()
    check_writable(Path(args.out) / "visits.parquet", "--out")
    clear_leftovers(args.out)  # of a run killed outright in this folder
    model = VenueModel(scenario, stream_visits=args.out)  # the log on disk as it grows
    try:
        model.run(progress=not args.quiet)
        elapsed = time.perf_counter() - started
        paths = write_run(model, args.out, csv=args.csv)
    finally:
        model.crowd.log.close()  # its parts, written or not
    record_provenance(
        args,
        Path(args.out) / "provenance.json",
        provenance.scenario_inputs(scenario, args.scenario),
        paths,
    )
    print_kpis(model.kpis(), elapsed)
    for name, path in paths.items():
        print(f"{name:>7}: {path}")
    return 0


def optimize_levers(args: argparse.Namespace) -> int:
    from twin.optimize import HEARTBEAT_S, optimize
    from twin.study_results import write_results

    scenario = scenario_from_args(args)
    started = time.perf_counter()
    study = optimize(
        scenario,
        trials=args.trials,
        out=args.out,
        seeds=args.seeds,
        workers=args.workers,
        storage=args.storage,
        study_name=args.study,
        progress=not args.quiet,
        heartbeat_s=HEARTBEAT_S if args.heartbeat is None else args.heartbeat,
        source=args.scenario or "command line",
    )
    summary = write_results(study, args.out)
    print(f"study {summary['study']}: {summary['trials']} in {time.perf_counter() - started:.0f} s")
    print(f"Pareto front: {len(summary['pareto_trials'])} of {summary['feasible']} feasible trials")
    for name, best in summary["best"].items():
        spread = best[f"{name}_std"]
        print(f"  best {name}: trial {best['trial']} = {best[name]:.4g} (sd {spread:.3g})")
    results = ("pareto.csv", "trials.csv", "best.toml", "summary.json", "report.html")
    for name in results:
        if (Path(args.out) / name).exists():
            print(f"{name:>13}: {Path(args.out) / name}")
    record_provenance(
        args,
        Path(args.out) / "provenance.json",
        provenance.scenario_inputs(scenario, args.scenario),
        {"results": [Path(args.out) / name for name in results]},
    )
    return 0


def print_kpis(kpis: dict[str, Any], elapsed_s: float) -> None:
    rows = [
        ("venue", kpis["venue"]),
        ("policy", kpis["policy"]),
        ("avatars", f"{kpis['avatars']:,} ({kpis['inside_at_end']:,} inside at the end)"),
        ("mean wait", f"{kpis['mean_wait_s']:.1f} s (p95 {kpis['p95_wait_s']:.1f} s)"),
        ("mean gate wait", f"{kpis['mean_gate_wait_s']:.1f} s"),
        ("level E/F", f"{kpis['person_minutes_los_ef']:,.0f} person-minutes"),
        ("peak density", f"{kpis['peak_density']:.2f} p/m2 ({kpis['peak_density_zone']})"),
        ("satisfaction", f"{kpis['mean_satisfaction']:.3f} (mean)"),
        ("wall time", f"{elapsed_s:.1f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:>{width}}  {value}")


def list_venues(args: argparse.Namespace) -> int:
    for name in BUILTIN_VENUES:
        venue = load_venue(name)
        kinds = sorted(set(venue.kinds))
        counts = ", ".join(f"{venue.kinds.count(k)} {k}" for k in kinds)
        print(f"{name:<14} {venue.n_zones:>3} zones  {venue.area.sum():>8,.0f} m2  ({counts})")
        description = venue.graph.graph.get("description")
        if description:
            print(f"{'':<14} {description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
