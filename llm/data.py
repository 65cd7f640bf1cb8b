"""Visit logs in, model-ready sequences out.

``read_logs`` takes CSV or Parquet files in the visit-log contract (``llm.logschema``),
maps other column names, parses unix seconds, milliseconds or ISO-8601 timestamps, and
derives what is missing: dwell from the next visit, occupancy by counting the visits that
overlap in the log itself, queue waits as 0 (unknown). Bad input is refused with a
``LogError`` naming the file, the row and the column.

``encode`` turns a read log into one token per visit (``llm.features.visit_features``)
plus, for every visit, what it could see of every zone when it ended (the moment the
avatar chose where to go next): the crowd level and the queue wait a newcomer would have.
``split`` divides trajectories (never visits) into train/validation/test, and ``blocks``
packs them into fixed-length tensors.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from llm.features import FEATURES, option_state, queue_wait, visit_features, zone_crowd
from llm.logschema import OPTIONAL_COLUMNS, REQUIRED_COLUMNS
from llm.vocab import ZoneVocab

#: Timestamps above this many are milliseconds since 1970 (1e11 s would be year 5138).
MILLISECONDS_ABOVE = 1e11


class LogError(ValueError):
    """A visit log that cannot be used; the message names the file, row and column."""


@dataclass(frozen=True)
class Columns:
    """Which of a log's columns hold the avatar, the time and the zone."""

    avatar_id: str = "avatar_id"
    timestamp: str = "timestamp"
    zone: str = "zone"


# ============================================================================ reading
def read_logs(
    paths: Sequence[str | os.PathLike[str]], columns: Columns = Columns()
) -> pd.DataFrame:
    """Read and join visit logs; each file's trajectories stay apart (see ``read_log``)."""
    if not paths:
        raise LogError("no visit logs given")
    frames = [read_log(p, columns, file_index=i) for i, p in enumerate(paths)]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def read_log(
    path: str | os.PathLike[str], columns: Columns = Columns(), file_index: int = 0
) -> pd.DataFrame:
    """One log as a frame sorted by trajectory and time, with columns ``trajectory``,
    ``avatar_id``, ``run_id``, ``timestamp``, ``zone``, ``dwell_s``, ``occupancy``,
    ``wait_s``, ``leave_wait_s``, ``zone_kind`` (if given), ``seconds_of_day``,
    ``since_arrival_s`` and ``row`` (the 1-based row in the file)."""
    path = Path(path)
    raw = _load_table(path)
    frame = _canonical_columns(raw, path, columns)
    frame["row"] = np.arange(1, len(frame) + 1)
    for name in ("avatar_id", "timestamp", "zone"):
        _refuse_empty_cells(frame, name, path, _source_name(columns, name))
    frame["timestamp"] = parse_timestamps(frame["timestamp"], path, columns.timestamp)
    frame["avatar_id"] = frame["avatar_id"].astype(str)
    frame["zone"] = frame["zone"].astype(str)
    # Runs of different files never mix, even when they carry the same run_id.
    if "run_id" in frame:
        frame["run_id"] = f"{file_index}:" + frame["run_id"].astype(str)
    else:
        frame["run_id"] = f"{file_index}:{path.name}"
    frame["trajectory"] = frame["run_id"] + "/" + frame["avatar_id"]
    frame = frame.sort_values(["trajectory", "timestamp"], kind="stable").reset_index(drop=True)
    frame["dwell_s"] = _dwell(frame, path)
    frame["occupancy"] = _occupancy(frame, path)
    frame["wait_s"] = _within_dwell(frame, path, "wait_s", "a wait")
    frame["leave_wait_s"] = _within_dwell(frame, path, "leave_wait_s", "a wait to leave")
    stamps = frame["timestamp"]
    frame["seconds_of_day"] = (stamps - stamps.dt.normalize()).dt.total_seconds()
    first = frame.groupby("trajectory")["timestamp"].transform("min")
    frame["since_arrival_s"] = (stamps - first).dt.total_seconds()
    return frame


def _load_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise LogError(f"{path}: no such file")
    if path.is_dir():
        raise LogError(f"{path}: is a folder, not a visit log")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".txt"):
            frame = pd.read_csv(path, index_col=False)
        else:
            raise LogError(f"{path}: not a visit log (expected a .csv or .parquet file)")
    except LogError:
        raise
    except pd.errors.EmptyDataError:
        raise LogError(f"{path}: the log is empty") from None
    except Exception as exc:  # pyarrow and the CSV parser raise many kinds
        kind = "Parquet" if suffix in (".parquet", ".pq") else "CSV"
        raise LogError(f"{path}: not a readable {kind} table ({exc})") from None
    if len(frame) == 0:
        raise LogError(f"{path}: the log is empty")
    return frame


