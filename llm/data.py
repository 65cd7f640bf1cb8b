"""Visit logs in, model-ready sequences out.

``read_logs`` takes CSV or Parquet files in the visit-log contract (``llm.logschema``),
maps other column names (a visitor may be named by several columns, a trajectory is a
visitor's session), detects the CSV separator, parses unix seconds, milliseconds or
ISO-8601 timestamps (in a given time zone), merges consecutive rows at one zone into one
visit, and derives what is missing as the causality rule allows (``llm.causal``): a
visit's dwell from its own rows, occupancy by counting the visits the log vouches present,
queue waits as 0 (unknown). Bad input is refused with a ``LogError`` naming the file, the
row and the column (never a visitor's id, which may be personal data).

``encode`` turns a read log into one token per visit (``llm.features.visit_features``)
plus, for every visit, what it could see of every zone at its choice (the moment the
visitor chose where to go next): the crowd level and the queue wait a newcomer would have.
``split`` divides visitors (never visits) into train/validation/test, and ``blocks``
packs trajectories into fixed-length tensors.

Its length: the log contract's two sides, reading rows into visits and encoding visits
into tokens, stay in one file because the causality rule (``llm.causal``) binds them: what
a row vouches for when read is what a choice may see when encoded.
"""

from __future__ import annotations

import hashlib
import os
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from llm.causal import last_served_before, present_at, stay_until_choice
from llm.features import (
    FEATURES,
    PROFILE_SEP,
    Programme,
    dwell_bucket,
    option_state,
    profile_vectors,
    queue_wait,
    show_states,
    visit_features,
    zone_crowd,
)
from llm.logschema import OPTIONAL_COLUMNS
from llm.vocab import ZoneVocab

#: Timestamps above this many are milliseconds since 1970 (1e11 s would be year 5138).
MILLISECONDS_ABOVE = 1e11
#: The unix seconds a timestamp may take (pandas' nanosecond datetimes end there).
FIRST_SECOND, LAST_SECOND = -9.2e9, 9.2e9
#: Separators a CSV log may use, detected from its header line unless given.
SEPARATORS: tuple[str, ...] = (",", ";", "\t", "|")


class LogError(ValueError):
    """A visit log that cannot be used; the message names the file, row and column."""


