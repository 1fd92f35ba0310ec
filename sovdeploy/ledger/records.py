"""Ledger records: canonical JSON entries with a source, a sequence number and a time.

Every entry is an RFC 8785 (JCS) object, so the same record always has the same bytes
and the same leaf hash, whoever serialises it. Each carries ``source`` and ``seq``
(consecutive per source, from 0), which is how a verifier finds a gap; sources that
run continuously also write ``heartbeat`` records that declare their interval, which
is how a verifier finds one that went silent.

An entry is at most 65,535 bytes (an entry bundle's uint16 length prefix). A larger
record is stored beside the log as ``blobs/<sha256>`` and the entry names its digest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import rfc8785

from sovdeploy.errors import LedgerError
from sovdeploy.fsutil import atomic_write
from sovdeploy.ledger import tiles
from sovdeploy.ledger.log import Writer

BLOB_DIR = "blobs"


class RecordError(LedgerError, ValueError):
    """A record cannot be encoded (a value JSON cannot hold, a reserved field)."""


def timestamp() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode(record: Mapping[str, Any]) -> bytes:
    """The canonical (RFC 8785) bytes of ``record``."""
    try:
        return rfc8785.dumps(dict(record))
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise RecordError(f"cannot encode the record: {exc}") from exc


def decode(entry: bytes) -> dict[str, Any]:
    value = json.loads(entry)
    if not isinstance(value, dict):
        raise RecordError("a ledger entry is a JSON object")
    return value


def blob_path(root: Path, digest: str) -> Path:
    return root / BLOB_DIR / digest[:2] / digest


def entry_for(record: Mapping[str, Any], root: Path) -> bytes:
    """The entry for ``record``: its canonical bytes, or, when too large, a blob reference.

    The blob (the whole canonical record) is written to the log's ``blobs/`` first; the
    entry keeps ``kind``, ``source``, ``seq`` and ``time`` and names the blob's digest.
    """
    entry = encode(record)
    if len(entry) <= tiles.MAX_ENTRY_SIZE:
        return entry
    digest = hashlib.sha256(entry).hexdigest()
    path = blob_path(root, digest)
    if not path.exists():
        atomic_write(path, entry)
    head = {k: record[k] for k in ("kind", "source", "seq", "time") if k in record}
    return encode({**head, "blob": {"sha256": digest, "size": len(entry)}})


class Ledger:
    """Appends records for one source, numbering them; large ones go to blobs."""

    def __init__(self, writer: Writer, source: str, clock: Callable[[], str] = timestamp) -> None:
        self.writer = writer
        self.source = source
        self.clock = clock
        self._lock = threading.Lock()
        self._seq = self._next_seq()

    def _next_seq(self) -> int:
        log = self.writer.log
        for index in range(log.size - 1, -1, -1):
            try:
                rec = decode(log.entry(index))
            except (ValueError, RecordError):
                continue
            if rec.get("source") == self.source and isinstance(rec.get("seq"), int):
                return int(rec["seq"]) + 1
        return 0

    def record(self, kind: str, **fields: Any) -> Future[int]:
        """Append one record; the future resolves to its index once it is durable."""
        reserved = {"kind", "source", "seq", "time", "blob"} & fields.keys()
        if reserved:
            raise RecordError(f"reserved field(s) {sorted(reserved)} in a {kind} record")
        with self._lock:
            head = {"kind": kind, "source": self.source, "seq": self._seq, "time": self.clock()}
            fut = self.writer.append(entry_for({**head, **fields}, self.writer.log.root))
            self._seq += 1
            return fut
