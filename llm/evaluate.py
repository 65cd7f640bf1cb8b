"""How good is a model of visitors? Next-move metrics and trajectory BLEU against baselines.

Every visit of a held-out ``Sequences`` that has a next visit is a *target*: the model sees
the trajectory so far and predicts the next visit's zone and dwell bucket. Visits are to
places (corridors are walked through: ``llm.data.encode``), so the next zone is the next
place the visitor went to, one of ``ZoneVocab.destinations``. The metrics:

- ``perplexity``: ``exp`` of the mean negative log-likelihood of the true next zone (1 is
  perfect; a uniform guess over the places that can come next scores about their number);
- ``acc1`` / ``acc5``: the true next zone is the most likely one / among the five most likely
  (ties broken by zone index, as ``argmax`` does);
- ``ndcg5``: normalised discounted cumulative gain of the five most likely, ``1 / log2(rank
  + 2)`` when the true next zone is at ``rank`` (0-based) among them, else 0;
- ``dwell_acc``: the predicted dwell bucket of the next visit is the true one; the prediction
  is made for the *predicted* (top-1) next zone, since the true one is unknown at that time;
- ``dwell_mae_s``: mean absolute error in seconds between the predicted bucket's typical
  dwell (``DWELL_CENTRES_S``) and the next visit's true dwell;
- ``bleu4``: BLEU-4 (nltk ``corpus_bleu``, smoothed) of whole trajectories sampled from the
  first visit of held-out ones, zone names as words, against the held-out trajectories that
  start at the same entrance.

Baselines are fitted on the training ``Sequences`` only (``llm.markov``): ``PopularBaseline``
(how often each zone is the next one, restricted to the places that can come next) and
``MarkovBaseline`` of order 1 or 2 (Witten-Bell smoothing towards the next lower order, down
to the popularity).
All predictors share ``predict(seqs) -> (log_probs, dwell_pred)`` and ``sample(seqs, which,
max_len, seed)``; ``GPTPredictor`` wraps a ``llm.model.GPT`` in the same interface.
``evaluate`` runs them all and ``format_table`` prints the result.

Its length: every metric, BLEU, the GPT predictor and ``evaluate_checkpoint`` (which
visitors are scored, which fit the baselines) read together, as one report is made.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu

from llm.checkpoint import Checkpoint
from llm.data import Sequences, blocks, read_sequences, split, visitor_digests
from llm.features import (
    DWELL_CENTRES_S,
    FEATURES,
    FULL_OPTION,
    N_DWELL,
    TOD_BUCKET_S,
    UNTIL_SHOW_ENDS,
    Capacities,
    Programme,
    dwell_bucket,
    needs_met,
    show_grace_s,
    visit_features,
)
from llm.logs import Columns, LogError
from llm.markov import MarkovBaseline, PopularBaseline
from llm.model import GPT
from llm.targets import stop_zones, target_positions
from llm.vocab import ZoneVocab

#: Seconds of walking assumed between two sampled visits.
WALK_S = 30.0
#: Longest sampled trajectory, in visits (also at most twice the longest held-out one).
MAX_SAMPLE_LEN = 128
#: References per hypothesis in BLEU.
MAX_REFERENCES = 50
#: Metric keys, in table order.
METRICS = ("perplexity", "acc1", "acc5", "ndcg5", "dwell_acc", "dwell_mae_s", "bleu4")
BASELINES = ("markov1", "markov2", "popular")


# ============================================================================ metrics
def next_move_metrics(
    log_probs: np.ndarray, dwell_pred: np.ndarray, seqs: Sequences
) -> dict[str, float]:
    """Perplexity, top-1/top-5 accuracy and dwell accuracy/MAE of predictions aligned with
    ``target_positions(seqs)``: ``log_probs`` (n_targets, Z), ``dwell_pred`` (n_targets,)."""
    pos = target_positions(seqs)
    if log_probs.shape[0] != len(pos) or dwell_pred.shape[0] != len(pos):
        raise ValueError(f"predictions for {log_probs.shape[0]} targets, expected {len(pos)}")
    if len(pos) == 0:
        raise ValueError("the held-out sequences have no visit with a next visit")
    true = seqs.features["zone"][pos + 1]
    true_lp = log_probs[np.arange(len(pos)), true]
    above = (log_probs > true_lp[:, None]).sum(axis=1)
    tied_before = (
        (log_probs == true_lp[:, None]) & (np.arange(log_probs.shape[1]) < true[:, None])
    ).sum(axis=1)
    rank = above + tied_before
    with np.errstate(over="ignore"):
        perplexity = float(np.exp(-np.mean(true_lp.astype(np.float64))))
    centres = np.asarray(DWELL_CENTRES_S, dtype=np.float64)
    return {
        "perplexity": perplexity,
        "acc1": float(np.mean(rank < 1)),
        "acc5": float(np.mean(rank < 5)),
        "ndcg5": float(np.mean(np.where(rank < 5, 1.0 / np.log2(rank + 2.0), 0.0))),
        "dwell_acc": float(np.mean(dwell_pred == seqs.features["dwell"][pos + 1])),
        "dwell_mae_s": float(np.mean(np.abs(centres[dwell_pred] - seqs.dwell_s[pos + 1]))),
    }


def bleu4(
    hypotheses: Sequence[Sequence[str]],
    held_out: Sequence[Sequence[str]],
    sources: Sequence[int] | None = None,
    seed: int = 0,
    max_references: int = MAX_REFERENCES,
) -> float:
    """Corpus BLEU-4 of trajectories (lists of zone names) against held-out ones.

    Hypothesis ``i`` started from the first visit of ``held_out[sources[i]]`` (by default
    ``sources[i] == i``). Its references are the held-out trajectories starting at the same
    zone, that one always among them, at most ``max_references`` (the others drawn with
    ``seed``); all held-out trajectories when fewer than two start there. So the held-out
    trajectories scored against themselves get 1.0.
    """
    if sources is None:
        if len(hypotheses) != len(held_out):
            raise ValueError("give sources: which held-out trajectory each hypothesis began")
        sources = range(len(hypotheses))
    if len(hypotheses) == 0:
        raise ValueError("no trajectories to score")
    rng = np.random.default_rng(seed)
    by_start: dict[str, list[int]] = {}
    for i, trajectory in enumerate(held_out):
        by_start.setdefault(trajectory[0], []).append(i)
    everyone = list(range(len(held_out)))
    references = []
    for source in sources:
        same = by_start[held_out[source][0]]
        pool = same if len(same) >= 2 else everyone
        if len(pool) > max_references:
            others = np.array([i for i in pool if i != source])
            pool = [source, *rng.choice(others, max_references - 1, replace=False).tolist()]
        references.append([list(held_out[i]) for i in pool])
    return float(
        corpus_bleu(
            references,
            [list(h) for h in hypotheses],
            weights=(0.25, 0.25, 0.25, 0.25),
            smoothing_function=SmoothingFunction().method1,
        )
    )


# ============================================================================ predictors
class Predictor(Protocol):
    """What ``evaluate`` needs of a model or a baseline."""

    def predict(self, seqs: Sequences) -> tuple[np.ndarray, np.ndarray]:
        """``log_probs`` (n_targets, Z) of the next zone and ``dwell_pred`` (n_targets,)
        bucket of the next visit, aligned with ``target_positions(seqs)``."""
        ...

    def sample(
        self, seqs: Sequences, which: np.ndarray, max_len: int, seed: int
    ) -> list[np.ndarray]:
        """Zone indices of one trajectory sampled from the first visit of each trajectory
        ``which`` of ``seqs``, until an exit or ``max_len`` visits."""
        ...


def typical_crowd(train: Sequences, n_zones: int) -> np.ndarray:
    """(Z,) each zone's median crowd level on entry in the training visits (0 if unseen)."""
    zone, crowd = train.features["zone"], train.features["crowd"]
    typical = np.zeros(n_zones, dtype=np.int64)
    for z in np.unique(zone):
        typical[z] = int(np.median(crowd[zone == z]))
    return typical