@dataclass(frozen=True)
class Columns:
    """How to read a log: which columns hold the visitor (one or several: a user, a
    device...), the session within a visitor (optional: a trajectory is a visitor's
    session), the time and the zone; the CSV separator (None: detected from the header)
    and the time zone of the venue (None: timestamps are the venue's wall-clock time;
    else unix times and ISO-8601 times without an offset are UTC, shown in this zone).
    Stored in a checkpoint (``to_json``), so a model's logs are read again the same way."""

    avatar_id: str | tuple[str, ...] = "avatar_id"
    timestamp: str = "timestamp"
    zone: str = "zone"
    session: str | None = None
    sep: str | None = None
    tz: str | None = None
    #: Columns of visitor attributes (a ticket type, a segment, a group size), each value
    #: a ``column=value`` tag of the visitor's profile, beside the ``profile`` column's.
    attributes: tuple[str, ...] = ()

    @property
    def ids(self) -> tuple[str, ...]:
        """The columns that together name a visitor."""
        return (self.avatar_id,) if isinstance(self.avatar_id, str) else tuple(self.avatar_id)

    def to_json(self) -> dict:
        return {
            "ids": list(self.ids),
            "timestamp": self.timestamp,
            "zone": self.zone,
            "session": self.session,
            "sep": self.sep,
            "tz": self.tz,
            "attributes": list(self.attributes),
        }

    @classmethod
    def from_json(cls, data: dict) -> Columns:
        ids = tuple(data["ids"])
        return cls(
            ids[0] if len(ids) == 1 else ids,
            data["timestamp"],
            data["zone"],
            data.get("session"),
            data.get("sep"),
            data.get("tz"),
            tuple(data.get("attributes", ())),
        )


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
    """One log as a frame of visits sorted by trajectory and time.

    Consecutive rows of a trajectory at one zone are one visit (a burst of photos,
    repeated sensor pings). Columns: ``trajectory`` (unique in this read), ``visitor``
    (who it is, whichever file it comes from: the log's ``run_id`` if any and the id
    columns; the split into training and held-out data is by visitor), ``avatar_id``,
    ``run_id``, ``timestamp`` (the visit's first row), ``zone``, ``dwell_s``,
    ``present_s``, ``occupancy``, ``wait_s``, ``leave_wait_s``, ``zone_kind`` (if given),
    ``seconds_of_day``, ``since_arrival_s`` and ``row`` (the file's 1-based row of the
    visit's first row). How dwell, presence and occupancy follow from the rows is the
    causality rule of ``llm.causal``."""
    path = Path(path)
    raw = _load_table(path, columns.sep)
    frame = _canonical_columns(raw, path, columns)
    frame["row"] = np.arange(1, len(frame) + 1)
    for name, shown in zip(
        [*ID_PARTS[: len(columns.ids)], "timestamp", "zone"],
        [*columns.ids, columns.timestamp, columns.zone],
        strict=True,
    ):
        _refuse_empty_cells(frame, name, path, shown)
    if columns.session is not None:
        _refuse_empty_cells(frame, "session", path, columns.session)
    frame["timestamp"] = parse_timestamps(frame["timestamp"], path, columns.timestamp, columns.tz)
    parts = [frame[name].astype(str) for name in ID_PARTS[: len(columns.ids)]]
    frame["avatar_id"] = parts[0].str.cat(parts[1:], sep="|") if len(parts) > 1 else parts[0]
    frame = frame.drop(columns=list(ID_PARTS[: len(columns.ids)]))
    frame["zone"] = frame["zone"].astype(str)
    given_run = frame["run_id"].astype(str) + "/" if "run_id" in frame else ""
    frame["visitor"] = given_run + frame["avatar_id"]
    # Runs of different files never mix, even when they carry the same run_id.
    if "run_id" in frame:
        frame["run_id"] = f"{file_index}:" + frame["run_id"].astype(str)
    else:
        frame["run_id"] = f"{file_index}:{path.name}"
    frame["trajectory"] = frame["run_id"] + "/" + frame["avatar_id"]
    if columns.session is not None:
        frame["trajectory"] += "/" + frame["session"].astype(str)
    frame = frame.sort_values(["trajectory", "timestamp"], kind="stable").reset_index(drop=True)
    frame["profile"] = _profiles(frame, columns)
    stated = _stated_dwell(frame, path)
    frame["leave_wait_s"] = _within(frame, stated, path, "leave_wait_s", "a wait to leave")
    frame["wait_s"] = _within(frame, stated, path, "wait_s", "a wait")
    frame["present_s"] = stated.fillna(0.0)
    frame["stated_s"] = stated
    frame = _one_row_per_visit(frame)
    if "occupancy" in frame:
        frame["occupancy"] = _given_occupancy(frame, path)
    else:
        frame["occupancy"] = _entry_occupancy(frame)
    stamps = frame["timestamp"]
    frame["seconds_of_day"] = (stamps - stamps.dt.normalize()).dt.total_seconds()
    first = frame.groupby("trajectory")["timestamp"].transform("min")
    frame["since_arrival_s"] = (stamps - first).dt.total_seconds()
    return frame


#: Internal names of the id columns (a visitor may be named by several).
ID_PARTS = tuple(f"_id{i}" for i in range(8))


def _load_table(path: Path, sep: str | None = None) -> pd.DataFrame:
    if not path.exists():
        raise LogError(f"{path}: no such file")
    if path.is_dir():
        raise LogError(f"{path}: is a folder, not a visit log")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".txt"):
            frame = pd.read_csv(path, sep=sep or detect_separator(path), index_col=False)
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


def detect_separator(path: Path) -> str:
    """The separator of a CSV log: whichever of ``SEPARATORS`` splits its header line
    into the most fields, outside quotes (``,`` when none does)."""
    with open(path, "rb") as handle:
        header = handle.readline(1 << 16).decode("utf-8", errors="replace")
    unquoted = "".join(header.split('"')[::2])
    counts = [unquoted.count(s) for s in SEPARATORS]
    return SEPARATORS[int(np.argmax(counts))] if max(counts) > 0 else ","


