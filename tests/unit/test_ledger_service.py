"""The ledger service over real TLS: client certificates, batching, read-only serving."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sovdeploy.ledger import audit, service
from sovdeploy.ledger.note import Signer

ORIGIN = "sovdeploy.test/service"
SIGNER = Signer.generate(ORIGIN)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    cn: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None, *, ca: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer[0].subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key


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
def pki(tmp_path: Path) -> Path:
    ca = _cert("deployment CA", None, ca=True)
    _write(tmp_path / "ca", *ca)
    _write(tmp_path / "server", *_cert("log1", ca, ca=False))
    _write(tmp_path / "host-a", *_cert("host-a", ca, ca=False))
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
