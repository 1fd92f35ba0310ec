"""The journal follower: entries to records, per-host seq, heartbeats, restart without gaps.

The systemd bindings exist on the log host only (python3-systemd); here a list stands in
for ``systemd.journal.Reader``, with the same calls (``get_next``, ``seek_cursor``,
``close``). The real reader on a real systemd-journal-remote is exercised by the
``logging`` role's Molecule scenario.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest

from sovdeploy.hostside import journal
from sovdeploy.ledger import audit, records
from sovdeploy.ledger.log import open_writer
from sovdeploy.ledger.note import Signer

ORIGIN = "sovdeploy.test/journal"
SIGNER = Signer.generate(ORIGIN)
BOOT = uuid.uuid4()


def entry(n: int, message: Any = None, tag: str = "sshd") -> dict[str, Any]:
    return {
        "__CURSOR": f"s=abc;i={n:x}",
        "__REALTIME_TIMESTAMP": dt.datetime(2026, 11, 21, 12, 0, n % 60, tzinfo=dt.UTC),
        "MESSAGE": f"line {n}" if message is None else message,
        "SYSLOG_IDENTIFIER": tag,
        "PRIORITY": 6,
        "_BOOT_ID": BOOT,
        "_SYSTEMD_CGROUP": "/system.slice/ssh.service",
    }


class Journal:
    """What the follower reads: per file set, the entries journal-remote wrote so far."""

    def __init__(self) -> None:
        self.entries: dict[str, list[dict[str, Any]]] = {}

    def reader(self, paths: list[Path]) -> ListReader:
        address = journal.files_by_address(paths[0].parent)
        (addr,) = [a for a, ps in address.items() if ps == paths]
        return ListReader(self.entries.setdefault(addr, []))


class ListReader:
    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = entries
        self.at = 0

    def seek_cursor(self, cursor: str) -> None:
        self.at = next(i for i, e in enumerate(self.entries) if e["__CURSOR"] == cursor)

    def get_next(self) -> dict[str, Any]:
        if self.at >= len(self.entries):
            return {}
        self.at += 1
        return self.entries[self.at - 1]

    def close(self) -> None:
        pass


def test_record_of_an_entry_keeps_the_fields_that_matter():
    rec = journal.record_for(entry(3), "journal/ctl1", 7)
    assert rec == {
        "kind": "journal",
        "source": "journal/ctl1",
        "seq": 7,
        "time": "2026-11-21T12:00:03.000000Z",
        "cursor": "s=abc;i=3",
        "fields": {
            "MESSAGE": "line 3",
            "SYSLOG_IDENTIFIER": "sshd",
            "PRIORITY": 6,
            "_BOOT_ID": BOOT.hex,
        },
    }
    records.encode(rec)  # canonical JSON holds it


def test_an_audit_record_is_kind_audit_with_its_type_and_serial():
    raw = {
        **entry(4, "type=SYSCALL msg=audit(1795000000.123:4711): arch=c000003e syscall=59"),
        "_TRANSPORT": "audit",
        "_AUDIT_TYPE_NAME": "SYSCALL",
        "_AUDIT_ID": "4711",
        "_AUDIT_LOGINUID": 0,
        "_AUDIT_FIELD_ARCH": "c000003e",
    }
    rec = journal.record_for(raw, "journal/log1", 9)
    assert rec["kind"] == "audit"
    assert rec["fields"]["_AUDIT_TYPE_NAME"] == "SYSCALL" and rec["fields"]["_AUDIT_ID"] == "4711"
    assert rec["fields"]["_AUDIT_LOGINUID"] == 0 and "_AUDIT_FIELD_ARCH" not in rec["fields"]
    records.encode(rec)


def test_heartbeat_lines_become_heartbeat_records_and_bytes_survive():
    beat = journal.record_for(entry(1, "interval=60", journal.HEARTBEAT_TAG), "journal/h", 0)
    assert beat["kind"] == "heartbeat" and beat["interval"] == 60
    raw = journal.record_for(entry(2, b"\xff\x00ok"), "journal/h", 1)
    assert raw["fields"]["MESSAGE"] == {"base64": "/wBvaw=="}


def test_file_names_map_to_addresses_archived_ones_included(tmp_path):
    for name in (
        "remote-10.0.0.5.journal",
        "remote-10.0.0.5@abc-0001-0002.journal",
        "remote-::1.journal",
        "system.journal",
    ):
        (tmp_path / name).touch()
    found = journal.files_by_address(tmp_path)
    assert sorted(found) == ["10.0.0.5", "::1"]
    assert len(found["10.0.0.5"]) == 2
    assert journal.source_for("10.0.0.5", {"10.0.0.5": "cmp1"}) == "journal/cmp1"
    assert journal.source_for("::1", {}) == "journal/unmapped/::1"


@pytest.fixture
def remote(tmp_path: Path) -> tuple[Path, Journal]:
    incoming = tmp_path / "remote"
    incoming.mkdir()
    for address in ("10.0.0.5", "10.0.0.6"):
        (incoming / f"remote-{address}.journal").touch()
    return incoming, Journal()


HOSTS = {"10.0.0.5": "ctl1", "10.0.0.6": "cmp1"}


def sources(root: Path) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = {}
    with open_writer(root, ORIGIN, SIGNER) as writer:
        for i in range(writer.log.size):
            rec = records.decode(writer.log.entry(i))
            seen.setdefault(rec["source"], []).append(rec["seq"])
    return seen


def test_every_entry_lands_once_numbered_per_host_across_restarts(tmp_path, remote):
    incoming, source = remote
    root = tmp_path / "log"
    state_path = tmp_path / "state" / journal.STATE_FILE
    source.entries["10.0.0.5"] = [entry(n) for n in range(20)]
    source.entries["10.0.0.6"] = [entry(n) for n in range(5)]
    with open_writer(root, ORIGIN, SIGNER) as writer:
        follower = journal.Follower(
            incoming, HOSTS, writer, state_path, reader=source.reader, batch=7
        )
        assert follower.step() == 25
        source.entries["10.0.0.5"] += [entry(n) for n in range(20, 23)]
        assert follower.step() == 3 and follower.step() == 0
        follower.close()

    # A crash after the append but before the state was saved: the state lags.
    state = journal.FollowerState.load(state_path)
    lagging = journal.FollowerState(
        state.size - 4, {"journal/ctl1": 19}, {"journal/ctl1": "s=abc;i=12"}
    )
    lagging.save(state_path)
    source.entries["10.0.0.6"] += [entry(n) for n in range(5, 9)]
    with open_writer(root, ORIGIN, SIGNER) as writer:
        follower = journal.Follower(
            incoming, HOSTS, writer, state_path, reader=source.reader, batch=7
        )
        assert follower.step() == 4  # only the new ones, none repeated
        follower.close()

    assert sources(root) == {"journal/ctl1": list(range(23)), "journal/cmp1": list(range(9))}
    report = audit.verify(audit.DirectoryFiles(root), [SIGNER.verifier])
    assert report.ok, report.findings


def test_http_clients_cannot_write_the_journal_sources():
    from sovdeploy.hostside import ledger_service as service

    with pytest.raises(service.RecordRefused, match="log host's own"):
        service.check_record({"source": "journal/ctl1", "seq": 0, "kind": "x"}, "journal")


def test_the_bundle_is_reproducible_and_runs_the_service_alone(tmp_path):
    import io
    import subprocess
    import sys
    import tarfile

    from sovdeploy import bundle

    data = bundle.pack()
    assert data == bundle.pack()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        tar.extractall(tmp_path, filter="data")
    assert {"MANIFEST", "rfc8785/LICENSE", "sovdeploy/hostside/ledger_service.py"} <= set(names)
    # The bundle first on the path; every module of sovdeploy and rfc8785 the service
    # imports must come from it, not from this environment.
    probe = (
        "import sys; sys.path.insert(0, '.'); import sovdeploy.hostside.ledger_service, rfc8785; "
        "print('\\n'.join(m.__file__ for n, m in sys.modules.items() "
        "if n.split('.')[0] in ('sovdeploy', 'rfc8785') and getattr(m, '__file__', None)))"
    )
    run = subprocess.run(
        [sys.executable, "-I", "-c", probe],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    loaded = run.stdout.split()
    assert len(loaded) > 10
    assert all(Path(f).resolve().is_relative_to(tmp_path.resolve()) for f in loaded), loaded