def _canonical_columns(raw: pd.DataFrame, path: Path, columns: Columns) -> pd.DataFrame:
    roles = [*columns.ids, columns.timestamp, columns.zone]
    if columns.session is not None:
        roles.append(columns.session)
    if len(set(roles)) < len(roles) or not columns.ids:
        raise LogError(
            f"{path}: the visitor id, session, time and zone must be different columns "
            f"(got {', '.join(map(repr, roles))})"
        )
    if len(columns.ids) > len(ID_PARTS):
        raise LogError(f"{path}: at most {len(ID_PARTS)} id columns")
    mapping = {c: ID_PARTS[i] for i, c in enumerate(columns.ids)}
    mapping |= {columns.timestamp: "timestamp", columns.zone: "zone"}
    flags = {columns.timestamp: "--time-col", columns.zone: "--zone-col"}
    flags |= {c: "--id-col" for c in columns.ids}
    if columns.session is not None:
        mapping[columns.session] = "session"
        flags[columns.session] = "--session-col"
    for source in mapping:
        if source not in raw.columns:
            role = {"--id-col": "visitor id", "--session-col": "session"}.get(
                flags[source], flags[source][2:-4]
            )
            raise LogError(
                f"{path}: column {source!r} is missing (columns: {', '.join(map(str, raw.columns))}"
                f"); name the {role} column with {flags[source]}"
            )
    for column in columns.attributes:
        if column not in raw.columns:
            raise LogError(
                f"{path}: attribute column {column!r} is missing (columns: "
                f"{', '.join(map(str, raw.columns))}); check --attr-col"
            )
        if column in mapping:
            raise LogError(f"{path}: attribute column {column!r} is also the {mapping[column]}")
    frame = raw[list(mapping)].rename(columns=mapping)
    for name in OPTIONAL_COLUMNS:
        if name in raw.columns and name not in mapping:
            frame[name] = raw[name]
    for column in columns.attributes:
        frame[f"attribute:{column}"] = raw[column]
    return frame.copy()


def _refuse_empty_cells(frame: pd.DataFrame, name: str, path: Path, shown: str) -> None:
    empty = frame[name].isna()
    if frame[name].dtype == object or str(frame[name].dtype) == "string":
        empty |= frame[name].astype(str).str.strip() == ""
    if empty.any():
        row = int(frame.loc[empty, "row"].iloc[0])
        raise LogError(f"{path}: row {row}, column {shown!r}: empty value")


def parse_timestamps(
    values: pd.Series, path: Path, column: str, tz: str | None = None
) -> pd.Series:
    """Unix seconds, unix milliseconds or ISO-8601 strings to naive local datetimes.

    Without ``tz`` the timestamps are the venue's wall-clock time (an ISO-8601 offset is
    dropped, keeping the wall clock across daylight saving changes). With ``tz`` (an IANA
    name such as ``Australia/Melbourne``), unix times and offset-less ISO-8601 times are
    UTC, and every time is converted to that zone's wall clock."""
    if tz is not None:
        try:
            pd.Timestamp(0, tz=tz)
        except Exception:  # pytz and zoneinfo raise different kinds
            raise LogError(f"{path}: unknown time zone {tz!r} (--tz takes an IANA name)") from None
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
        if tz is not None and getattr(parsed.dt, "tz", None) is None:
            parsed = parsed.dt.tz_localize("UTC")
    else:
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().all():
            unit = "ms" if numeric.abs().max() > MILLISECONDS_ABOVE else "s"
            seconds = numeric / (1000.0 if unit == "ms" else 1.0)
            outside = ~seconds.between(FIRST_SECOND, LAST_SECOND)
            if outside.any():
                at = int(np.flatnonzero(outside.to_numpy())[0])
                unit_name = "milliseconds" if unit == "ms" else "seconds"
                raise LogError(
                    f"{path}: row {at + 1}, column {column!r}: {_plain(values.iloc[at])!r} is "
                    f"not a time between 1678 and 2261 (read as unix {unit_name})"
                )
            parsed = pd.to_datetime(numeric, unit=unit, utc=tz is not None)
        else:
            text = values.astype(str).str.strip()
            if tz is None:  # keep each timestamp's local wall-clock time
                text = text.str.replace(r"(Z|[+-]\d\d:?\d\d)$", "", regex=True)
            try:
                parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=tz is not None)
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
        if tz is not None:
            parsed = parsed.dt.tz_convert(tz)
        parsed = parsed.dt.tz_localize(None)  # the local wall-clock time
    return parsed.astype("datetime64[ns]")


