"""Reading visit logs: rows in, one row per visit out, bad input refused by name.

``read_logs`` takes CSV or Parquet files in the visit-log contract (``llm.logschema``),
maps other column names (a visitor may be named by several columns, a trajectory is a
visitor's session), detects the CSV separator, parses unix seconds, milliseconds or
ISO-8601 timestamps (in a given time zone), merges consecutive rows at one zone into one
visit, and derives what is missing as the causality rule allows (``llm.causal``): a
visit's dwell from its own rows, occupancy by counting the visits the log vouches present,
queue waits as 0 (unknown). Bad input is refused with a ``LogError`` naming the file, the
row and the column (never a visitor's id, which may be personal data). Turning the visits
into tokens is ``llm.data``'s.

Its length: every way a real log's rows can be malformed is refused here, each with the
file, row and column in its message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from llm.causal import present_at
from llm.features import PROFILE_SEP
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
    frame["log"] = file_index  # which of the logs read together (its own programme, say)
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
            millis = numeric.abs() > MILLISECONDS_ABOVE
            if millis.any() and not millis.all():  # one column, one unit
                at_s, at_ms = (int(np.flatnonzero(m.to_numpy())[0]) for m in (~millis, millis))
                raise LogError(
                    f"{path}: column {column!r} mixes unix seconds and milliseconds: row "
                    f"{at_s + 1} {_plain(values.iloc[at_s])!r} reads as seconds, row "
                    f"{at_ms + 1} {_plain(values.iloc[at_ms])!r} as milliseconds"
                )
            unit = "ms" if millis.any() else "s"
            scale = numeric.abs()
            low, high = int(scale.to_numpy().argmin()), int(scale.to_numpy().argmax())
            if scale.iloc[low] > 1e5 and scale.iloc[high] > 500 * scale.iloc[low]:
                # Times of one log a day or more after 1970 lie within decades of each other;
                # hundreds of times apart, some are in another unit.
                raise LogError(
                    f"{path}: column {column!r} mixes time units: row {low + 1} "
                    f"{_plain(values.iloc[low])!r} and row {high + 1} "
                    f"{_plain(values.iloc[high])!r} are {scale.iloc[high] / scale.iloc[low]:,.0f} "
                    "times apart (seconds and milliseconds mixed?)"
                )
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
    years = parsed.dt.year
    outside = ~years.between(1678, 2261)  # beyond, nanosecond datetimes overflow
    if outside.any():
        at = int(np.flatnonzero(outside.to_numpy())[0])
        raise LogError(
            f"{path}: row {at + 1}, column {column!r}: {_plain(values.iloc[at])!r} is not a "
            "time between 1678 and 2261"
        )
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
