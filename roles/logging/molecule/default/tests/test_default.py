"""The log host's ledger, read as an auditor reads it: over HTTPS, with its verifier key.

A line logged on the host travels journald -> systemd-journal-upload -> journal-remote ->
the ledger service's follower, and must appear as a record of source journal/instance
in a log that `sovdeploy audit verify` accepts.
"""

import os
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

from sovdeploy.ledger import audit, records, tiles

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
SOVDEPLOY = str(Path(sys.executable).parent / "sovdeploy")


def _ca() -> Path:
    return next(EPHEMERAL.rglob(".sovdeploy/pki/ca.crt"))


def _journal_records(url: str) -> list[dict]:
    """Every record the log's latest checkpoint covers, read from its tiles over HTTPS."""
    files = audit.HttpFiles(url, ssl.create_default_context(cafile=str(_ca())))
    size = int(files.read("checkpoint").decode().splitlines()[1])
    out = []
    for n in range(-(-size // tiles.TILE_WIDTH)):
        width = min(tiles.TILE_WIDTH, size - n * tiles.TILE_WIDTH)
        bundle = files.read(tiles.tile_path("entries", n, width))
        out += [records.decode(e) for e in tiles.decode_bundle(bundle)]
    return out


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
            for r in _journal_records(url)
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
    time.sleep(6)
    recs = [
        r for r in _journal_records(f"https://{address}:8443") if r["source"] == "journal/instance"
    ]
    beats = [r for r in recs if r["kind"] == "heartbeat"]
    assert beats and beats[-1]["interval"] == 5
    assert [r["seq"] for r in recs] == list(range(len(recs)))