def _profiles(frame: pd.DataFrame, columns: Columns) -> pd.Series:
    """Each row's visitor profile (``llm.features.PROFILE_SEP``-joined tags; "" for
    none): the ``profile`` column's tags and a ``column=value`` tag of each attribute
    column, as the trajectory's *first* row states them. What a visitor declared or
    bought before it came is known at every choice; a value first stated later in the
    trajectory (bought on the way) would be a leak, so it is not read."""
    parts = []
    if "profile" in frame:
        parts.append(frame["profile"].astype("string").fillna("").astype(str))
    for column in columns.attributes:
        value = frame[f"attribute:{column}"].astype("string")
        parts.append((f"{column}=" + value.fillna("")).where(value.notna(), ""))
    if not parts:
        return pd.Series("", index=frame.index)
    text = parts[0]
    for part in parts[1:]:
        text = text.str.cat(part, sep=PROFILE_SEP)
    repeated = f"(?:{re.escape(PROFILE_SEP)}){{2,}}"
    text = text.str.replace(repeated, PROFILE_SEP, regex=True).str.strip(PROFILE_SEP)
    position = pd.Series(np.arange(len(frame)), index=frame.index)
    first = position.groupby(frame["trajectory"], sort=False).transform("min")  # earliest
    return pd.Series(text.to_numpy()[first.to_numpy()], index=frame.index)


def _stated_dwell(frame: pd.DataFrame, path: Path) -> pd.Series:
    """Each row's dwell as the log states it (NaN where it states none)."""
    if "dwell_s" not in frame:
        return pd.Series(np.nan, index=frame.index)
    given = pd.to_numeric(frame["dwell_s"], errors="coerce")
    given = given.mask((given < 0) & (given > -1e-6), 0.0)  # rounding noise is no error
    bad = frame["dwell_s"].notna() & given.isna() | (given < 0)
    if bad.any():
        row = int(frame.loc[bad, "row"].iloc[0])
        value = _plain(frame.loc[bad, "dwell_s"].iloc[0])
        raise LogError(f"{path}: row {row}, column 'dwell_s': {value!r} is not a dwell >= 0")
    return given.astype(np.float64)


def _within(
    frame: pd.DataFrame, stated: pd.Series, path: Path, column: str, what: str
) -> pd.Series:
    """Seconds of each row's dwell in ``column`` (``wait_s``: queueing before service;
    ``leave_wait_s``: waiting to leave after choosing the next zone): the log's, else 0;
    never more than the row's stated dwell, where it states one."""
    if column not in frame:
        return pd.Series(0.0, index=frame.index)
    given = pd.to_numeric(frame[column], errors="coerce")
    bad = frame[column].notna() & given.isna() | (given < 0) | (given > stated + 1e-6)
    if bad.any():
        row = int(frame.loc[bad, "row"].iloc[0])
        value = _plain(frame.loc[bad, column].iloc[0])
        raise LogError(
            f"{path}: row {row}, column '{column}': {value!r} is not {what} between 0 and the dwell"
        )
    return given.fillna(0.0).clip(upper=stated).astype(np.float64)


def _one_row_per_visit(frame: pd.DataFrame) -> pd.DataFrame:
    """Consecutive rows of a trajectory at one zone as one visit: it begins at the first
    row (its occupancy, queue wait and presence are the first row's) and ends with the
    last (its wait to leave is the last row's). Its dwell runs from its first row's time to
    the latest end of its rows, a row's end being its time plus its stated dwell, or its
    time alone: the next visit's start is not the end of this one (``llm.causal``)."""
    trajectory, zone = frame["trajectory"].to_numpy(), frame["zone"].to_numpy()
    first = np.flatnonzero(
        np.r_[True, (trajectory[1:] != trajectory[:-1]) | (zone[1:] != zone[:-1])]
    )
    last = np.r_[first[1:], len(frame)] - 1
    start = _seconds(frame["timestamp"])
    end = start + frame["stated_s"].fillna(0.0).to_numpy()
    out = frame.iloc[first].reset_index(drop=True)
    out["dwell_s"] = np.maximum.reduceat(end, first) - start[first]
    out["leave_wait_s"] = np.minimum(frame["leave_wait_s"].to_numpy()[last], out["dwell_s"])
    return out.drop(columns=["stated_s"])


