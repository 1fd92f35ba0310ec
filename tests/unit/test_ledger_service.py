"""The ledger service over real TLS: client certificates, batching, read-only serving."""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sovdeploy.errors import LedgerError
from sovdeploy.hostside import ledger_service as service
from sovdeploy.ledger import audit, forward, local, records, tiles
from sovdeploy.ledger.note import Signer

ORIGIN = "sovdeploy.test/service"
SIGNER = Signer.generate(ORIGIN)


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture
def pki(tmp_path: Path, issue_cert: Callable[..., Any]) -> Path:
    _cert = issue_cert
    ca = _cert("deployment CA", None, ca=True)
    _write(tmp_path / "ca", *ca)
    _write(tmp_path / "server", *_cert("log1", ca, ca=False))
    _write(tmp_path / "host-a", *_cert("host-a", ca, ca=False))
    _write(tmp_path / "orchestrator", *_cert("orchestrator", ca, ca=False))
    _write(tmp_path / "cadf", *_cert("cadf", ca, ca=False))
    other_ca = _cert("someone else's CA", None, ca=True)
    _write(tmp_path / "rogue", *_cert("host-a", other_ca, ca=False))
    return tmp_path


@pytest.fixture
def url(pki: Path, tmp_path: Path) -> Iterator[str]:
    context = service.tls_context(pki / "ca.crt", pki / "server.crt", pki / "server.key")
    address = ("127.0.0.1", 0)
    with service.running(
        tmp_path / "log", ORIGIN, SIGNER, address, context, checkpoint_interval=0.2
    ) as server:
        yield f"https://127.0.0.1:{server.server_address[1]}"


