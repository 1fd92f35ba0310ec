"""Journal entries received by systemd-journal-remote, appended to the log host's ledger.

Every host ships its journal with systemd-journal-upload to systemd-journal-remote on
the log host, which (``SplitMode=host``) writes each sender's entries to
``remote-<address>.journal`` (archived as ``remote-<address>@….journal``). This module
follows those files with the systemd Python bindings and appends one record per entry,
with source ``journal/<host>``.

The sender's identity is its address, mapped to a host name by the inventory: Debian's
systemd-journal-remote is built without GnuTLS, so it cannot check client certificates
(``--trust`` is "not available"). An address the map does not name is still recorded,
as ``journal/unmapped/<address>``, so nothing received is dropped.

Every host logs a line tagged ``sovdeploy-heartbeat`` (``interval=<seconds>``) from a
timer; it becomes a ``heartbeat`` record, so a host whose upload stops is reported
silent by ``sovdeploy audit verify``.

Restart: the follower saves, after each durable batch, the log size it has seen and each
source's next seq and last cursor; on start it reads the records appended after that
size, so a crash between an append and the save neither repeats nor skips a number.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self

from sovdeploy.ledger import records
from sovdeploy.ledger.log import Writer
from sovdeploy.ledger.worker import Worker, read_state, write_state

HEARTBEAT_TAG = "sovdeploy-heartbeat"
SOURCE_PREFIX = "journal/"
STATE_FILE = "journal-follower.json"
#: The fields kept from each entry; the rest (cgroup paths, capabilities) is noise.
FIELDS = (
    "MESSAGE",
    "PRIORITY",
    "SYSLOG_IDENTIFIER",
    "_SYSTEMD_UNIT",
    "_COMM",
    "_EXE",
    "_PID",
    "_UID",
    "_TRANSPORT",
    "_HOSTNAME",
    "_BOOT_ID",
    # An audit record's type, the kernel's serial number for its event, and who was
    # logged in (auditd's records reach the journal through journald's audit socket).
    "_AUDIT_TYPE_NAME",
    "_AUDIT_ID",
    "_AUDIT_LOGINUID",
    "_AUDIT_SESSION",
)
#: The journal transport of the kernel's audit records.
AUDIT_TRANSPORT = "audit"
_FILE = re.compile(r"^remote-(?P<address>[^@/]+?)(?:@[^/]*)?\.journal~?$")
_INTERVAL = re.compile(r"\binterval=(\d+(?:\.\d+)?)\b")


def plain(value: Any) -> Any:
    """A journal field as JSON can hold it; bytes that are not UTF-8 become base64."""
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            value = {"base64": base64.b64encode(value).decode()}
    elif isinstance(value, dt.datetime):
        value = iso(value)
    elif isinstance(value, uuid.UUID):
        value = value.hex
    elif isinstance(value, list):
        value = [plain(v) for v in value]
    elif not isinstance(value, bool | int | str):
        value = str(value)
    return value


def iso(when: dt.datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def source_for(address: str, hosts: Mapping[str, str]) -> str:
    host = hosts.get(address)
    return SOURCE_PREFIX + (host if host else f"unmapped/{address}")


def record_for(entry: Mapping[str, Any], source: str, seq: int) -> dict[str, Any]:
    """The ledger record of one journal entry (``heartbeat`` for the heartbeat lines)."""
    when = entry.get("__REALTIME_TIMESTAMP")
    head: dict[str, Any] = {
        "source": source,
        "seq": seq,
        "time": iso(when) if isinstance(when, dt.datetime) else records.timestamp(),
        "cursor": plain(entry.get("__CURSOR", "")),
    }
    message = plain(entry.get("MESSAGE", ""))
    if entry.get("SYSLOG_IDENTIFIER") == HEARTBEAT_TAG and isinstance(message, str):
        found = _INTERVAL.search(message)
        if found:
            interval = float(found.group(1))
            return {"kind": "heartbeat", **head, "interval": int(interval) or interval}
    fields = {k: plain(entry[k]) for k in FIELDS if k in entry}
    kind = "audit" if entry.get("_TRANSPORT") == AUDIT_TRANSPORT else "journal"
    return {"kind": kind, **head, "fields": fields}


def files_by_address(directory: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for path in sorted(directory.glob("remote-*.journal*")):
        m = _FILE.match(path.name)
        if m:
            found.setdefault(m.group("address"), []).append(path)
    return found


@dataclass
class FollowerState:
    """What the follower has appended: the log size it saw, and per source seq and cursor."""

    size: int = 0
    seq: dict[str, int] = field(default_factory=dict)
    cursor: dict[str, str] = field(default_factory=dict)

    def owns(self, source: str) -> bool:
        """Whether this state keeps ``source``'s numbers: the journal sources."""
        return source.startswith(SOURCE_PREFIX)

    def see(self, record: Mapping[str, Any]) -> None:
        source = record.get("source")
        if isinstance(source, str) and self.owns(source):
            seq = record.get("seq")
            if isinstance(seq, int):
                self.seq[source] = max(self.seq.get(source, 0), seq + 1)
            cursor = record.get("cursor")
            if isinstance(cursor, str) and cursor:
                self.cursor[source] = cursor

    @classmethod
    def load(cls, path: Path) -> Self:
        raw = read_state(path)
        if raw is None:
            return cls()
        return cls(int(raw["size"]), dict(raw["seq"]), dict(raw.get("cursor", {})))

    def save(self, path: Path) -> None:
        write_state(path, {"size": self.size, "seq": self.seq, "cursor": self.cursor})


