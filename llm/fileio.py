"""Atomic file writes: a file appears whole under its final name, or not at all."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    If the body raises (or the process dies), the temporary file is removed (or left under a
    hidden ``.tmp`` name) and ``path`` keeps its old content.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, _mode_for(final))
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _mode_for(final: Path) -> int:
    """Keep an existing file's permissions; a new file gets 0o666 less the umask."""
    try:
        return final.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


class OutputPathError(ValueError):
    """An output path that cannot be written; the message names the option and the path."""


def check_writable_folder(path: str | os.PathLike[str], option: str) -> None:
    """Refuse, before any work, an output folder that is a file or cannot be made or
    written in."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputPathError(f"{option}: {folder} is a file, not a folder")
    check_writable(folder / "output", option)


def check_writable(path: str | os.PathLike[str], option: str) -> None:
    """Refuse, before any work, an output file that is a folder or whose folder cannot be
    made or written to."""
    final = Path(path)
    if final.is_dir():
        raise OutputPathError(f"{option}: {final} is a folder, not a file")
    folder = final.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"{option}: {final}: cannot write in {folder}")
    try:  # permissions can say yes where a write fails (/proc, a read-only mount): try one
        fd, probe = tempfile.mkstemp(prefix=".venuetwin-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputPathError(
            f"{option}: {final}: cannot write in {folder} ({exc.strerror or exc})"
        ) from None


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes, read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