def client(pki: Path, who: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if who is not None:
        context.load_cert_chain(pki / f"{who}.crt", pki / f"{who}.key")
    return context


def post(url: str, context: ssl.SSLContext, recs: list[dict[str, object]]) -> list[int]:
    body = "".join(json.dumps(r) + "\n" for r in recs).encode()
    req = urllib.request.Request(url + "/add", data=body, method="POST")
    with urllib.request.urlopen(req, context=context, timeout=30) as resp:
        return list(json.load(resp)["indices"])


def rec(source: str, seq: int) -> dict[str, object]:
    return {"kind": "journal", "source": source, "seq": seq, "message": f"line {seq}"}


def test_posts_from_many_threads_are_durable_and_verify(url: str, pki: Path) -> None:
    context = client(pki, "host-a")
    got: list[int] = []
    lock = threading.Lock()

    def ship(unit: str) -> None:
        indices = post(url, context, [rec(f"host-a/{unit}", i) for i in range(200)])
        with lock:
            got.extend(indices)

    threads = [threading.Thread(target=ship, args=(u,)) for u in ("journald", "auditd", "x")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(600))
    # An auditor reads it over HTTPS without a client certificate, once a checkpoint
    # (signed every 0.2 s here) covers the posts.
    reader = audit.HttpFiles(url, client(pki, None))
    deadline = time.monotonic() + 10
    while b"\n600\n" not in (reader.read("checkpoint") or b"") and time.monotonic() < deadline:
        time.sleep(0.1)
    report = audit.verify(reader, [SIGNER.verifier], expected_sources=["host-a/journald"])
    assert report.ok, report.findings
    assert report.size == 600
    assert report.checkpoints_checked >= 1
    assert {s.name for s in report.sources.values()} == {
        "host-a/journald",
        "host-a/auditd",
        "host-a/x",
    }


def test_posting_needs_a_certificate_from_the_deployment_ca(url: str, pki: Path) -> None:
    with pytest.raises(urllib.error.HTTPError) as exc:
        post(url, client(pki, None), [rec("host-a", 0)])
    assert exc.value.code == 403
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        post(url, client(pki, "rogue"), [rec("host-a", 0)])


def test_a_host_cannot_write_as_another(url: str, pki: Path) -> None:
    with pytest.raises(urllib.error.HTTPError) as exc:
        post(url, client(pki, "host-a"), [rec("host-b/journald", 0)])
    assert exc.value.code == 403
    with pytest.raises(urllib.error.HTTPError) as exc:
        post(url, client(pki, "host-a"), [{"kind": "x", "source": "host-a", "seq": "1"}])
    assert exc.value.code == 400


def test_serves_only_log_files(url: str, pki: Path) -> None:
    context = client(pki, None)
    for path in ("/lock", "/log.json", "/pending", "/../etc/passwd", "/tile/0/../../log.json"):
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(url + path, context=context, timeout=10)
        assert exc.value.code == 404, path
    with urllib.request.urlopen(url + "/checkpoint", context=context, timeout=10) as resp:
        assert resp.read().startswith(ORIGIN.encode() + b"\n")


def test_a_source_resumes_where_it_stopped_and_cannot_repeat_or_skip(url: str, pki: Path) -> None:
    context = client(pki, "host-a")
    assert post(url, context, [rec("host-a", 0), rec("host-a", 1)]) == [0, 1]
    with urllib.request.urlopen(url + "/sources/host-a", context=context, timeout=10) as resp:
        assert json.load(resp) == {"source": "host-a", "next": 2}
    for seqs in ([1, 2], [3], [2, 2]):  # a resend, a skip, a repeat within one request
        with pytest.raises(urllib.error.HTTPError) as exc:
            post(url, context, [rec("host-a", n) for n in seqs])
        assert exc.value.code == 409, seqs
    # A refused request appends nothing: the source goes on from 2.
    assert post(url, context, [rec("host-a", 2)]) == [2]


def test_the_next_seq_survives_a_restart_and_a_lost_save(pki: Path, tmp_path: Path) -> None:
    context = service.tls_context(pki / "ca.crt", pki / "server.crt", pki / "server.key")
    root = tmp_path / "log"

    def serve_and_post(seqs: list[int]) -> None:
        with service.running(root, ORIGIN, SIGNER, ("127.0.0.1", 0), context) as server:
            base = f"https://127.0.0.1:{server.server_address[1]}"
            post(base, client(pki, "host-a"), [rec("host-a", n) for n in seqs])

    serve_and_post([0, 1, 2])
    # As if killed after the append but before the save: the saved numbers lag.
    service.PostedState(1, {"host-a": 1}).save(tmp_path / "state" / service.POSTED_STATE_FILE)
    with pytest.raises(urllib.error.HTTPError) as exc:
        serve_and_post([1])
    assert exc.value.code == 409
    serve_and_post([3])


def _state_root(tmp_path: Path, pki: Path, url: str) -> Path:
    """A deployment state dir as the logging phase leaves it: CA, client certificate, endpoint."""
    state = tmp_path / "state-dir"
    client_dir = state / forward.CLIENT_DIR
    client_dir.mkdir(parents=True)
    (state / "pki").mkdir()
    (state / "pki" / "ca.crt").write_bytes((pki / "ca.crt").read_bytes())
    for name in ("orchestrator.crt", "orchestrator.key"):
        (client_dir / name).write_bytes((pki / name).read_bytes())
    endpoint = {"host": "log1", "url": url}
    (client_dir / forward.ENDPOINT_FILE).write_text(json.dumps(endpoint))
    return state


def _served_entries(url: str, pki: Path, size: int) -> list[bytes]:
    reader = audit.HttpFiles(url, client(pki, None))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        checkpoint = reader.read("checkpoint") or b""
        if int(checkpoint.split(b"\n")[1]) >= size:
            break
        time.sleep(0.1)
    tiles_reader = tiles.TileReader(reader.read, size)
    return [tiles_reader.entry(i) for i in range(size)]


def test_the_orchestrators_ledger_arrives_byte_for_byte_and_once(
    url: str, pki: Path, tmp_path: Path
) -> None:
    state = _state_root(tmp_path, pki, url)
    ep = forward.endpoint(state)
    assert ep is not None and ep.host == "log1"
    with local.open_ledger(state, "dep") as ledger:
        for n in range(300):
            ledger.record("task", n=n).result()
        ledger.record("terraform_plan", summary="x" * 70_000).result()  # kept as a blob
    ours = list(local.entries(state))
    assert records.decode(ours[-1])["blob"]["size"] > 70_000

    assert forward.forward(state, ep) == forward.Forwarded(301, 301)
    assert _served_entries(url, pki, 301) == ours  # the same leaves in both logs
    reader = audit.HttpFiles(url, client(pki, None))
    digest = records.decode(ours[-1])["blob"]["sha256"]
    assert reader.read(f"blobs/{digest[:2]}/{digest}") is not None
    assert forward.forward(state, ep) == forward.Forwarded(0, 301)

    # The answer to the last post was lost and the hint with it: nothing is sent twice.
    with local.open_ledger(state, "dep") as ledger:
        ledger.record("command_end", status="done").result()
    (state / forward.PROGRESS_FILE).unlink()
    assert forward.forward(state, ep) == forward.Forwarded(1, 302)
    assert _served_entries(url, pki, 302) == list(local.entries(state))


def test_a_replaced_state_dir_is_reported_not_forwarded(
    url: str, pki: Path, tmp_path: Path
) -> None:
    post(url, client(pki, "orchestrator"), [rec("orchestrator", n) for n in range(3)])
    state = _state_root(tmp_path, pki, url)
    with local.open_ledger(state, "dep") as ledger:
        ledger.record("command", command="up").result()
    ep = forward.endpoint(state)
    assert ep is not None
    with pytest.raises(LedgerError, match="expects orchestrator record 3"):
        forward.forward(state, ep)


def test_a_command_ends_well_when_the_log_host_is_away_and_forwards_later(
    url: str, pki: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rich.console import Console

    from sovdeploy.session import forward_ledger
    from sovdeploy.state import StateDir

    out, err = Console(), Console(stderr=True)

    state = StateDir(tmp_path / "inventory")
    away = _state_root(tmp_path, pki, "https://127.0.0.1:9")  # nothing listens there
    away.rename(state.root)
    with local.open_ledger(state.root, "dep") as ledger:
        ledger.record("command", command="up").result()
    forward_ledger(state, out, err)
    assert "not forwarded to the log host" in capsys.readouterr().err
    assert not (state.root / forward.PROGRESS_FILE).exists()

    endpoint = state.root / forward.CLIENT_DIR / forward.ENDPOINT_FILE
    endpoint.write_text(json.dumps({"host": "log1", "url": url}))
    forward_ledger(state, out, err)
    assert "1 record(s) forwarded to log1" in capsys.readouterr().out
    assert _served_entries(url, pki, 1) == list(local.entries(state.root))


def test_verify_finds_the_cadf_events_of_its_own_requests_on_the_log_host(
    url: str, pki: Path, tmp_path: Path
) -> None:
    from sovdeploy.phases.verify import _audit_trail_check, _served_size

    ep = forward.endpoint(_state_root(tmp_path, pki, url))
    assert ep is not None
    start = forward.served_size(ep)
    events = [
        {"kind": "cadf", "source": "cadf", "seq": n, "event_type": kind,
         "payload": {"requestPath": "/v2.1/servers/abc-123"}}
        for n, kind in enumerate(("audit.http.request", "audit.http.response"))
    ]  # fmt: skip
    post(url, client(pki, "cadf"), events)
    found = _audit_trail_check(ep, start, "abc-123", timeout=15)
    assert found.ok, found.detail
    missing = _audit_trail_check(ep, start, "def-456", timeout=1)
    assert not missing.ok and "no CADF event" in missing.detail
    away = forward.Endpoint("log9", "https://127.0.0.1:9", ep.ca, ep.cert, ep.key)
    unread = _audit_trail_check(away, 0, "abc-123", timeout=1)
    assert not unread.ok and "cannot be read" in unread.detail
    # A log host that cannot be read before the requests says why, once it gives up.
    before = _served_size(away, wait=0.5)
    assert isinstance(before, str) and "could not be read before the checks: " in before
    assert "Connection refused" in before
    unread = _audit_trail_check(away, before, "abc-123", timeout=1)
    assert not unread.ok and unread.detail == f"log9: {before}"
    assert _served_size(ep) == start + len(events)


def test_checkpoints_are_published_with_the_witness_cosignature(pki: Path, tmp_path: Path) -> None:
    from sovdeploy.hostside import witness
    from sovdeploy.ledger.note import COSIGNATURE_V1

    w = witness.Witness(
        Signer.generate("witness.test/w1", COSIGNATURE_V1), [SIGNER.verifier], tmp_path / "w.json"
    )
    tls = service.tls_context(pki / "ca.crt", pki / "server.crt", pki / "server.key")
    wserver = witness.serve(w, ("127.0.0.1", 0), tls)
    threading.Thread(target=wserver.serve_forever, daemon=True).start()
    endpoint = witness.WitnessEndpoint(
        f"https://127.0.0.1:{wserver.server_address[1]}", w.signer.verifier
    )
    # A witness that is away costs its cosignature, never the checkpoint.
    away = witness.WitnessEndpoint("https://127.0.0.1:9", Signer.generate(
        "witness.test/away", COSIGNATURE_V1).verifier)  # fmt: skip
    with service.running(
        tmp_path / "log", ORIGIN, SIGNER, ("127.0.0.1", 0), tls,
        checkpoint_interval=0.2, witnesses=[endpoint, away],
        witness_context=client(pki, None),
    ) as server:  # fmt: skip
        url = f"https://127.0.0.1:{server.server_address[1]}"
        for batch in range(3):
            post(url, client(pki, "host-a"), [rec("host-a", batch * 10 + n) for n in range(10)])
            time.sleep(0.5)
        reader = audit.HttpFiles(url, client(pki, None))
        report = audit.verify(reader, [SIGNER.verifier], witnesses=[w.signer.verifier], quorum=1)
        assert report.ok, report.findings
        assert report.witnesses == ["witness.test/w1"] and report.size == 30
        assert w.latest(ORIGIN) == (30, report.root)
        two = audit.verify(
            reader, [SIGNER.verifier], witnesses=[w.signer.verifier, away.key], quorum=2
        )
        assert [f.tamper for f in two.findings] == [audit.Tamper.SIGNATURE]
    # Restarted, the service knows nothing of the witness: its 409 says where to go on.
    with service.running(
        tmp_path / "log", ORIGIN, SIGNER, ("127.0.0.1", 0), tls,
        checkpoint_interval=0.2, witnesses=[endpoint], witness_context=client(pki, None),
    ) as server:  # fmt: skip
        url = f"https://127.0.0.1:{server.server_address[1]}"
        post(url, client(pki, "host-a"), [rec("host-a", 30)])
        time.sleep(0.5)
        reader = audit.HttpFiles(url, client(pki, None))
        report = audit.verify(reader, [SIGNER.verifier], witnesses=[w.signer.verifier], quorum=1)
        assert report.ok and report.size == 31, report.findings
    wserver.shutdown()