class SeenState(Protocol):
    """What a worker keeps of the records it wrote: folded in by :func:`catch_up`."""

    size: int

    def see(self, record: Mapping[str, Any]) -> None: ...


def catch_up(state: SeenState, entries: Iterable[bytes], size: int) -> None:
    """Fold in the records appended after ``state.size`` (a crash before the last save)."""
    for entry in entries:
        try:
            state.see(records.decode(entry))
        except (ValueError, records.RecordError):
            continue
    state.size = size


class Follower(Worker):
    """Follows a journal-remote output directory into the ledger (a thread of the service)."""

    thread_name = "journal-follower"

    def __init__(
        self,
        directory: Path,
        hosts: Mapping[str, str],
        writer: Writer,
        state_path: Path,
        *,
        poll: float = 1.0,
        batch: int = 1024,
        reader: Callable[[list[Path]], Any] | None = None,
    ) -> None:
        super().__init__()
        self.directory = directory
        self.hosts = dict(hosts)
        self.writer = writer
        self.poll = poll
        self.batch = batch
        self._open = reader or _systemd_reader
        self._readers: dict[str, tuple[tuple[Path, ...], Any]] = {}
        self._state_path = state_path
        self.state = FollowerState.load(state_path)
        log = writer.log
        start = min(self.state.size, log.size)
        catch_up(self.state, (log.entry(i) for i in range(start, log.size)), log.size)

    def _reader(self, address: str, paths: list[Path], source: str) -> Any:
        key = tuple(paths)
        held = self._readers.get(address)
        if held is not None and held[0] == key:
            return held[1]
        if held is not None:
            held[1].close()
        reader = self._open(paths)
        cursor = self.state.cursor.get(source)
        if cursor:
            reader.seek_cursor(cursor)
            reader.get_next()  # the cursor's own entry is already in the ledger
        self._readers[address] = (key, reader)
        return reader

    def step(self) -> int:
        """Append what arrived since the last step; return how many records."""
        appended = 0
        for address, paths in files_by_address(self.directory).items():
            source = source_for(address, self.hosts)
            reader = self._reader(address, paths, source)
            while True:
                pending = []
                for _ in range(self.batch):
                    entry = reader.get_next()
                    if not entry:
                        break
                    seq = self.state.seq.get(source, 0)
                    rec = record_for(entry, source, seq)
                    pending.append(self.writer.append(records.entry_for(rec, self.writer.log.root)))
                    self.state.seq[source] = seq + 1
                    self.state.cursor[source] = rec["cursor"]
                if not pending:
                    break
                last = max(f.result() for f in pending)
                self.state.size = max(self.state.size, last + 1)
                self.state.save(self._state_path)
                appended += len(pending)
        return appended

    def work(self) -> None:
        while not self._stop.is_set():
            self.step()
            self._stop.wait(self.poll)

    def close(self) -> None:
        super().close()
        for _, reader in self._readers.values():
            reader.close()
        self._readers.clear()


def _systemd_reader(paths: list[Path]) -> Any:
    # python3-systemd, installed on the log host only; the deployer never imports it.
    from systemd import journal  # type: ignore[import-not-found]

    return journal.Reader(files=[str(p) for p in paths])