def typical_options(train: Sequences) -> np.ndarray:
    """(Z,) the option state (crowd level, queue wait) each zone showed most often at the
    training decisions: what sampled visits, which have no crowd around them, are shown."""
    return np.array([np.bincount(column).argmax() for column in train.options.T.astype(np.int64)])


class GPTPredictor:
    """A ``GPT`` behind the ``Predictor`` interface (eval mode, no gradients).

    Sampled visits after the first get the zone's kind, time advanced by the sampled dwell's
    typical seconds plus ``WALK_S`` of walking, and the zone's typical crowd level (from
    ``train``); every zone shows the option state it showed most often in ``train``.
    """

    def __init__(
        self, model: GPT, vocab: ZoneVocab, train: Sequences, batch_size: int = 256
    ) -> None:
        self.model, self.vocab, self.batch_size = model, vocab, batch_size
        self.device = next(model.parameters()).device
        self.typical = typical_crowd(train, len(vocab))
        self.typical_options = typical_options(train)
        self.stop = stop_zones(vocab)

    @torch.no_grad()
    def predict(self, seqs: Sequences) -> tuple[np.ndarray, np.ndarray]:
        was_training = self.model.training
        self.model.eval()
        try:
            data = blocks(seqs, self.model.config.block_size)
            log_probs, dwell, buckets = [], [], []
            for lo in range(0, len(data["length"]), self.batch_size):
                hi = lo + self.batch_size
                tokens = {name: data[name][lo:hi].to(self.device) for name in FEATURES}
                for extra in ("profile", "shows"):
                    if extra in data:
                        tokens[extra] = data[extra][lo:hi].to(self.device)
                options = data["options"][lo:hi].to(self.device)
                keep = data["next_zone"][lo:hi].to(self.device) != -1
                out = self.model(tokens, options)
                logits = out.zone_logits.float()
                top = logits.argmax(dim=-1)
                shows = tokens.get("shows")
                next_show = (
                    None if shows is None else torch.gather(shows, 2, top[..., None])[..., 0]
                )
                dwell_logits = self.model.dwell_logits(out.hidden, top, next_show)
                log_probs.append(F.log_softmax(logits[keep], dim=-1).cpu())
                dwell.append(dwell_logits.argmax(dim=-1)[keep].cpu())
                buckets.append(dwell_logits[..., :N_DWELL].argmax(dim=-1)[keep].cpu())
        finally:
            self.model.train(was_training)
        return torch.cat(log_probs).double().numpy(), self.until_show_ends(
            seqs, torch.cat(dwell).numpy(), torch.cat(buckets).numpy()
        )

    @staticmethod
    def until_show_ends(seqs: Sequences, dwell: np.ndarray, buckets: np.ndarray) -> np.ndarray:
        """Dwell buckets of predictions, "until a show ends" (``UNTIL_SHOW_ENDS + k``) read
        as the bucket of the time left until the (k+1)-th show at the next visit's zone
        ends; where no such show is on or to come there, the likeliest bucket."""
        until = dwell >= UNTIL_SHOW_ENDS
        if not until.any():
            return dwell
        left = np.full(len(dwell), np.inf)
        if seqs.show_left_s is not None:
            ahead = seqs.show_left_s[target_positions(seqs) + 1]
            nth = np.clip(dwell - UNTIL_SHOW_ENDS, 0, ahead.shape[1] - 1)
            left = ahead[np.arange(len(dwell)), nth]
        known = until & np.isfinite(left)
        dwell = np.where(until, buckets, dwell)
        dwell[known] = dwell_bucket(left[known])
        return dwell

    @torch.no_grad()
    def sample(
        self, seqs: Sequences, which: np.ndarray, max_len: int, seed: int, temperature: float = 1.0
    ) -> list[np.ndarray]:
        was_training = self.model.training
        self.model.eval()
        try:
            return self._sample(seqs, np.asarray(which), max_len, seed, temperature)
        finally:
            self.model.train(was_training)

    def _sample(
        self, seqs: Sequences, which: np.ndarray, max_len: int, seed: int, temperature: float
    ) -> list[np.ndarray]:
        device, z_count = self.device, len(self.vocab)
        generator = torch.Generator(device=device).manual_seed(seed)
        centres = np.asarray(DWELL_CENTRES_S, dtype=np.float64)
        first = seqs.offsets[which]
        b = len(which)
        tokens = {
            name: torch.as_tensor(seqs.features[name][first], device=device).view(b, 1)
            for name in FEATURES
        }
        options = torch.as_tensor(seqs.options[first], device=device).view(b, 1, z_count)
        profile = None if seqs.profiles is None else torch.as_tensor(seqs.profiles[which])
        if profile is not None:
            tokens["profile"] = profile.to(device)
        seen = F.one_hot(tokens["zone"][:, 0], z_count).to(device)  # places in each context
        tokens["seen"] = seen.view(b, 1, z_count)
        shown = torch.as_tensor(self.typical_options, device=device)
        typical_options = shown.view(1, 1, z_count).expand(b, 1, z_count)
        # Clocks at the start of the current visit, and its length (the first one's is known).
        day_s = (seqs.features["tod"][first] + 0.5) * TOD_BUCKET_S
        since_s = np.zeros(b)
        step_s = seqs.dwell_s[first] + WALK_S
        kind_of = self.vocab.kind_ids
        met = needs_met(kind_of[seqs.features["zone"][first]], seqs.dwell_s[first], np.nan)
        paths = [[int(z)] for z in seqs.features["zone"][first]]
        active = ~self.stop[seqs.features["zone"][first]]
        past = None
        for _ in range(1, min(max_len, self.model.config.block_size)):
            if not active.any():
                break
            out = self.model(tokens, options, past=past)
            past = out.past
            logits = out.zone_logits[:, -1].float() / temperature
            stuck = ~torch.isfinite(logits).any(dim=-1, keepdim=True)  # finished rows only
            probs = F.softmax(logits.masked_fill(stuck, 0.0), dim=-1)
            zone = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
            dwell_logits = self.model.dwell_logits(out.hidden[:, -1:], zone)[:, 0].float()
            dwell_logits = dwell_logits[:, :N_DWELL]  # no programme here: buckets only
            dwell = torch.multinomial(
                F.softmax(dwell_logits / temperature, dim=-1), 1, generator=generator
            )
            day_s, since_s = day_s + step_s, since_s + step_s
            dwell_np, zone_np = dwell.cpu().numpy()[:, 0], zone.cpu().numpy()[:, 0]
            stay_s = centres[dwell_np]  # the sampled dwell bucket's typical seconds
            step_s = stay_s + WALK_S
            # The sampled visit as a token, by the function that reads logs and avatars.
            visit = visit_features(
                zone_np, kind_of, day_s, since_s, self.typical[zone_np], stay_s, met
            )
            met = needs_met(kind_of[zone_np], since_s + stay_s, met)
            tokens = {f: torch.as_tensor(visit[f], device=device).view(b, 1) for f in FEATURES}
            if profile is not None:
                tokens["profile"] = profile.to(device)
            seen = seen.scatter(1, zone, 1)
            tokens["seen"] = seen.view(b, 1, z_count)
            options = typical_options
            for i in np.flatnonzero(active):
                paths[i].append(int(zone_np[i]))
            active &= ~self.stop[zone_np]
        return [np.array(p, dtype=np.int64) for p in paths]