def _given_occupancy(frame: pd.DataFrame, path: Path) -> pd.Series:
    given = pd.to_numeric(frame["occupancy"], errors="coerce")
    bad = given.isna() | (given < 0)
    if bad.any():
        row = int(frame.loc[bad, "row"].iloc[0])
        value = _plain(frame.loc[bad, "occupancy"].iloc[0])
        raise LogError(f"{path}: row {row}, column 'occupancy': {value!r} is not a count")
    return given.astype(np.int64)


def _entry_occupancy(frame: pd.DataFrame) -> pd.Series:
    """Persons in the zone as each visit began, counted from the log (``llm.causal``):
    the visitor and everyone vouched present there at that moment."""
    start = _seconds(frame["timestamp"])
    present = frame["present_s"].to_numpy()
    counts = np.ones(len(frame), dtype=np.int64)
    for _, rows in frame.groupby(["run_id", "zone"], sort=False).indices.items():
        counts[rows] += present_at(start[rows], present[rows], start[rows])
    return pd.Series(counts, index=frame.index)


def _plain(value: object) -> object:
    """A cell as its reader wrote it (90.0, not np.float64(90.0))."""
    return value.item() if isinstance(value, np.generic) else value


def _seconds(stamps: pd.Series) -> np.ndarray:
    return stamps.to_numpy().astype("datetime64[ns]").astype(np.int64) / 1e9


def check_zones(frame: pd.DataFrame, vocab: ZoneVocab, path: str, venue: str) -> None:
    """Refuse a log that visits a zone the venue lacks, naming the first such row (a
    vocabulary learnt from logs takes any zone: unseen ones are its ``UNKNOWN_ZONE``)."""
    if vocab.unknown is not None:
        return
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
    options: np.ndarray  # (N, Z) int8: option state of every zone at the visit's choice
    dwell_s: np.ndarray  # (N,) float64 seconds, up to the choice
    known: np.ndarray  # (N,) bool: the zone is in the vocabulary by name (not unseen)
    offsets: np.ndarray  # (n_trajectories + 1,) start of each trajectory
    keys: np.ndarray  # (n_trajectories,) trajectory names
    visitors: np.ndarray  # (n_trajectories,) who walked each (the split is by visitor)
    #: (n_trajectories, Z + N_TAG_BUCKETS) uint8: each trajectory's declared profile
    #: (``llm.features.profile_vectors``); all zero where the log states none.
    profiles: np.ndarray | None = None
    #: (N, Z) int8 show state of every zone at each visit's choice (``llm.features.
    #: show_states``), where a programme was given; None otherwise.
    shows: np.ndarray | None = None
    #: (N,) int64 dwell bucket of the stay from the start of service to the choice (the
    #: dwell less the log's queue wait, 0 where it states none): what the model predicts
    #: of a next visit, the twin adding the queue it has then (``GPTPolicy.dwell_from``).
    served_dwell: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def n_visits(self) -> int:
        return int(self.offsets[-1])

    def take(self, which: np.ndarray) -> Sequences:
        """The trajectories at positions ``which``, in that order."""
        which = np.asarray(which, dtype=np.int64)
        starts, ends = self.offsets[which], self.offsets[which + 1]
        lengths = ends - starts
        offsets = np.r_[0, np.cumsum(lengths)]
        rows = np.arange(offsets[-1]) + np.repeat(starts - offsets[:-1], lengths)
        return Sequences(
            features={k: v[rows] for k, v in self.features.items()},
            options=self.options[rows],
            dwell_s=self.dwell_s[rows],
            known=self.known[rows],
            offsets=offsets,
            keys=self.keys[which],
            visitors=self.visitors[which],
            profiles=None if self.profiles is None else self.profiles[which],
            served_dwell=None if self.served_dwell is None else self.served_dwell[rows],
            shows=None if self.shows is None else self.shows[rows],
        )

    @property
    def has_profiles(self) -> bool:
        return self.profiles is not None and bool(self.profiles.any())

    def trajectories(self) -> list[np.ndarray]:
        """Zone indices of each trajectory."""
        zone = self.features["zone"]
        return [zone[s:e] for s, e in zip(self.offsets[:-1], self.offsets[1:], strict=True)]


