"""Provenance: what made a result, and a record no one can quietly rewrite.

Every ``simulate``, ``train``, ``optimize`` and ``validate`` writes a provenance record
beside its outputs (``DIR/provenance.json``; ``validate``: ``<report>.provenance.json``):
the command and its options, the code version, and the SHA-256 of every input (scenario,
venue, model, logs) and every output file. The record's own digest is appended to a
ledger (``VENUETWIN_LEDGER``, default ``~/.local/share/venuetwin/ledger.jsonl``): one
JSON line per record, each holding the digest of the entry before it, so that altering,
removing or reordering an entry breaks the chain at that entry.

``verify_record`` re-hashes a record's files and names each that changed or went missing;
``verify_ledger`` walks the chain and names the first entry altered, removed or out of
order. A record may be signed with an Ed25519 key (``--sign KEY``, a PEM private key):
the signature covers the record, so a record edited to match edited files fails too.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llm.fileio import atomic_path, sha256_file

#: Where the ledger is, unless ``VENUETWIN_LEDGER`` says.
LEDGER_ENV = "VENUETWIN_LEDGER"
RECORD_NAME = "provenance.json"
FORMAT = 1
GENESIS = "0" * 64


class ProvenanceError(ValueError):
    """A record, a ledger or a key that cannot be read; the message names the file."""


def default_ledger() -> Path:
    """``$VENUETWIN_LEDGER``, else the user's data folder (XDG)."""
    if os.environ.get(LEDGER_ENV):
        return Path(os.environ[LEDGER_ENV])
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "venuetwin" / "ledger.jsonl"


