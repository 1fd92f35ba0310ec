"""The ledger service on a log host: takes records over HTTPS, serves the log read-only.

``POST /add`` takes JSON Lines, one record per line, each an object with ``source``,
``seq`` (the source's own counter) and ``kind``; it answers once every record is durable,
with their indices. Only a client holding a certificate from the deployment CA may
post, and only for sources named after its certificate's common name (``<CN>`` or
``<CN>/<anything>``), so one host cannot write as another. Each source's records must
come in order: a record whose ``seq`` is not its source's next is refused (409) with the
whole request, so a client that resends after a lost answer repeats nothing, and one
that skips leaves no gap. Concurrent requests share the single writer's batches.

``GET /sources/<source>`` answers ``{"source": ..., "next": N}``: where a client
resumes. ``GET`` also serves the tlog-tiles files (``checkpoint``, ``tile/...``), the
checkpoint history (``checkpoints/``, a listing, one name per line) and ``blobs/``, to
anyone who reaches it over TLS: an auditor needs no client certificate to read.

The service's own bookkeeping (each source's next seq, the journal follower's cursors)
is kept in ``--state`` (default: ``state/`` beside the log), never inside the log.

Run: ``python3 -m sovdeploy.hostside.ledger_service --root DIR --origin NAME --key FILE --ca FILE
--cert FILE --cert-key FILE --listen ADDRESS:PORT``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import re
import signal
import ssl
import sys
import threading
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from sovdeploy.errors import LedgerError
from sovdeploy.hostside import Exit, cadf, journal, run, witness
from sovdeploy.ledger import archive, local, records
from sovdeploy.ledger.log import CHECKPOINT_FILE, CHECKPOINT_INTERVAL, HISTORY_DIR, Log, Writer
from sovdeploy.ledger.note import Signer, Verifier
from sovdeploy.ledger.worker import Worker

MAX_BODY = 4 * 1024 * 1024
POSTED_STATE_FILE = "posted.json"
_SERVED = re.compile(
    r"^(checkpoint|tile/(\d|entries)(/x\d{3})*/\d{3}(\.p/\d{1,3})?|checkpoints/\d{20}|"
    r"blobs/[0-9a-f]{2}/[0-9a-f]{64})$"
)


class RecordRefused(ValueError):  # noqa: N818 - the client's mistake, answered as such
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_record(record: Any, identity: str) -> dict[str, Any]:
    """A record as posted, checked: an object, a source this client may write for, a seq."""
    if not isinstance(record, dict):
        raise RecordRefused(400, "a record is a JSON object")
    source, seq, kind = record.get("source"), record.get("seq"), record.get("kind")
    if not isinstance(source, str) or not isinstance(kind, str) or not kind:
        raise RecordRefused(400, "a record has a string 'source' and 'kind'")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise RecordRefused(400, f"record of {source}: 'seq' is a non-negative integer")
    if source.startswith(journal.SOURCE_PREFIX):
        raise RecordRefused(403, f"sources {journal.SOURCE_PREFIX}* are the log host's own")
    if source != identity and not source.startswith(identity + "/"):
        raise RecordRefused(403, f"{identity} may not write records of source {source}")
    return record


class PostedState(journal.FollowerState):
    """The next seq of every source that clients post (all but the journal sources)."""

    def owns(self, source: str) -> bool:
        return not source.startswith(journal.SOURCE_PREFIX)


class LedgerService:
    def __init__(self, root: Path, writer: Writer, state_dir: Path) -> None:
        self.root = root
        self.writer = writer
        self._state_path = state_dir / POSTED_STATE_FILE
        self.posted = PostedState.load(self._state_path)
        log = writer.log
        start = min(self.posted.size, log.size)
        journal.catch_up(self.posted, (log.entry(i) for i in range(start, log.size)), log.size)
        # Taken while a request checks and queues its records, so that records are
        # numbered and queued in one order; released before waiting for durability.
        self._order = threading.Lock()
        self._saved = threading.Lock()

    def next_seq(self, source: str) -> int:
        with self._order:
            return self.posted.seq.get(source, 0)

    def add(self, lines: Sequence[bytes], identity: str) -> list[int]:
        """Append the posted records; return their indices once all are durable."""
        checked = []
        for n, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise RecordRefused(400, f"line {n}: {exc}") from None
            checked.append(check_record(record, identity))
        entries = [records.entry_for(r, self.root) for r in checked]
        with self._order:
            following = dict(self.posted.seq)
            for record in checked:
                source, seq = record["source"], record["seq"]
                expected = following.get(source, 0)
                if seq != expected:
                    raise RecordRefused(409, f"{source}: the next seq is {expected}, not {seq}")
                following[source] = seq + 1
            futures = [self.writer.append(e) for e in entries]
            self.posted.seq = following
        indices = [f.result() for f in futures]
        # Everything numbered before ``following`` was queued earlier, so it is durable
        # now too: the saved numbers never run ahead of the log.
        if indices:
            with self._saved:
                size = max(indices) + 1
                if size > self.posted.size:
                    saved = PostedState(size, following)
                    saved.save(self._state_path)
                    self.posted.size = size
        return indices

    def read(self, path: str) -> bytes | None:
        if path.startswith("sources/"):
            source = path.removeprefix("sources/")
            body = {"source": source, "next": self.next_seq(source)}
            return json.dumps(body).encode()
        if path in ("checkpoints", "checkpoints/"):
            d = self.root / HISTORY_DIR
            names = sorted(p.name for p in d.iterdir() if not p.name.startswith("."))
            return "".join(f"{n}\n" for n in names).encode()
        if not _SERVED.match(path):
            return None
        with contextlib.suppress(FileNotFoundError):
            return (self.root / path).read_bytes()
        return None


def client_identity(sock: Any) -> str | None:
    """The common name of the verified client certificate, if the client sent one."""
    try:
        der = sock.getpeercert(binary_form=True)
    except (AttributeError, ValueError):
        return None
    if not der:
        return None
    names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


class _Handler(http.server.BaseHTTPRequestHandler):
    service: LedgerService
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = urllib.parse.unquote(self.path.split("?", 1)[0]).lstrip("/")
        data = self.service.read(path)
        if data is None:
            self._send(404, b"not found\n")
            return
        if path.startswith("sources/"):
            kind = "application/json"
        elif path.startswith("tile/"):
            kind = "application/octet-stream"
        else:
            kind = "text/plain; charset=utf-8"
        self._send(200, data, kind)

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/add":
            self._send(404, b"not found\n")
            return
        identity = client_identity(self.connection)
        if identity is None:
            self._send(403, b"posting needs a client certificate from the deployment CA\n")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(413, b"request too large\n")
            return
        lines = [ln for ln in self.rfile.read(length).split(b"\n") if ln.strip()]
        try:
            indices = self.service.add(lines, identity)
        except RecordRefused as exc:
            self._send(exc.status, f"{exc}\n".encode())
            return
        self._send(200, json.dumps({"indices": indices}).encode(), "application/json")

    def _send(self, status: int, body: bytes, kind: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        if self.path.lstrip("/").startswith("tile/") and status == 200:
            self.send_header("Cache-Control", "public, max-age=31536000, immutable")
        elif status == 200:
            self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: what matters is in the ledger itself."""