def _source_name(columns: Columns, name: str) -> str:
    return getattr(columns, name, name)


def _canonical_columns(raw: pd.DataFrame, path: Path, columns: Columns) -> pd.DataFrame:
    if len({columns.avatar_id, columns.timestamp, columns.zone}) < 3:
        raise LogError(
            f"{path}: the avatar id, time and zone must be three different columns (got "
            f"{columns.avatar_id!r}, {columns.timestamp!r}, {columns.zone!r})"
        )
    mapping = {columns.avatar_id: "avatar_id", columns.timestamp: "timestamp", columns.zone: "zone"}
    flags = {"avatar_id": "--id-col", "timestamp": "--time-col", "zone": "--zone-col"}
    for source, target in mapping.items():
        if source not in raw.columns:
            raise LogError(
                f"{path}: column {source!r} is missing (columns: {', '.join(map(str, raw.columns))}"
                f"); name the {target} column with {flags[target]}"
            )
    frame = raw.rename(columns=mapping)
    keep = [*REQUIRED_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in frame.columns)]
    return frame[keep].copy()


def _refuse_empty_cells(frame: pd.DataFrame, name: str, path: Path, shown: str) -> None:
    empty = frame[name].isna()
    if frame[name].dtype == object or str(frame[name].dtype) == "string":
        empty |= frame[name].astype(str).str.strip() == ""
    if empty.any():
        row = int(frame.loc[empty, "row"].iloc[0])
        raise LogError(f"{path}: row {row}, column {shown!r}: empty value")


def parse_timestamps(values: pd.Series, path: Path, column: str) -> pd.Series:
    """Unix seconds, unix milliseconds or ISO-8601 strings to naive local datetimes."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().all():
            unit = "ms" if numeric.abs().max() > MILLISECONDS_ABOVE else "s"
            parsed = pd.to_datetime(numeric, unit=unit)
        else:
            # Keep each timestamp's local wall-clock time (offsets may change with DST).
            text = values.astype(str).str.strip()
            local = text.str.replace(r"(Z|[+-]\d\d:?\d\d)$", "", regex=True)
            try:
                parsed = pd.to_datetime(local, format="ISO8601", errors="coerce")
            except (ValueError, TypeError):
                parsed = pd.Series(pd.NaT, index=values.index)
            bad = parsed.isna()
            if numeric.notna().any():  # mostly numbers: the odd one out is the culprit
                bad = numeric.isna()
            if bad.any():
                at = int(np.flatnonzero(bad.to_numpy())[0])
                raise LogError(
                    f"{path}: row {at + 1}, column {column!r}: cannot read timestamp "
                    f"{values.iloc[at]!r} (expected unix seconds, milliseconds or ISO-8601)"
                )
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)  # keep the local wall-clock time
    return parsed.astype("datetime64[ns]")


def _dwell(frame: pd.DataFrame, path: Path) -> pd.Series:
    """The log's dwell where given, else the time until the trajectory's next visit."""
    gap = frame.groupby("trajectory")["timestamp"].shift(-1) - frame["timestamp"]
    derived = gap.dt.total_seconds().fillna(0.0)
    if "dwell_s" not in frame:
        return derived
    given = pd.to_numeric(frame["dwell_s"], errors="coerce")
    given = given.mask((given < 0) & (given > -1e-6), 0.0)  # rounding noise is no error
    bad = frame["dwell_s"].notna() & given.isna() | (given < 0)
    if bad.any():
        row = int(frame.loc[bad, "row"].iloc[0])
        value = _plain(frame.loc[bad, "dwell_s"].iloc[0])
        raise LogError(f"{path}: row {row}, column 'dwell_s': {value!r} is not a dwell >= 0")
    return given.fillna(derived).astype(np.float64)


def _occupancy(frame: pd.DataFrame, path: Path) -> pd.Series:
    """Persons in the zone when each visit began: the log's, else counted from the log."""
    if "occupancy" in frame:
        given = pd.to_numeric(frame["occupancy"], errors="coerce")
        bad = given.isna() | (given < 0)
        if bad.any():
            row = int(frame.loc[bad, "row"].iloc[0])
            value = _plain(frame.loc[bad, "occupancy"].iloc[0])
            raise LogError(f"{path}: row {row}, column 'occupancy': {value!r} is not a count")
        return given.astype(np.int64)
    start = _seconds(frame["timestamp"])
    end = start + frame["dwell_s"].to_numpy()
    counts = np.zeros(len(frame), dtype=np.int64)
    for _, rows in frame.groupby(["run_id", "zone"]).indices.items():
        starts, ends = np.sort(start[rows]), np.sort(end[rows])
        t = start[rows]
        counts[rows] = np.searchsorted(starts, t, "right") - np.searchsorted(ends, t, "right")
    return pd.Series(np.maximum(counts, 1), index=frame.index)