def encode(frame: pd.DataFrame, vocab: ZoneVocab, programme: Programme | None = None) -> Sequences:
    """Tokens for every visit of a read log to a place (passages such as corridors are
    walked through, not visited: ``llm.zones.PASSAGE_KINDS``), with what every zone
    showed at each visit's choice (``llm.causal``). Crowds and queues count every row,
    passages included. Zones a log vocabulary has not seen are its ``UNKNOWN_ZONE``.
    With a ``programme``, every zone's show state at each choice (``show_states``): the
    shows on the clock then, and whether the visitor's profile booked them."""
    frame = with_gates(frame, vocab)
    zone, known = vocab.lookup(frame["zone"])
    if not known.all() and vocab.unknown is None:
        raise LogError("log visits zones outside the vocabulary; call check_zones first")
    # A visit's token is what the visitor knew when choosing where to go next: its stay
    # until then, not the wait to leave that followed (``leave_wait_s``), as live.
    decided = stay_until_choice(frame["dwell_s"], frame["leave_wait_s"])
    features = visit_features(
        zone,
        vocab.kind_ids,
        vocab.area,
        frame["seconds_of_day"].to_numpy(),
        frame["since_arrival_s"].to_numpy(),
        frame["occupancy"].to_numpy(),
        decided,
    )
    options = _options_at_choices(frame, zone, vocab, decided)  # every visit counts
    served = dwell_bucket(np.maximum(decided - frame["wait_s"].to_numpy(), 0.0))
    shows = None
    if programme is not None and len(programme):
        stage = np.array([vocab.index.get(s, -1) for s in programme.stages], dtype=np.int64)
        wanted = programme.wanted(
            frame["profile"].to_numpy() if "profile" in frame else [""] * len(frame)
        )
        shows = show_states(
            frame["seconds_of_day"].to_numpy() + decided,
            stage,
            np.asarray(programme.start_s),
            np.asarray(programme.end_s),
            wanted,
            len(vocab),
        )
    place = ~vocab.passage[zone]  # ... but only places are tokens
    trajectory = frame["trajectory"].to_numpy()[place]
    starts = np.flatnonzero(np.r_[True, trajectory[1:] != trajectory[:-1]])
    return Sequences(
        features={name: values[place] for name, values in features.items()},
        options=options[place],
        dwell_s=decided[place],
        known=known[place],
        offsets=np.r_[starts, int(place.sum())],
        keys=trajectory[starts],
        visitors=frame["visitor"].to_numpy()[place][starts],
        served_dwell=served[place],
        shows=None if shows is None else shows[place],
        profiles=profile_vectors(frame["profile"].to_numpy()[place][starts], vocab.index)
        if "profile" in frame
        else None,
    )


def read_sequences(
    logs: Sequence[str | os.PathLike[str]],
    vocab: ZoneVocab,
    columns: Columns = Columns(),
    programme: Programme | None = None,
) -> Sequences:
    """Logs to tokens, the one way: read (``read_logs``), refuse zones the vocabulary lacks
    (``check_zones``), encode (``encode``). Used wherever a model or a baseline meets logs
    with a vocabulary already fixed: evaluation, the Markov avatars."""
    frame = read_logs(logs, columns)
    check_zones(frame, vocab, ", ".join(map(str, logs)), vocab.source)
    return encode(frame, vocab, programme)