def canonical(value: Any) -> bytes:
    """The one byte form of a JSON value that digests and signatures cover."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def code_version() -> dict[str, Any]:
    """The venuetwin version, its git commit (and whether the tree had changes) when it
    runs from a clone, and the interpreter's and libraries' versions."""
    from importlib.metadata import PackageNotFoundError, version

    def of(package: str) -> str | None:
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    root = Path(__file__).resolve().parents[1]
    commit = dirty = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git = ["git", "-C", str(root)]
        done = subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if done.returncode == 0:
            commit = done.stdout.strip()
            status = subprocess.run(
                [*git, "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=5,
            )
            dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return {
        "venuetwin": of("venuetwin"),
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "torch": of("torch"),
        "numpy": of("numpy"),
        "mesa": of("mesa"),
    }


def _files(paths: Mapping[str, str | os.PathLike[str] | Sequence[str | os.PathLike[str]]]):
    """``{role: [{"path", "sha256"}, ...]}`` of the files that exist."""
    out: dict[str, list[dict[str, str]]] = {}
    for role, value in paths.items():
        if value is None:
            continue
        items = [value] if isinstance(value, str | os.PathLike) else list(value)
        found = [Path(p) for p in items if p is not None and Path(p).is_file()]
        if found:
            out[role] = [{"path": str(p.resolve()), "sha256": sha256_file(p)} for p in found]
    return out


def scenario_inputs(scenario: Any, scenario_file: str | None) -> dict[str, Any]:
    """The files a scenario's run reads: the scenario file, the venue (a built-in one's
    packaged file), the model (the venue's shipped one for GPT avatars without their own)."""
    from importlib import resources

    from twin.catalog import shipped_model_path
    from twin.venue import BUILTIN_VENUES

    venue = scenario.venue
    if isinstance(venue, str) and venue in BUILTIN_VENUES:
        venue = str(resources.files("twin").joinpath("venues", f"{venue}.json"))
    model = scenario.model
    if model is None and scenario.policy == "gpt":
        with contextlib.suppress(Exception):  # a venue without a shipped model: none
            model = str(shipped_model_path(scenario.load_venue().name))
    inputs: dict[str, Any] = {"scenario": scenario_file, "model": model}
    if isinstance(venue, str):
        inputs["venue"] = venue
    return inputs


def write_record(
    where: Path,
    *,
    command: str,
    argv: Sequence[str],
    options: Mapping[str, Any],
    inputs: Mapping[str, Any],
    outputs: Mapping[str, Any],
    sign: str | os.PathLike[str] | None = None,
    ledger: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Write the record to ``where`` (atomically), sign it if asked, and append its digest
    to the ledger. Returns the ledger entry."""
    record: dict[str, Any] = {
        "format": FORMAT,
        "command": command,
        "argv": list(argv),
        "options": json.loads(json.dumps(dict(options), default=str)),
        "code": code_version(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "inputs": _files(inputs),
        "outputs": _files(outputs),
    }
    if sign is not None:
        record["signature"] = _sign(record, Path(sign))
    body = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
    with atomic_path(where) as tmp:
        tmp.write_text(body, encoding="utf-8")
    return append_to_ledger(where, command, Path(ledger) if ledger else default_ledger())


def append_to_ledger(record: Path, command: str, ledger: Path) -> dict[str, Any]:
    """Append ``record``'s digest to ``ledger``, chained to the entry before it (the file
    locked while it is read and written, so processes append one after another)."""
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with open(ledger, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        lines = [line for line in handle.read().splitlines() if line.strip()]
        last = json.loads(lines[-1]) if lines else None
        entry = {
            "seq": (last["seq"] + 1) if last else 0,
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "command": command,
            "record": str(record.resolve()),
            "record_sha256": sha256_file(record),
            "prev": last["digest"] if last else GENESIS,
        }
        entry["digest"] = hashlib.sha256(canonical(entry)).hexdigest()
        handle.seek(0, os.SEEK_END)
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return entry


# ============================================================================ verifying
def find_record(path: str | os.PathLike[str]) -> Path:
    """A record given as its file, or the folder holding ``provenance.json``."""
    path = Path(path)
    found = path / RECORD_NAME if path.is_dir() else path
    if not found.is_file():
        raise ProvenanceError(f"{path}: no {RECORD_NAME} here (not a run's folder?)")
    return found


def read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ProvenanceError(f"{path}: not a provenance record ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ProvenanceError(f"{path}: not a provenance record of format {FORMAT}")
    return record


def verify_record(
    path: str | os.PathLike[str], ledger: str | os.PathLike[str] | None = None
) -> list[str]:
    """What changed since the record was written: each input or output file altered or
    missing, a signature that does not hold, a record the ledger does not know. [] when
    everything is as recorded."""
    where = find_record(path)
    record = read_record(where)
    problems = []
    for side in ("inputs", "outputs"):
        for role, files in record.get(side, {}).items():
            for item in files:
                file = Path(item["path"])
                if not file.is_file():
                    problems.append(f"{side[:-1]} {role}: {file} is missing")
                elif sha256_file(file) != item["sha256"]:
                    problems.append(f"{side[:-1]} {role}: {file} changed since the run")
    if "signature" in record:
        problems += _check_signature(record, where)
    ledger_path = Path(ledger) if ledger else default_ledger()
    digest = sha256_file(where)
    known = [e for e in _entries(ledger_path) if e.get("record_sha256") == digest]
    if not known:
        problems.append(f"{where}: the record is not in the ledger {ledger_path} as it is now")
    return problems


def _entries(ledger: Path) -> list[dict[str, Any]]:
    if not ledger.is_file():
        return []
    out = []
    for line in ledger.read_text("utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                out.append(entry)
    return out


def verify_ledger(ledger: str | os.PathLike[str] | None = None) -> tuple[int, list[str]]:
    """Walk the chain: (entries read, problems), the first problem naming the first entry
    that was altered, removed or moved."""
    path = Path(ledger) if ledger else default_ledger()
    if not path.is_file():
        raise ProvenanceError(f"{path}: no ledger here")
    prev, expected_seq, problems, count = GENESIS, 0, [], 0
    for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        count += 1
        try:
            entry = json.loads(line)
            body = {k: v for k, v in entry.items() if k != "digest"}
            seq = int(entry["seq"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            problems.append(f"{path}: line {number} is not a ledger entry")
            break
        if hashlib.sha256(canonical(body)).hexdigest() != entry.get("digest"):
            problems.append(f"{path}: line {number} (entry {seq}) was altered")
            break
        if entry.get("prev") != prev or seq != expected_seq:
            what = "removed" if seq > expected_seq else "moved or repeated"
            problems.append(
                f"{path}: line {number} (entry {seq}) does not follow entry "
                f"{expected_seq - 1}: an entry before it was {what}"
            )
            break
        prev, expected_seq = entry["digest"], seq + 1
    return count, problems


# ============================================================================ signing
def load_key(path: str | os.PathLike[str]) -> Any:
    """The Ed25519 private key of a PEM file (``--sign``), refused by name otherwise."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key_path = Path(path)
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise ProvenanceError(f"--sign: {key_path}: not a PEM private key ({reason})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ProvenanceError(f"--sign: {key_path}: not an Ed25519 key")
    return key


def _sign(record: dict[str, Any], key_path: Path) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization

    key = load_key(key_path)
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return {
        "algorithm": "ed25519",
        "public_key": base64.b64encode(public).decode(),
        "value": base64.b64encode(key.sign(canonical(record))).decode(),
    }


def _check_signature(record: dict[str, Any], where: Path) -> list[str]:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    signature = record["signature"]
    body = {k: v for k, v in record.items() if k != "signature"}
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(signature["public_key"]))
        public.verify(base64.b64decode(signature["value"]), canonical(body))
    except (InvalidSignature, KeyError, ValueError, TypeError):
        return [f"{where}: the signature does not match the record"]
    return []


def write_key(path: str | os.PathLike[str]) -> Path:
    """A new Ed25519 private key in PEM (for ``--sign``), readable by its owner only."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    target = Path(path)
    with atomic_path(target) as tmp:
        tmp.write_bytes(pem)
        os.chmod(tmp, 0o600)
    os.chmod(target, 0o600)
    return target


def argv_now() -> list[str]:
    return ["venuetwin", *sys.argv[1:]]
