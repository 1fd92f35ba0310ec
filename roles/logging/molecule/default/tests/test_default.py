"""The log host's ledger, read as an auditor reads it: over HTTPS, with its verifier key.

A line logged on the host travels journald -> systemd-journal-upload -> journal-remote ->
the ledger service's follower, and must appear as a record of source journal/instance
in a log that `sovdeploy audit verify` accepts.
"""

import os
import shutil
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

from sovdeploy.ledger import audit, forward, local, records, tiles

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
SOVDEPLOY = str(Path(sys.executable).parent / "sovdeploy")


def _ca() -> Path:
    return next(EPHEMERAL.rglob(".sovdeploy/pki/ca.crt"))


def _records(url: str) -> list[dict]:
    """Every record the log's latest checkpoint covers, read from its tiles over HTTPS."""
    files = audit.HttpFiles(url, ssl.create_default_context(cafile=str(_ca())))
    size = int(files.read("checkpoint").decode().splitlines()[1])
    reader = tiles.TileReader(files.read, size)
    return [records.decode(reader.entry(i)) for i in range(size)]


def test_services_run_and_listen_on_the_internal_address(host, address):
    for unit in (
        "sovdeploy-ledger.service",
        "systemd-journal-upload.service",
        "sovdeploy-heartbeat.timer",
        "systemd-journal-remote.socket",
    ):
        assert host.service(unit).is_running and host.service(unit).is_enabled, unit
    assert host.socket(f"tcp://{address}:8443").is_listening
    assert host.socket(f"tcp://{address}:19532").is_listening
    assert not host.socket("tcp://127.0.0.1:8443").is_listening


def test_the_signing_key_is_the_services_alone(host):
    key = host.file("/etc/sovdeploy-ledger/log.key")
    assert key.user == "sovdeploy-ledger" and key.mode == 0o400


def test_a_logged_line_reaches_the_ledger_and_the_log_verifies(host, address):
    marker = f"molecule-{uuid.uuid4()}"
    host.run(f"logger --tag molecule-probe {marker}")
    url = f"https://{address}:8443"
    deadline = time.monotonic() + 60
    found = []
    while time.monotonic() < deadline and not found:
        time.sleep(2)
        found = [
            r
            for r in _records(url)
            if r["kind"] == "journal" and r["fields"].get("MESSAGE") == marker
        ]
    assert found, f"{marker} did not reach the ledger within 60s"
    assert found[0]["source"] == "journal/instance"
    assert found[0]["fields"]["SYSLOG_IDENTIFIER"] == "molecule-probe"

    vkey = EPHEMERAL / "logging" / "instance.vkey"
    result = subprocess.run(
        [
            SOVDEPLOY,
            "audit",
            "verify",
            url,
            "--key",
            str(vkey),
            "--cacert",
            str(_ca()),
            "--expect-source",
            "journal/instance",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_heartbeats_arrive_and_numbers_have_no_gap(host, address):
    time.sleep(11)
    recs = [r for r in _records(f"https://{address}:8443") if r["source"] == "journal/instance"]
    beats = [r for r in recs if r["kind"] == "heartbeat"]
    assert beats and beats[-1]["interval"] == 10
    assert [r["seq"] for r in recs] == list(range(len(recs)))


def test_the_orchestrator_forwards_its_ledger_with_the_certificate_the_role_issued(
    address, tmp_path
):
    client = EPHEMERAL / "logging" / "client"
    key = client / "orchestrator.key"
    assert key.stat().st_mode & 0o077 == 0
    # A deployment state dir as the logging phase leaves it, with a ledger of its own.
    state = tmp_path / ".sovdeploy"
    (state / "pki").mkdir(parents=True)
    shutil.copy(_ca(), state / "pki" / "ca.crt")
    shutil.copytree(client, state / forward.CLIENT_DIR)
    ep = forward.endpoint(state)
    assert ep is not None and ep.host == "instance"
    assert ep.url == f"https://{address}:8443"
    with local.open_ledger(state, "molecule") as ledger:
        for n in range(20):
            ledger.record("probe", n=n).result()
    assert forward.forward(state, ep) == forward.Forwarded(20, 20)
    assert forward.forward(state, ep).sent == 0

    ours = [records.decode(e) for e in local.entries(state)]
    deadline = time.monotonic() + 30
    theirs = []
    while time.monotonic() < deadline and len(theirs) < len(ours):
        time.sleep(1)
        theirs = [r for r in _records(ep.url) if r["source"] == "orchestrator"]
    assert theirs == ours


def test_the_journal_is_sealed_and_an_edit_fails_verification(host):
    key = (EPHEMERAL / "logging" / "instance.fss").read_text().strip()
    assert oct((EPHEMERAL / "logging" / "instance.fss").stat().st_mode & 0o777) == "0o600"
    host.run("logger --tag molecule-seal sealed-line")
    host.run("journalctl --sync")
    assert "SEALED" in host.run("journalctl --header").stdout
    verified = host.run(f"journalctl --verify --verify-key={key}")
    assert verified.rc == 0, verified.stderr
    # A copy of the sealed system journal with one letter of that line changed no
    # longer verifies.
    machine = host.file("/etc/machine-id").content_string.strip()
    edit = host.run(
        f"set -e; cp /var/log/journal/{machine}/system.journal /root/edited.journal; "
        "at=$(grep -boa 'MESSAGE=sealed-line' /root/edited.journal | tail -n 1 | cut -d: -f1); "
        "printf 'Z' | dd of=/root/edited.journal bs=1 seek=$((at + 8)) conv=notrunc 2>/dev/null"
    )
    assert edit.rc == 0, edit.stderr
    tampered = host.run(f"journalctl --verify --verify-key={key} --file=/root/edited.journal")
    assert tampered.rc != 0, tampered.stdout + tampered.stderr