def with_gates(frame: pd.DataFrame, vocab: ZoneVocab) -> pd.DataFrame:
    """A log of places only (photos, scans at attractions), read on a venue with gates:
    every trajectory that does not begin at an entrance is given a visit to one just before
    its first row, and a visit to an exit just after its last, as a visitor of the twin
    comes in by a gate and leaves by an exit. So a model learns where visitors go first
    and when they leave (the entrance and exit act as the beginning and end of a
    sentence). The entrance is one from which the first place can be chosen (the exit,
    one that can be chosen after the last place), the same for a trajectory every time;
    these visits last no time and see nobody else. Trajectories that begin at an entrance
    (a twin's own logs) are left as they are."""
    kinds = np.array(vocab.kinds)
    entrances, exits = np.flatnonzero(kinds == "entrance"), np.flatnonzero(kinds == "exit")
    if len(frame) == 0 or len(entrances) == 0 or len(exits) == 0:
        return frame
    zone, known = vocab.lookup(frame["zone"])
    trajectory = frame["trajectory"].to_numpy()
    first = np.flatnonzero(np.r_[True, trajectory[1:] != trajectory[:-1]])
    last = np.r_[first[1:], len(frame)] - 1
    open_ = known[first] & (kinds[np.maximum(zone[first], 0)] != "entrance") & known[last]
    if not open_.any():
        return frame
    first, last = first[open_], last[open_]
    choices = vocab.destinations
    pick = np.array([zlib.crc32(str(k).encode()) for k in trajectory[first]], dtype=np.int64)

    def gate(candidates: np.ndarray) -> np.ndarray:  # (n, G) bool -> (n,) zone, -1: none
        count = candidates.sum(axis=1)
        nth = pick % np.maximum(count, 1)
        ranked = np.cumsum(candidates, axis=1) - 1
        column = np.argmax(candidates & (ranked == nth[:, None]), axis=1)
        return np.where(count > 0, column, -1)

    came = gate(choices[np.ix_(entrances, zone[first])].T)
    went = gate(choices[np.ix_(zone[last], exits)])
    both = (came >= 0) & (went >= 0)
    first, last, came, went = first[both], last[both], came[both], went[both]
    before = frame.iloc[first].copy()
    before["zone"] = np.array(vocab.names, dtype=object)[entrances[came]]
    before["since_arrival_s"] = 0.0
    after = frame.iloc[last].copy()
    stay = after["dwell_s"].to_numpy(np.float64)
    after["zone"] = np.array(vocab.names, dtype=object)[exits[went]]
    after["timestamp"] = after["timestamp"] + pd.to_timedelta(stay, unit="s")
    after["seconds_of_day"] = (after["seconds_of_day"].to_numpy() + stay) % 86400.0
    after["since_arrival_s"] = after["since_arrival_s"].to_numpy() + stay
    for added, kind in ((before, "entrance"), (after, "exit")):
        for name in ("dwell_s", "present_s", "wait_s", "leave_wait_s"):
            if name in added:
                added[name] = 0.0
        added["occupancy"] = 1
        if "zone_kind" in added:
            added["zone_kind"] = kind
    order = np.r_[np.arange(len(frame), dtype=np.float64), first - 0.5, last + 0.25]
    joined = pd.concat([frame, before, after], ignore_index=True)
    return joined.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)


def _options_at_choices(
    frame: pd.DataFrame, zone: np.ndarray, vocab: ZoneVocab, decided: np.ndarray
) -> np.ndarray:
    """(N, Z) option state (``llm.features.option_state``) of every zone at each visit's
    choice (``decided`` seconds into it), from the visits of the same run as the
    causality rule allows (``llm.causal``): the persons vouched present then, and the wait
    behind the last to queue before then."""
    start = _seconds(frame["timestamp"])
    present = frame["present_s"].to_numpy()
    served = start + frame["wait_s"].to_numpy()
    states = np.zeros((len(frame), len(vocab)), dtype=np.int8)
    for _, rows in frame.groupby("run_id", sort=False).indices.items():
        occupancy = np.zeros((len(rows), len(vocab)), dtype=np.int64)
        last_served = np.full((len(rows), len(vocab)), -np.inf)
        when = start[rows] + decided[rows]
        for z in np.unique(zone[rows]):
            here = rows[zone[rows] == z]
            occupancy[:, z] = present_at(start[here], present[here], when)
            last_served[:, z] = last_served_before(start[here], served[here], when)
        crowd = zone_crowd(occupancy, vocab.area[None, :])
        states[rows] = option_state(crowd, queue_wait(last_served, when[:, None]))
    return states


#: Train, validation and test fractions of the visitors.
Fractions = tuple[float, float, float]
FRACTIONS: Fractions = (0.8, 0.1, 0.1)


def visitor_order(visitors: np.ndarray, seed: int) -> np.ndarray:
    """The distinct visitors in an order fixed by ``seed`` and each visitor's name alone
    (a hash), so the same visitor falls on the same side of a split in any log."""
    unique = np.unique(np.asarray(visitors, dtype=str))
    digests = [hashlib.sha256(f"{seed}\x00{v}".encode()).digest()[:8] for v in unique]
    return unique[np.argsort(np.array(digests, dtype="S8"), kind="stable")]


