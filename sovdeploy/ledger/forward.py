"""Forwarding the orchestrator's ledger to the deployment's log host.

The orchestrator's ledger (``<state>/ledger``) is where ``sovdeploy`` records what it
does; the log host's ledger is where an auditor looks. Once the ``logging`` phase has
run, every command ends by posting to the log host the orchestrator's records that it
does not hold yet, as source ``orchestrator``:

- The log host says where to resume (``GET /sources/orchestrator``) and refuses a record
  that is not the next in order, so a forward cut off half-way, or one whose answer was
  lost, resends nothing twice and skips nothing.
- Each record is sent as the canonical bytes the orchestrator's ledger holds (for a
  record stored as a blob, the blob itself), so the log host's entry is byte-identical
  to the orchestrator's: the same leaf hash in both logs.
- The client certificate (common name ``orchestrator``) is issued by the ``logging``
  phase from the deployment CA, next to ``endpoint.json``, which names the log host.

``<state>/logging/forwarded.json`` remembers where the last forward stopped, so the
next one need not read the ledger from the start; it is a hint, checked against the
log host's answer every time.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sovdeploy.errors import LedgerError
from sovdeploy.fsutil import atomic_write
from sovdeploy.ledger import local, records

CLIENT_DIR = Path("logging") / "client"
ENDPOINT_FILE = "endpoint.json"
PROGRESS_FILE = Path("logging") / "forwarded.json"
#: Stays well under the service's request limit (4 MiB).
BATCH_BYTES = 2 * 1024 * 1024
BATCH_RECORDS = 2048
MAX_RECORD = 4 * 1024 * 1024 - 1


@dataclass(frozen=True)
class Endpoint:
    """The log host the orchestrator forwards to, and the credentials it uses."""

    host: str
    url: str
    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class Forwarded:
    sent: int
    next_seq: int


def endpoint(state_root: Path) -> Endpoint | None:
    """The log host named by the ``logging`` phase, or None before that phase ran."""
    client = state_root / CLIENT_DIR
    try:
        raw = json.loads((client / ENDPOINT_FILE).read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise LedgerError(f"{client / ENDPOINT_FILE} is not JSON: {exc}") from None
    return Endpoint(
        host=str(raw["host"]),
        url=str(raw["url"]).rstrip("/"),
        ca=state_root / "pki" / "ca.crt",
        cert=client / "orchestrator.crt",
        key=client / "orchestrator.key",
    )


def forget(state_root: Path) -> None:
    """Stop forwarding (the log host is gone): drop the endpoint and the progress hint."""
    (state_root / CLIENT_DIR / ENDPOINT_FILE).unlink(missing_ok=True)
    (state_root / PROGRESS_FILE).unlink(missing_ok=True)


def client_context(ep: Endpoint) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ep.ca))
    context.load_cert_chain(ep.cert, ep.key)
    return context


def next_seq(ep: Endpoint, context: ssl.SSLContext, source: str, timeout: float) -> int:
    url = f"{ep.url}/sources/{urllib.parse.quote(source, safe='/')}"
    with urllib.request.urlopen(url, context=context, timeout=timeout) as resp:  # noqa: S310 - https from endpoint.json
        answer = json.load(resp)
    if not isinstance(answer, dict) or not isinstance(answer.get("next"), int):
        raise LedgerError(f"{ep.url} answered {answer!r} for the next seq of {source}")
    return int(answer["next"])


def _post(ep: Endpoint, context: ssl.SSLContext, lines: list[bytes], timeout: float) -> None:
    body = b"".join(line + b"\n" for line in lines)
    request = urllib.request.Request(f"{ep.url}/add", data=body, method="POST")  # noqa: S310
    request.add_header("Content-Type", "application/jsonl")
    try:
        with urllib.request.urlopen(request, context=context, timeout=timeout) as resp:  # noqa: S310
            answer = json.load(resp)
    except urllib.error.HTTPError as exc:
        reason = exc.read().decode(errors="replace").strip()
        raise LedgerError(f"{ep.host} refused the records ({exc.code}): {reason}") from None
    indices = answer.get("indices") if isinstance(answer, dict) else None
    if not isinstance(indices, list) or len(indices) != len(lines):
        raise LedgerError(f"{ep.host} acknowledged {indices!r} for {len(lines)} record(s)")


def _wire_bytes(state_root: Path, entry: bytes, record: dict[str, Any]) -> bytes:
    """What to send for one entry: the entry, or the whole record its blob holds."""
    blob = record.get("blob")
    if not isinstance(blob, dict):
        return entry
    digest = str(blob.get("sha256", ""))
    path = records.blob_path(local.ledger_dir(state_root), digest)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LedgerError(f"the ledger's blob {path} is missing") from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise LedgerError(f"the ledger's blob {path} does not match its digest")
    return data


def _pending(
    state_root: Path, start: tuple[int, int], want: int
) -> Iterator[tuple[int, int, bytes]]:
    """(index, seq, bytes to send) of each orchestrator record from seq ``want`` on.

    ``start`` is an index to read from and the seq the ledger is known to reach there.
    """
    first, reached = start
    for index, entry in local.indexed_entries(state_root, first):
        record = records.decode(entry)
        seq = record.get("seq")
        if record.get("source") != local.SOURCE or not isinstance(seq, int):
            continue
        reached = max(reached, seq + 1)
        if seq < want:
            continue
        if seq > want:
            break
        yield index, seq, _wire_bytes(state_root, entry, record)
        want += 1
    if reached < want:
        raise LedgerError(
            f"the log host expects orchestrator record {want}, but this ledger ends at "
            f"{reached}: was the deployment's state dir replaced?"
        )
    if reached > want:
        raise LedgerError(f"orchestrator record {want} is missing from this ledger")


def _start(state_root: Path, want: int) -> tuple[int, int]:
    """Where to start reading: the hint of the last forward, when it is not ahead."""
    try:
        hint = json.loads((state_root / PROGRESS_FILE).read_text())
        index, seq = int(hint["index"]), int(hint["seq"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return 0, 0
    return (index, seq) if seq <= want else (0, 0)


def forward(state_root: Path, ep: Endpoint, *, timeout: float = 15.0) -> Forwarded:
    """Post what the log host lacks of the orchestrator's ledger; return how much."""
    context = client_context(ep)
    want = next_seq(ep, context, local.SOURCE, timeout)
    start = _start(state_root, want)
    sent = 0
    batch: list[bytes] = []
    size = 0
    last = (start[0], want)

    def flush() -> None:
        nonlocal batch, size, sent
        _post(ep, context, batch, timeout)
        sent += len(batch)
        batch, size = [], 0
        hint = {"host": ep.host, "url": ep.url, "index": last[0], "seq": last[1]}
        atomic_write(state_root / PROGRESS_FILE, json.dumps(hint, sort_keys=True) + "\n")

    for index, seq, data in _pending(state_root, start, want):
        if len(data) > MAX_RECORD:
            raise LedgerError(f"orchestrator record {seq} is {len(data)} bytes, over the limit")
        if batch and (size + len(data) > BATCH_BYTES or len(batch) >= BATCH_RECORDS):
            flush()
        batch.append(data)
        size += len(data) + 1
        last = (index + 1, seq + 1)
    if batch:
        flush()
    return Forwarded(sent, last[1])


def _served(ep: Endpoint) -> tuple[Any, int]:
    """The log host's files, read like an auditor, and its latest checkpoint's size."""
    from sovdeploy.ledger import audit
    from sovdeploy.ledger.checkpoint import SignedCheckpoint

    files = audit.HttpFiles(ep.url, ssl.create_default_context(cafile=str(ep.ca)))
    data = files.read("checkpoint")
    if data is None:
        raise LedgerError(f"{ep.host} serves no checkpoint")
    return files, SignedCheckpoint.parse(data).checkpoint.size


def served_size(ep: Endpoint) -> int:
    """How many entries the log host's latest checkpoint covers."""
    return _served(ep)[1]


def served_records(ep: Endpoint, start: int) -> tuple[int, list[dict[str, Any]]]:
    """The records the log host serves from index ``start``, and where they end."""
    from sovdeploy.ledger import tiles

    files, size = _served(ep)
    reader = tiles.TileReader(files.read, size)
    return size, [records.decode(reader.entry(i)) for i in range(start, size)]