def _within_dwell(frame: pd.DataFrame, path: Path, column: str, what: str) -> pd.Series:
    """Seconds of each visit's dwell in ``column`` (``wait_s``: queueing before service;
    ``leave_wait_s``: waiting to leave after choosing the next zone): the log's, else 0."""
    if column not in frame:
        return pd.Series(0.0, index=frame.index)
    given = pd.to_numeric(frame[column], errors="coerce")
    bad = frame[column].notna() & given.isna() | (given < 0) | (given > frame["dwell_s"] + 1e-6)
    if bad.any():
        row = int(frame.loc[bad, "row"].iloc[0])
        value = _plain(frame.loc[bad, column].iloc[0])
        raise LogError(
            f"{path}: row {row}, column '{column}': {value!r} is not {what} between 0 and the dwell"
        )
    return np.minimum(given.fillna(0.0), frame["dwell_s"]).astype(np.float64)


def _plain(value: object) -> object:
    """A cell as its reader wrote it (90.0, not np.float64(90.0))."""
    return value.item() if isinstance(value, np.generic) else value


def _seconds(stamps: pd.Series) -> np.ndarray:
    return stamps.to_numpy().astype("datetime64[ns]").astype(np.int64) / 1e9


def check_zones(frame: pd.DataFrame, vocab: ZoneVocab, path: str, venue: str) -> None:
    """Refuse a log that visits a zone the venue lacks, naming the first such row."""
    unknown = ~frame["zone"].isin(vocab.index)
    if unknown.any():
        first = frame.loc[unknown].sort_values("row").iloc[0]
        raise LogError(
            f"{path}: row {int(first['row'])}, column 'zone': zone {first['zone']!r} is not "
            f"in venue {venue!r}"
        )


# ============================================================================ encoding
@dataclass
class Sequences:
    """Every visit to a place of a set of trajectories, one token each, trajectory after
    trajectory (visits to passages are left out: see ``encode``)."""

    features: dict[str, np.ndarray]  # name -> (N,) int64, see llm.features.visit_features
    options: np.ndarray  # (N, Z) int8: option state of every zone when the visit ended
    dwell_s: np.ndarray  # (N,) float64 seconds
    offsets: np.ndarray  # (n_trajectories + 1,) start of each trajectory
    keys: np.ndarray  # (n_trajectories,) trajectory names

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def n_visits(self) -> int:
        return int(self.offsets[-1])

    def take(self, which: np.ndarray) -> Sequences:
        """The trajectories at positions ``which``, in that order."""
        starts, ends = self.offsets[which], self.offsets[which + 1]
        rows = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)])
        lengths = ends - starts
        return Sequences(
            features={k: v[rows] for k, v in self.features.items()},
            options=self.options[rows],
            dwell_s=self.dwell_s[rows],
            offsets=np.concatenate([[0], np.cumsum(lengths)]),
            keys=self.keys[which],
        )

    def trajectories(self) -> list[np.ndarray]:
        """Zone indices of each trajectory."""
        zone = self.features["zone"]
        return [zone[s:e] for s, e in zip(self.offsets[:-1], self.offsets[1:], strict=True)]


def encode(frame: pd.DataFrame, vocab: ZoneVocab) -> Sequences:
    """Tokens for every visit of a read log to a place (passages such as corridors are
    walked through, not visited: ``llm.features.PASSAGE_KINDS``), with what every zone
    showed when each visit ended. Crowds and queues count every row, passages included."""
    zone = frame["zone"].map(vocab.index).to_numpy()
    if np.isnan(zone.astype(np.float64)).any():
        raise LogError("log visits zones outside the vocabulary; call check_zones first")
    zone = zone.astype(np.int64)
    # A visit's token is what the visitor knew when choosing where to go next: its stay
    # until then, not the wait to leave that followed (``leave_wait_s``), as live.
    decided = (frame["dwell_s"] - frame["leave_wait_s"]).to_numpy(np.float64)
    features = visit_features(
        zone,
        vocab.kind_ids,
        vocab.area,
        frame["seconds_of_day"].to_numpy(),
        frame["since_arrival_s"].to_numpy(),
        frame["occupancy"].to_numpy(),
        decided,
    )
    options = _options_at_decisions(frame, zone, vocab, decided)  # every visit counts
    place = ~vocab.passage[zone]  # ... but only places are tokens
    trajectory = frame["trajectory"].to_numpy()[place]
    starts = np.flatnonzero(np.r_[True, trajectory[1:] != trajectory[:-1]])
    return Sequences(
        features={name: values[place] for name, values in features.items()},
        options=options[place],
        dwell_s=decided[place],
        offsets=np.r_[starts, int(place.sum())],
        keys=trajectory[starts],
    )