def tls_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
    context.load_cert_chain(cert, key)
    # Readers need no certificate; a certificate that is sent must verify, and posting
    # needs one (checked per request).
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


def serve(
    service: LedgerService, address: tuple[str, int], context: ssl.SSLContext
) -> http.server.ThreadingHTTPServer:
    handler = type("LedgerHandler", (_Handler,), {"service": service})
    server = http.server.ThreadingHTTPServer(address, handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


@contextlib.contextmanager
def running(
    root: Path,
    origin: str,
    signer: Signer,
    address: tuple[str, int],
    context: ssl.SSLContext,
    *,
    checkpoint_interval: float = CHECKPOINT_INTERVAL,
    state_dir: Path | None = None,
    journal_dir: Path | None = None,
    journal_hosts: Mapping[str, str] | None = None,
    broker: cadf.Broker | None = None,
    witnesses: Sequence[witness.WitnessEndpoint] = (),
    witness_context: ssl.SSLContext | None = None,
    archive_to: tuple[archive.Bucket, Any] | None = None,
) -> Iterator[http.server.ThreadingHTTPServer]:
    """Open the log, serve it, and on exit stop serving and sign a final checkpoint.

    With ``journal_dir``, a :class:`~sovdeploy.hostside.journal.Follower` appends what
    systemd-journal-remote receives; with ``broker``, a
    :class:`~sovdeploy.hostside.cadf.Consumer` appends the OpenStack audit events. They
    are the server's ``workers``. ``state_dir`` (default: ``state`` beside ``root``)
    keeps the service's bookkeeping. Each checkpoint is sent to ``witnesses`` (over
    ``witness_context``) and published with the cosignatures they return. With
    ``archive_to`` (a bucket and its S3 client), an :class:`~sovdeploy.ledger.archive.Archiver`
    uploads what each checkpoint publishes to the WORM archive.
    """
    state_dir = state_dir or root.parent / "state"
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    _move_old_state(root, state_dir)
    log = Log(root, origin, signer)
    if witnesses:
        log.cosign = witness.Cosigners(witnesses, witness_context)
    try:
        writer = Writer(log, checkpoint_interval)
        try:
            if log.checkpointed < log.size or not (root / CHECKPOINT_FILE).exists():
                log.checkpoint()
            server = serve(LedgerService(root, writer, state_dir), address, context)
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            workers: list[Worker] = []
            if journal_dir is not None:
                workers.append(
                    journal.Follower(
                        journal_dir, journal_hosts or {}, writer, state_dir / journal.STATE_FILE
                    )
                )
            if broker is not None:
                workers.append(cadf.Consumer(broker, writer, state_dir / cadf.STATE_FILE))
            if archive_to is not None:
                bucket, s3 = archive_to
                workers.append(archive.Archiver(root, bucket, s3, state_dir / archive.STATE_FILE))
            for worker in workers:
                worker.start()
            server.workers = workers  # type: ignore[attr-defined]
            try:
                yield server
            finally:
                for worker in workers:
                    worker.close()
                server.shutdown()
                server.server_close()
        finally:
            writer.close()
    finally:
        log.close()


def _move_old_state(root: Path, state_dir: Path) -> None:
    """Earlier versions kept the follower's state inside the log: move it out."""
    old, new = root / journal.STATE_FILE, state_dir / journal.STATE_FILE
    if old.exists() and not new.exists():
        old.rename(new)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sovdeploy-ledger", description=__doc__)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--origin", required=True)
    parser.add_argument("--key", type=Path, required=True, help="signer key file (0600)")
    parser.add_argument(
        "--keygen",
        action="store_true",
        help="make the signer key if it does not exist, print its verifier key, and exit",
    )
    parser.add_argument("--ca", type=Path)
    parser.add_argument("--cert", type=Path)
    parser.add_argument("--cert-key", type=Path)
    parser.add_argument("--listen", default="0.0.0.0:8443")
    parser.add_argument(
        "--state", type=Path, help="the service's bookkeeping (default: state/ beside --root)"
    )
    parser.add_argument(
        "--journal-dir", type=Path, help="systemd-journal-remote's output directory to follow"
    )
    parser.add_argument(
        "--journal-hosts", type=Path, help="JSON object: sender address -> host name"
    )
    parser.add_argument(
        "--witnesses",
        type=Path,
        help='JSON list of {"url": ..., "vkey": ...}: the witnesses asked to cosign checkpoints',
    )
    parser.add_argument(
        "--amqp-url-file",
        type=Path,
        help="file holding amqp://user:password@host:port/vhost of the audit events' broker",
    )
    parser.add_argument(
        "--archive",
        type=Path,
        help="JSON file: endpoint, bucket, prefix, ca_file, access_key, secret_key of the "
        "WORM archive (0600)",
    )
    args = parser.parse_args(argv)
    if args.keygen:
        try:
            signer, _ = local.signer_file(args.key, args.origin, create=True)
        except LedgerError as exc:
            raise Exit(str(exc)) from None
        print(signer.verifier.vkey())
        return 0
    if not (args.ca and args.cert and args.cert_key):
        parser.error("--ca, --cert and --cert-key are needed to serve")
    host, _, port = args.listen.rpartition(":")
    signer = Signer.parse(args.key.read_text())
    context = tls_context(args.ca, args.cert, args.cert_key)
    hosts = json.loads(args.journal_hosts.read_text()) if args.journal_hosts else {}
    broker = cadf.Broker.parse(args.amqp_url_file.read_text()) if args.amqp_url_file else None
    witnesses = [
        witness.WitnessEndpoint(w["url"], Verifier.parse(w["vkey"]))
        for w in (json.loads(args.witnesses.read_text()) if args.witnesses else [])
    ]
    archive_to = None
    if args.archive:
        conf = json.loads(args.archive.read_text())
        bucket = archive.Bucket(conf["endpoint"], conf["bucket"], conf["prefix"], conf["ca_file"])
        archive_to = (bucket, bucket.client(conf["access_key"], conf["secret_key"]))
    with running(
        args.root,
        args.origin,
        signer,
        (host, int(port)),
        context,
        state_dir=args.state,
        journal_dir=args.journal_dir,
        journal_hosts=hosts,
        broker=broker,
        witnesses=witnesses,
        witness_context=ssl.create_default_context(cafile=str(args.ca)),
        archive_to=archive_to,
    ) as server:
        print(f"ledger {args.origin} serving on {server.server_address}", file=sys.stderr)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            while not stop.wait(1.0):
                for worker in server.workers:  # type: ignore[attr-defined]
                    if not worker.alive():
                        raise Exit(f"{type(worker).__name__} stopped: {worker.error!r}")
    return 0


if __name__ == "__main__":
    run(main)
