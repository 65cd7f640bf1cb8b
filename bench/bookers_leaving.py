"""Do GPT avatars send home visitors whose booked show is still to come? Teacher-forced.

    .venv/bin/python bench/bookers_leaving.py --venue expo [--models A.safetensors B ...]

Simulates the scripted visitors of a venue's design day (plain, and with a what-if,
``headline_later`` by default), reads each log as a model reads it (its programme, the
show states at each choice) and, at every decision of a visitor who booked the headline
and whose headline starts in 15-60 minutes, compares the model's chance of heading out
(the sum over the exits) with how often the log's visitor did, by places seen in the
context and by whether the headline's stage was full at the choice (each day read with its
capacities, as the twin shows them live). Each log's decisions are those of its visitors:
no avatar is run, so the gap is the model's own, not the twin's (issue 25, tenth to twelfth
parts, in bench/README.md).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from llm import checkpoint
from llm.data import blocks, read_sequences
from llm.features import FULL_OPTION, SHOW_STATES, WANTED_IN_MIN, show_grace_s
from llm.logs import Columns
from twin.catalog import MODELS_DIR
from twin.model import VenueModel
from twin.scenario import Scenario
from twin.shipped import AVATARS, HOURS, capacities_of, programme_of
from twin.whatifs import WHATIFS, interventions

#: "wanted in 15-20 min" .. "wanted in 50-60 min": the headline is the booker's next show.
WINDOW_STATES = [
    SHOW_STATES.index(f"wanted in {lo}-{hi} min")
    for lo, hi in zip(WANTED_IN_MIN[:-1], WANTED_IN_MIN[1:], strict=True)
    if hi <= 60
]
SEEN = ((0, 8), (8, 12), (12, 10_000))


def decisions(log: Path, day: Scenario, path: Path) -> np.ndarray:
    """(n, 4): the model's P(heading out), whether the visitor did, the position in the
    context and whether the headline's stage was full, at each decision of a headline booker
    15-60 minutes before the headline."""
    ckpt = checkpoint.load(path)
    stored = ckpt.training.get("log_format")
    columns = Columns.from_json(stored) if stored else Columns()
    grace = show_grace_s(ckpt.model.config.n_show_states)
    # Read with the day's capacities, as the twin shows them live: a full zone is full to
    # a model that knows it, crowd F with the longest queue to one that does not.
    seqs = read_sequences([log], ckpt.vocab, columns, programme_of(day), capacities_of(day), grace)
    data = blocks(seqs, ckpt.model.config.block_size)
    headline = next(s for s in day.programme(day.load_venue()) if s.headline)
    stage = ckpt.vocab.index[headline.stage]
    exits = torch.from_numpy(np.asarray(ckpt.vocab.kinds) == "exit")
    window = torch.tensor(WINDOW_STATES)
    model = ckpt.model.eval()
    rows = []
    targets = ("options", "next_zone", "next_dwell", "next_show_end", "length")
    with torch.no_grad():
        for lo in range(0, len(data["length"]), 512):
            part = {k: v[lo : lo + 512] for k, v in data.items()}
            tokens = {k: v for k, v in part.items() if k not in targets}
            probs = torch.softmax(model(tokens, part["options"]).zone_logits.float(), dim=-1)
            nxt = part["next_zone"]
            keep = (nxt >= 0) & torch.isin(part["shows"][..., stage].long(), window)
            position = torch.arange(nxt.shape[1]).expand_as(nxt)
            rows.append(
                np.stack(
                    [
                        probs[..., exits].sum(-1)[keep].numpy(),
                        exits[nxt[keep]].numpy().astype(float),
                        position[keep].numpy(),
                        (part["options"][..., stage][keep] >= FULL_OPTION).numpy(),
                    ],
                    axis=1,
                )
            )
    return np.concatenate(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venue", default="expo", choices=sorted(AVATARS))
    parser.add_argument("--models", nargs="+", type=Path, help="default: the shipped model")
    parser.add_argument("--whatif", default="headline_later", choices=sorted(WHATIFS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    models = args.models or [MODELS_DIR / f"{args.venue}.safetensors"]
    base = Scenario(
        venue=args.venue,
        avatars=AVATARS[args.venue],
        hours=HOURS[args.venue],
        seed=args.seed,
        policy="scripted",
    )
    whatif = interventions(base.load_venue(), base, [args.whatif])
    days = {"plain": base, **({args.whatif: whatif[0].apply(base)} if whatif else {})}
    heads = " | ".join(f"{lo}-{hi - 1} seen" if hi < 10_000 else f"{lo}+ seen" for lo, hi in SEEN)
    print(f"| day | model | decisions | P(out) model / log | {heads} | stage full | not full |")
    print("| --- " * (6 + len(SEEN)) + "|")
    with tempfile.TemporaryDirectory(prefix="bookers-") as tmp:
        for name, day in days.items():
            log = Path(tmp) / f"{name}.parquet"
            VenueModel(day).run().visits().to_parquet(log)
            for path in models:
                r = decisions(log, day, path)
                cells = [f"{r[:, 0].mean():.4f} / {r[:, 1].mean():.4f}"]
                parts = [(r[:, 2] >= lo) & (r[:, 2] < hi) for lo, hi in SEEN]
                for m in [*parts, r[:, 3] == 1, r[:, 3] == 0]:
                    cells.append(f"{r[m, 0].mean():.3f} / {r[m, 1].mean():.3f}" if m.any() else "-")
                print(f"| {name} | {path} | {len(r):,} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
