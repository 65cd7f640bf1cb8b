"""Files users upload: size-capped, checked in a temporary place before they are kept under
the dashboard's folder by content hash (the folder capped, the oldest going first), with
messages that name the uploaded file (never the temp path).

Nothing uploaded is unpickled: logs are read as CSV or Parquet tables, scenarios as TOML,
models as safetensors (``llm.checkpoint``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from llm.logs import Columns, LogError, detect_separator

#: The largest upload accepted, in megabytes (also ``server.maxUploadSize``).
MAX_UPLOAD_MB = 50
#: What the uploads folder keeps at most: the oldest uploads go first.
MAX_KEPT_MB, MAX_KEPT_FILES = 500, 100
LOG_TYPES = ("csv", "parquet", "pq")
#: Columns of a visit log in the contract (``llm.logschema``).


class UploadError(ValueError):
    """An upload that cannot be used; the message names the file."""


def safe_name(name: str) -> str:
    """The uploaded file's base name with only plain characters left."""
    base = Path(name).name or "upload"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base)


def store(
    name: str,
    data: bytes,
    folder: Path,
    types: Sequence[str],
    check: Callable[[Path], object] | None = None,
) -> Path:
    """Keep an upload as ``folder/<sha256 prefix>/<name>`` and return the path, refusing,
    by name and before anything is written, files above ``MAX_UPLOAD_MB``, of other types
    or empty. With ``check`` (the loader that will read it), the file is checked in a
    temporary place first and kept only if it passes; what fails is removed, its message
    naming the upload. The folder keeps at most ``MAX_KEPT_MB`` and ``MAX_KEPT_FILES``
    uploads, the oldest going first."""
    size_mb = len(data) / 1e6
    if size_mb > MAX_UPLOAD_MB:
        raise UploadError(
            f"{name}: {size_mb:.1f} MB is above the {MAX_UPLOAD_MB} MB upload limit; "
            "sample the log or split it by day"
        )
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix not in types:
        raise UploadError(f"{name}: expected a {' or '.join('.' + t for t in types)} file")
    if not data:
        raise UploadError(f"{name}: the file is empty")
    path = folder / hashlib.sha256(data).hexdigest()[:16] / safe_name(name)
    if path.exists():
        path.touch()  # used again: the newest
        return path
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=_made(folder)))
    try:
        staged = staging / path.name
        staged.write_bytes(data)
        if check is not None:
            try:
                check(staged)
            except Exception as exc:
                raise _renamed(exc, staged, name) from None
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    prune(folder, keep=path)
    return path


def prune(folder: Path, keep: Path | None = None) -> list[Path]:
    """Remove the oldest uploads until the folder holds at most ``MAX_KEPT_FILES`` files
    and ``MAX_KEPT_MB`` megabytes (never ``keep``); returns those removed."""
    files = sorted(
        (p for p in folder.glob("*/*") if p.is_file() and not p.parent.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
    )
    total = sum(p.stat().st_size for p in files) / 1e6
    removed = []
    for old in files:
        if len(files) - len(removed) <= MAX_KEPT_FILES and total <= MAX_KEPT_MB:
            break
        if keep is not None and old == keep:
            continue
        total -= old.stat().st_size / 1e6
        old.unlink()
        with contextlib.suppress(OSError):
            old.parent.rmdir()
        removed.append(old)
    return removed


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _renamed(exc: Exception, staged: Path, name: str) -> Exception:
    """``exc`` with the temporary path replaced by the upload's name (an UploadError
    where its type cannot be made from a message)."""
    message = named(str(exc), staged, name)
    try:
        return type(exc)(message)
    except TypeError:
        return UploadError(message)


def named(message: str, path: Path, name: str) -> str:
    """``message`` with the stored path replaced by the name the user knows."""
    return message.replace(str(path), name)


def table_columns(path: Path, name: str) -> list[str]:
    """The columns of an uploaded log, refusing, by file name, what is not a table."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            columns = [str(c) for c in pq.read_schema(path).names]
        except Exception as exc:  # pyarrow raises several kinds for a non-Parquet file
            raise LogError(f"{name}: not a readable Parquet table ({exc})") from None
    else:
        head = path.read_bytes()[:65536]
        if b"\x00" in head:
            raise LogError(f"{name}: not a CSV table (the file holds binary data)")
        try:
            sep = detect_separator(path)
            columns = [str(c) for c in pd.read_csv(path, sep=sep, nrows=100, index_col=False)]
        except pd.errors.EmptyDataError:
            raise LogError(f"{name}: the log is empty") from None
        except Exception as exc:  # the CSV parser and decoders raise several kinds
            raise LogError(f"{name}: not a readable CSV table ({exc})") from None
    if len(columns) < 3:
        raise LogError(
            f"{name}: not a visit log: it has {len(columns)} column"
            f"{'s' if len(columns) != 1 else ''} ({', '.join(columns)}); a visit log needs "
            "an avatar id, a time and a zone column"
        )
    return columns


def missing_columns(columns: Sequence[str], mapping: Columns, name: str) -> str | None:
    """A message naming the mapped columns the log lacks, or None when all are there."""
    wanted = [("avatar id", c) for c in mapping.ids]
    wanted += [("time", mapping.timestamp), ("zone", mapping.zone)]
    if mapping.session is not None:
        wanted.append(("session", mapping.session))
    lacking = [f"{role} column {col!r}" for role, col in wanted if col not in columns]
    if not lacking:
        return None
    return (
        f"{name}: no {', no '.join(lacking)} (columns: {', '.join(columns)}); "
        "choose the right columns below"
    )