def visitor_digests(visitors: Iterable[str]) -> np.ndarray:
    """(n,) int64 digests of visitor names: what a checkpoint keeps of who trained it
    (never the names, which may be personal data)."""
    return np.array(
        [
            int.from_bytes(hashlib.sha256(str(v).encode()).digest()[:8], "little", signed=True)
            for v in visitors
        ],
        dtype=np.int64,
    )


def visitor_parts(
    visitors: np.ndarray | pd.Series, fractions: Fractions = FRACTIONS, seed: int = 0
) -> np.ndarray:
    """Which part (0 train, 1 validation, 2 test) each of ``visitors`` falls in: the
    distinct visitors in ``visitor_order``, cut by ``fractions`` (at least one visitor in
    validation, and in test unless ``fractions[2]`` is 0 or there are only 2)."""
    names = np.asarray(visitors, dtype=str)
    order = visitor_order(names, seed)
    n = len(order)
    if n < 2:
        raise LogError(
            f"the logs hold {n} visitor{'s' if n != 1 else ''}: need at least 2 to hold some out"
        )
    n_val = max(1, round(n * fractions[1]))
    n_test = max(1, round(n * fractions[2])) if n >= 3 and fractions[2] > 0 else 0
    n_train = max(1, n - n_val - n_test)
    part_of = np.repeat(np.array([0, 1, 2], dtype=np.int8), [n_train, n_val, n - n_train - n_val])
    # order[r] is the visitor of rank r; the distinct visitors sorted by name are
    # order[argsort(order)], so name j of them has part part_of[argsort(order)[j]].
    by_name = part_of[np.argsort(order)]
    return by_name[np.searchsorted(np.sort(order), names)]


def split(
    seqs: Sequences, fractions: Fractions = FRACTIONS, seed: int = 0
) -> tuple[Sequences, Sequences, Sequences]:
    """Train/validation/test by visitor (``visitor_parts``): all trajectories (sessions)
    of a visitor fall in one part. Without a test part, validation stands in for it."""
    of = visitor_parts(seqs.visitors, fractions, seed)
    train, val, test = (seqs.take(np.flatnonzero(of == p)) for p in (0, 1, 2))
    return train, val, (test if len(test) else val)


# ============================================================================ tensors


def blocks(seqs: Sequences, block_size: int) -> dict[str, torch.Tensor]:
    """Fixed-length windows of trajectories as tensors.

    Each window holds the token features (B, T), ``options`` (B, T, Z) option states,
    ``profile`` (B, P) the trajectory's declared profile (where ``seqs`` has profiles),
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
    if seqs.shows is not None:
        out["shows"] = np.zeros((n, block_size, z), dtype=np.int8)
    if seqs.profiles is not None:
        out["profile"] = np.zeros((n, seqs.profiles.shape[1]), dtype=np.uint8)
        of_visit = np.repeat(np.arange(len(seqs)), np.diff(seqs.offsets))
    ends = np.zeros(seqs.n_visits, dtype=np.int64)  # end of each visit's trajectory
    for s, e in zip(seqs.offsets[:-1], seqs.offsets[1:], strict=True):
        ends[s:e] = e
    for w, (s, e, first) in enumerate(windows):
        length = e - s
        out["length"][w] = length
        for name in FEATURES:
            out[name][w, :length] = seqs.features[name][s:e]
        out["options"][w, :length] = seqs.options[s:e]
        if seqs.shows is not None:
            out["shows"][w, :length] = seqs.shows[s:e]
        if seqs.profiles is not None:
            out["profile"][w] = seqs.profiles[of_visit[s]]
        has_next = np.arange(s, e) + 1 < ends[s:e]
        positions = np.arange(length)
        keep = has_next & (positions >= first)
        nxt = np.minimum(np.arange(s, e) + 1, seqs.n_visits - 1)
        out["next_zone"][w, :length] = np.where(keep, seqs.features["zone"][nxt], -1)
        dwell = seqs.features["dwell"] if seqs.served_dwell is None else seqs.served_dwell
        out["next_dwell"][w, :length] = np.where(keep, dwell[nxt], -1)
    return {k: torch.from_numpy(v) for k, v in out.items()}