# ============================================================================ evaluate
def score(
    predictor: Predictor,
    vocab: ZoneVocab,
    test: Sequences,
    which: np.ndarray,
    max_len: int,
    seed: int = 0,
) -> dict[str, float]:
    """Every metric of one predictor on held-out ``test``; BLEU from trajectories ``which``.
    In a vocabulary without exits (a log's: nothing says where a visit sequence ends) each
    sampled trajectory is cut to the length of the one it began from, so BLEU compares
    where visitors go, not how long a predictor rambles on."""
    log_probs, dwell_pred = predictor.predict(test)
    result = next_move_metrics(log_probs, dwell_pred, test)
    names = np.asarray(vocab.names, dtype=object)
    held_out = [names[t].tolist() for t in test.trajectories()]
    samples = predictor.sample(test, which, max_len, seed)
    if not (np.asarray(vocab.kinds) == "exit").any():
        lengths = np.diff(test.offsets)[which]
        samples = [s[:n] for s, n in zip(samples, lengths, strict=True)]
    result["bleu4"] = bleu4([names[s].tolist() for s in samples], held_out, which, seed)
    return result


def evaluate(
    model: GPT | None,
    vocab: ZoneVocab,
    train: Sequences,
    test: Sequences,
    seed: int = 0,
    bleu_trajectories: int = 300,
) -> dict[str, Any]:
    """The model's metrics (``METRICS``, top level; none when ``model`` is None), the number
    of ``targets``, and the same metrics of the ``baselines`` fitted on ``train``."""
    rng = np.random.default_rng(seed)
    which = np.sort(rng.choice(len(test), size=min(len(test), bleu_trajectories), replace=False))
    longest = int(np.diff(test.offsets).max())
    max_len = min(2 * longest, MAX_SAMPLE_LEN)
    result: dict[str, Any] = {}
    if model is not None:
        result.update(score(GPTPredictor(model, vocab, train), vocab, test, which, max_len, seed))
    pos = target_positions(test)
    result["targets"] = len(pos)
    result["unseen_targets"] = int((~test.known[pos + 1]).sum())
    baselines: dict[str, Predictor] = {
        "markov1": MarkovBaseline(train, vocab, order=1),
        "markov2": MarkovBaseline(train, vocab, order=2),
        "popular": PopularBaseline(train, vocab),
    }
    result["baselines"] = {
        name: score(b, vocab, test, which, max_len, seed) for name, b in baselines.items()
    }
    return result