def _options_at_decisions(
    frame: pd.DataFrame, zone: np.ndarray, vocab: ZoneVocab, decided: np.ndarray
) -> np.ndarray:
    """(N, Z) option state (``llm.features.option_state``) of every zone at the moment each
    visitor chose where to go next (``decided`` seconds into the visit), from the visits of
    the same run: the persons present (a visit ending at that moment still counts, as
    live) and the wait until the last to queue is served."""
    start = _seconds(frame["timestamp"])
    end = start + frame["dwell_s"].to_numpy()
    served = start + frame["wait_s"].to_numpy()
    states = np.zeros((len(frame), len(vocab)), dtype=np.int8)
    for _, rows in frame.groupby("run_id").indices.items():
        occupancy = np.zeros((len(rows), len(vocab)), dtype=np.int64)
        last_served = np.full((len(rows), len(vocab)), -np.inf)
        when = start[rows] + decided[rows]
        for z in np.unique(zone[rows]):
            here = rows[zone[rows] == z]
            order = np.argsort(start[here], kind="stable")
            starts, ends = start[here][order], np.sort(end[here])
            begun = np.searchsorted(starts, when, "right")
            occupancy[:, z] = begun - np.searchsorted(ends, when, "left")
            latest = np.r_[-np.inf, np.maximum.accumulate(served[here][order])]
            last_served[:, z] = latest[begun]
        crowd = zone_crowd(np.maximum(occupancy, 0), vocab.area[None, :])
        states[rows] = option_state(crowd, queue_wait(last_served, when[:, None]))
    return states


def split(
    seqs: Sequences, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0
) -> tuple[Sequences, Sequences, Sequences]:
    """Train/validation/test by trajectory (an avatar's visits stay together)."""
    n = len(seqs)
    if n < 2:
        raise LogError(
            f"the logs hold {n} avatar{'s' if n != 1 else ''}: need at least 2 to hold some out"
        )
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(n * fractions[1]))
    n_test = max(1, round(n * fractions[2])) if n >= 3 else 0
    n_train = max(1, n - n_val - n_test)
    train = order[:n_train]
    val = order[n_train : n_train + n_val]
    test = order[n_train + n_val :] if n_test else order[n_train : n_train + n_val]
    return seqs.take(np.sort(train)), seqs.take(np.sort(val)), seqs.take(np.sort(test))


# ============================================================================ tensors


def blocks(seqs: Sequences, block_size: int) -> dict[str, torch.Tensor]:
    """Fixed-length windows of trajectories as tensors.

    Each window holds the token features (B, T), ``options`` (B, T, Z) option states,
    the targets ``next_zone`` and ``next_dwell`` (B, T; -1 where there is none) and
    ``length``. A trajectory longer than the window is cut into windows overlapping by
    half, and each target is counted in one window only.
    """
    stride = max(1, block_size // 2)
    windows: list[tuple[int, int, int]] = []  # (start, end, first position with a target)
    for s, e in zip(seqs.offsets[:-1], seqs.offsets[1:], strict=True):
        begin = int(s)
        windows.append((begin, min(int(e), begin + block_size), 0))
        while begin + block_size < e:
            begin += stride
            windows.append((begin, min(int(e), begin + block_size), block_size - stride))
    n, z = len(windows), seqs.options.shape[1]
    out = {name: np.zeros((n, block_size), dtype=np.int64) for name in FEATURES}
    out["options"] = np.zeros((n, block_size, z), dtype=np.int8)
    out["next_zone"] = np.full((n, block_size), -1, dtype=np.int64)
    out["next_dwell"] = np.full((n, block_size), -1, dtype=np.int64)
    out["length"] = np.zeros(n, dtype=np.int64)
    ends = np.zeros(seqs.n_visits, dtype=np.int64)  # end of each visit's trajectory
    for s, e in zip(seqs.offsets[:-1], seqs.offsets[1:], strict=True):
        ends[s:e] = e
    for w, (s, e, first) in enumerate(windows):
        length = e - s
        out["length"][w] = length
        for name in FEATURES:
            out[name][w, :length] = seqs.features[name][s:e]
        out["options"][w, :length] = seqs.options[s:e]
        has_next = np.arange(s, e) + 1 < ends[s:e]
        positions = np.arange(length)
        keep = has_next & (positions >= first)
        nxt = np.minimum(np.arange(s, e) + 1, seqs.n_visits - 1)
        out["next_zone"][w, :length] = np.where(keep, seqs.features["zone"][nxt], -1)
        out["next_dwell"][w, :length] = np.where(keep, seqs.features["dwell"][nxt], -1)
    return {k: torch.from_numpy(v) for k, v in out.items()}
