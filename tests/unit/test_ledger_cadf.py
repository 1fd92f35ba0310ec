"""OpenStack audit events into the ledger: what a message becomes, and that a
redelivered one is not written twice. The broker itself is exercised on the sandbox
(the logging phase, and `sovdeploy verify`'s API calls)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sovdeploy.hostside import cadf
from sovdeploy.ledger import audit, records
from sovdeploy.ledger.log import open_writer
from sovdeploy.ledger.note import Signer

ORIGIN = "sovdeploy.test/cadf"
SIGNER = Signer.generate(ORIGIN)


def body(message_id: str, action: str = "read/list") -> bytes:
    """A message as oslo.messaging's messagingv2 driver publishes it."""
    inner = {
        "message_id": message_id,
        "publisher_id": "nova-api",
        "event_type": "audit.http.request",
        "priority": "INFO",
        "timestamp": "2026-11-21 10:00:00.123456",
        "payload": {"typeURI": "http://schemas.dmtf.org/cloud/audit/1.0/event",
                    "action": action, "outcome": "pending"},
        "_context_auth_token": "gAAAAAsecret-token",
        "_context_user_id": "u1",
    }  # fmt: skip
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)}).encode()


def test_a_notification_becomes_a_record_without_its_context() -> None:
    rec = cadf.record_for(cadf.notification(body("m1")), 7)
    assert rec["kind"] == "cadf" and rec["source"] == "cadf" and rec["seq"] == 7
    assert rec["time"] == "2026-11-21T10:00:00.123Z"
    assert rec["payload"]["action"] == "read/list"
    assert rec["message_id"] == "m1" and rec["event_type"] == "audit.http.request"
    assert "secret-token" not in json.dumps(rec)
    with pytest.raises(cadf.MessageError):
        cadf.notification(b"not json")
    with pytest.raises(cadf.MessageError):
        cadf.notification(json.dumps({"oslo.message": "{}"}).encode())


def test_redeliveries_are_written_once_across_a_lost_save(tmp_path: Path) -> None:
    root, state = tmp_path / "log", tmp_path / "state" / cadf.STATE_FILE
    broker = cadf.Broker.parse("amqp://ledger:pw@10.0.0.1:5672/audit")
    with open_writer(root, ORIGIN, SIGNER) as writer:
        consumer = cadf.Consumer(broker, writer, state, connect=lambda _b: None)
        assert consumer.take([body("m1"), body("m2"), b"garbage"]) == 3
        # The broker redelivers what it had not seen acknowledged.
        assert consumer.take([body("m2"), body("m3")]) == 1
    # Killed after the append but before the save: the saved state lags.
    cadf.ConsumerState(0, 0).save(state)
    with open_writer(root, ORIGIN, SIGNER) as writer:
        consumer = cadf.Consumer(broker, writer, state, connect=lambda _b: None)
        assert consumer.take([body("m3"), body("m4")]) == 1

    with open_writer(root, ORIGIN, SIGNER) as writer:
        recs = [records.decode(writer.log.entry(i)) for i in range(writer.log.size)]
    assert [r["seq"] for r in recs] == [0, 1, 2, 3, 4]
    assert [r.get("message_id") for r in recs] == ["m1", "m2", None, "m3", "m4"]
    assert recs[2]["event_type"] == "cadf_unreadable"
    report = audit.verify(audit.DirectoryFiles(root), [SIGNER.verifier], expected_sources=["cadf"])
    assert report.ok, report.findings


def test_a_broker_that_refuses_is_retried_and_said_in_the_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broker = cadf.Broker.parse("amqp://ledger:pw@10.0.0.1:5672/audit")
    tries = []

    def refuse(_b: cadf.Broker) -> None:
        tries.append(1)
        raise OSError("PRECONDITION_FAILED - inequivalent arg 'durable' for exchange")

    with open_writer(tmp_path / "log", ORIGIN, SIGNER) as writer:
        consumer = cadf.Consumer(
            broker, writer, tmp_path / cadf.STATE_FILE, retry=0.01, connect=refuse
        )
        consumer.start()
        deadline = time.monotonic() + 10
        while len(tries) < 12 and time.monotonic() < deadline:
            time.sleep(0.01)
        consumer.close()
    assert consumer.broker_error is not None and "durable" in consumer.broker_error
    said = capsys.readouterr().out.splitlines()
    assert said[:2] == [
        "cadf: the broker failed (1x), will retry: OSError: PRECONDITION_FAILED - "
        "inequivalent arg 'durable' for exchange",
        "cadf: the broker failed (10x), will retry: OSError: PRECONDITION_FAILED - "
        "inequivalent arg 'durable' for exchange",
    ]


def test_the_broker_url() -> None:
    b = cadf.Broker.parse("rabbit://ledger:p%40ss@10.0.0.1:5672/audit\n")
    assert (b.host, b.port, b.user, b.password, b.vhost) == (
        "10.0.0.1",
        5672,
        "ledger",
        "p@ss",
        "audit",
    )
    with pytest.raises(ValueError, match="amqp://"):
        cadf.Broker.parse("https://10.0.0.1/")