def format_table(result: dict[str, Any]) -> str:
    """The model (when evaluated) and each baseline as rows of a plain-text table."""
    header = ("", "perplexity", "acc@1", "acc@5", "NDCG@5", "dwell acc", "dwell MAE s", "BLEU-4")
    rows = []
    named = [("model", result)] if "perplexity" in result else []
    named += list(result.get("baselines", {}).items())
    for name, m in named:
        rows.append(
            (
                name,
                f"{m['perplexity']:.3f}",
                f"{m['acc1']:.3f}",
                f"{m['acc5']:.3f}",
                f"{m['ndcg5']:.3f}",
                f"{m['dwell_acc']:.3f}",
                f"{m['dwell_mae_s']:.1f}",
                f"{m['bleu4']:.3f}",
            )
        )
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in (header, *rows)
    ]
    lines.insert(1, "-" * len(lines[0]))
    unseen = result.get("unseen_targets", 0)
    lines.append(
        f"{result.get('targets', 0):,} held-out next-visit targets"
        + (f", {unseen:,} of them at zones the model never saw in training" if unseen else "")
    )
    return "\n".join(lines)


# ============================================================================ a checkpoint
def evaluate_checkpoint(
    ckpt: Checkpoint,
    logs: Sequence[str | os.PathLike[str]],
    columns: Columns | None = None,
    baseline_logs: Sequence[str | os.PathLike[str]] | None = None,
    seed: int = 0,
    bleu_trajectories: int = 300,
    programme: Programme | None = None,
    capacities: Capacities | None = None,
) -> dict[str, Any]:
    """A checkpoint scored on the visitors of ``logs`` it was not trained on, beside
    baselines fitted on the visitors it was trained on (``evaluate``), as
    ``venuetwin evaluate`` does. ``programme``: the shows of the logs' day (default: the
    programme the checkpoint keeps, its first training log's); ``capacities`` likewise,
    for a model that sees full zones.

    The logs are read with ``columns`` (default: as the model's training logs were). A
    visitor counts as trained on when its digest is among the checkpoint's training and
    validation visitors (``Checkpoint.trained_on``): the model's own training logs are so
    scored on its test visitors alone, however their paths are spelt, and new logs whole.
    The baselines are fitted on ``baseline_logs`` (read with ``columns``) less the scored
    visitors, else on the training visitors of the model's training logs where these are
    at hand, else on part of the scored visitors (then split off, with ``seed``). The
    result says which (``baselines_fitted_on``) and how many trajectories and visitors
    were scored and left out (never which)."""
    stored = ckpt.training.get("log_format")
    trained_format = Columns.from_json(stored) if stored else Columns()
    columns = columns or trained_format
    where = ", ".join(map(str, logs))
    stored_programme = ckpt.training.get("programme")
    if programme is None and stored_programme:
        programme = Programme.from_json(stored_programme)
    if capacities is None and ckpt.model.config.n_options > FULL_OPTION:
        capacities = ckpt.training.get("capacities")
    grace = show_grace_s(ckpt.model.config.n_show_states)
    seqs = read_sequences(logs, ckpt.vocab, columns, programme, capacities, grace)
    seen = ckpt.trained_on(visitor_digests(seqs.visitors))
    test = seqs.take(np.flatnonzero(~seen))
    if len(test) and test.n_targets == 0:
        raise LogError(
            f"{where}: no visitor scored has two visits in a row: there is no next place "
            "to predict (each trajectory needs at least two visits)"
        )
    if len(test) == 0:
        raise LogError(
            f"{where}: the model was trained on every visitor of these logs (it held out "
            f"none of them): evaluate it on other logs, or train with --test-fraction above 0"
        )
    fitted_on = "training visitors of the model's training logs"
    fit = None
    if baseline_logs:
        fit_seqs = read_sequences(baseline_logs, ckpt.vocab, columns, programme, None, grace)
        scored = np.isin(visitor_digests(fit_seqs.visitors), visitor_digests(test.visitors))
        fit, fitted_on = fit_seqs.take(np.flatnonzero(~scored)), "the baseline logs"
    elif ckpt.training.get("logs") and all(Path(p).is_file() for p in ckpt.training["logs"]):
        fit_seqs = read_sequences(
            ckpt.training["logs"], ckpt.vocab, trained_format, programme, None, grace
        )
        train_part = ckpt.visitors.get("train", np.empty(0, np.int64))
        fit = fit_seqs.take(np.flatnonzero(np.isin(visitor_digests(fit_seqs.visitors), train_part)))
    if fit is None or len(fit) == 0:
        fit, _, test = split(test, seed=seed)
        fitted_on = "part of the scored visitors (the rest were scored)"
    result = evaluate(
        ckpt.model, ckpt.vocab, fit, test, seed=seed, bleu_trajectories=bleu_trajectories
    )
    result["scored"] = {
        "trajectories": len(test),
        "visitors": int(len(np.unique(test.visitors))),
        "left_out_visitors": int(len(np.unique(seqs.visitors[seen]))),
    }
    result["baselines_fitted_on"] = fitted_on
    return result


__all__ = [
    "BASELINES",
    "METRICS",
    "GPTPredictor",
    "MarkovBaseline",
    "PopularBaseline",
    "Predictor",
    "bleu4",
    "evaluate",
    "evaluate_checkpoint",
    "format_table",
    "next_move_metrics",
    "score",
    "target_positions",
]
