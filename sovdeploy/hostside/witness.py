"""A C2SP tlog-witness: cosigns a log's checkpoints, never two that are inconsistent.

``POST <prefix>/add-checkpoint`` takes ``old <size>``, the consistency proof from that
size (one base64 hash per line), a blank line and the signed checkpoint. The witness
answers as the spec says: 404 for an unknown origin, 403 when no trusted log key signed
it, 400 when the old size is beyond the new one, 409 (body: the size it holds, type
``text/x.tlog.size``) when the old size is not the one it last cosigned or the same size
comes with another root, 422 when the proof does not verify, and 200 with its
timestamped cosignature lines otherwise. Checking and recording the new state happen
under one lock, and the state is on disk before the answer leaves.
"""

from __future__ import annotations

import base64
import binascii
import http.server
import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sovdeploy.fsutil import atomic_write
from sovdeploy.hostside import Exit, run
from sovdeploy.ledger import merkle, note
from sovdeploy.ledger.checkpoint import CheckpointError, SignedCheckpoint

SIZE_CONTENT_TYPE = "text/x.tlog.size"
MAX_PROOF_LINES = 63
MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


class Witness:
    """The witness's keys, the logs it follows, and the latest checkpoint of each."""

    def __init__(self, signer: note.Signer, logs: Sequence[note.Verifier], state: Path) -> None:
        if signer.sig_type != note.COSIGNATURE_V1:
            raise ValueError("a witness signs with a cosignature (type 0x04) key")
        self.signer = signer
        self.logs: dict[str, list[note.Verifier]] = {}
        for v in logs:
            self.logs.setdefault(v.name, []).append(v)
        self.state_path = state
        self._lock = threading.Lock()
        self._state: dict[str, dict[str, str | int]] = (
            json.loads(state.read_text()) if state.exists() else {}
        )

    def latest(self, origin: str) -> tuple[int, bytes] | None:
        rec = self._state.get(origin)
        if rec is None:
            return None
        return int(rec["size"]), base64.b64decode(str(rec["root"]))

    def add_checkpoint(self, body: bytes, now: int | None = None) -> Answer:
        try:
            signed = self._check_and_record(body)
        except _Refusal as refusal:
            return refusal.answer
        sig = note.cosign(signed.note.text, self.signer, int(time.time()) if now is None else now)
        return Answer(200, sig.line().encode())

    def _check_and_record(self, body: bytes) -> SignedCheckpoint:
        try:
            old, proof, signed = _parse_request(body)
        except ValueError as exc:
            raise _Refusal(400, str(exc)) from None
        cp = signed.checkpoint
        keys = self.logs.get(cp.origin)
        if keys is None:
            raise _Refusal(404, f"unknown log {cp.origin}")
        try:
            note.verify(signed.note, keys)
        except note.NoteError as exc:
            raise _Refusal(403, str(exc)) from None
        if old > cp.size:
            raise _Refusal(400, f"old size {old} is beyond the checkpoint's {cp.size}")
        with self._lock:
            held_size, held_root = self.latest(cp.origin) or (0, merkle.EMPTY_ROOT)
            if old != held_size or (old == cp.size and cp.root != held_root):
                raise _Refusal(409, str(held_size), SIZE_CONTENT_TYPE)
            if old != 0 or proof:
                try:
                    merkle.verify_consistency(old, cp.size, held_root, cp.root, proof)
                except merkle.ProofError as exc:
                    raise _Refusal(422, str(exc)) from None
            self._state[cp.origin] = {"size": cp.size, "root": base64.b64encode(cp.root).decode()}
            atomic_write(self.state_path, json.dumps(self._state, indent=1).encode() + b"\n")
        return signed


class _Refusal(Exception):  # noqa: N818 - an answer, not an error
    def __init__(
        self, status: int, text: str, content_type: str = "text/plain; charset=utf-8"
    ) -> None:
        super().__init__(text)
        self.answer = Answer(status, f"{text}\n".encode(), content_type)


def _parse_request(body: bytes) -> tuple[int, list[bytes], SignedCheckpoint]:
    head, sep, rest = body.partition(b"\n\n")
    if not sep:
        raise ValueError("the request is an old size line, proof lines, a blank line, a checkpoint")
    lines = head.decode("ascii", errors="replace").split("\n")
    if not lines[0].startswith("old ") or not lines[0][4:].isdigit():
        raise ValueError("the first line is 'old <size>'")
    size_text = lines[0][4:]
    if size_text != "0" and size_text.startswith("0"):
        raise ValueError("the old size has no leading zeroes")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise ValueError(f"more than {MAX_PROOF_LINES} proof lines")
    try:
        proof = [base64.b64decode(x, validate=True) for x in lines[1:]]
        signed = SignedCheckpoint.parse(rest)
    except (binascii.Error, note.NoteError, CheckpointError) as exc:
        raise ValueError(str(exc)) from None
    return int(size_text), proof, signed


def request_body(old: int, proof: Sequence[bytes], signed: SignedCheckpoint) -> bytes:
    lines = [f"old {old}", *(base64.b64encode(h).decode() for h in proof)]
    return ("\n".join(lines) + "\n\n").encode() + signed.encode()


class WitnessRefused(RuntimeError):  # noqa: N818 - the witness's answer, not a bug
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"the witness answered {status}: {body.strip()}")
        self.status = status
        self.body = body


def submit(
    url: str,
    old: int,
    proof: Sequence[bytes],
    signed: SignedCheckpoint,
    context: ssl.SSLContext | None = None,
    *,
    timeout: float = 30,
) -> list[note.Signature]:
    """Ask a witness to cosign; return its signature lines (unverified: check them)."""
    req = urllib.request.Request(  # noqa: S310 - the witness URL comes from the inventory
        url.rstrip("/") + "/add-checkpoint", data=request_body(old, proof, signed), method="POST"
    )
    try:
        with urllib.request.urlopen(req, context=context, timeout=timeout) as resp:  # noqa: S310
            text = resp.read().decode()
    except urllib.error.HTTPError as exc:
        raise WitnessRefused(exc.code, exc.read().decode(errors="replace")) from None
    parsed = note.parse((signed.note.text + "\n" + text).encode())
    return list(parsed.signatures)


@dataclass(frozen=True)
class WitnessEndpoint:
    url: str
    key: note.Verifier


class Cosigners:
    """The log's witnesses, asked to cosign each checkpoint before it is published.

    For each witness the log remembers the size it last cosigned (a witness that holds
    another says so with 409, and is asked again once from there). A witness that is
    down or refuses costs that checkpoint its cosignature, never the checkpoint: the
    auditor's quorum (``audit verify --witness --quorum``) decides what is enough.
    """

    def __init__(
        self,
        witnesses: Sequence[WitnessEndpoint],
        context: ssl.SSLContext | None = None,
        timeout: float = 3.0,
    ) -> None:
        self.witnesses = list(witnesses)
        self.context = context
        self.timeout = timeout
        self.sizes: dict[str, int] = {}
        self.errors: dict[str, str] = {}

    def __call__(self, signed: SignedCheckpoint, node: merkle.NodeReader) -> list[note.Signature]:
        cosigs: list[note.Signature] = []
        for w in self.witnesses:
            try:
                cosigs += self._ask(w, signed, node)
            except (WitnessRefused, OSError, ValueError, merkle.ProofError) as exc:
                self.errors[w.url] = f"{type(exc).__name__}: {exc}"
            else:
                self.errors.pop(w.url, None)
        return cosigs

    def _ask(
        self, w: WitnessEndpoint, signed: SignedCheckpoint, node: merkle.NodeReader
    ) -> list[note.Signature]:
        size = signed.checkpoint.size
        old = self.sizes.get(w.url, 0)
        for attempt in range(2):
            proof = merkle.consistency_proof(node, old, size) if 0 < old < size else []
            try:
                sigs = submit(w.url, old, proof, signed, self.context, timeout=self.timeout)
            except WitnessRefused as exc:
                if exc.status != 409 or attempt or not exc.body.strip().isdigit():
                    raise
                old = int(exc.body.strip())  # the size this witness holds
                if old > size:
                    raise
                continue
            self.sizes[w.url] = size
            mine = note.Note(signed.note.text, tuple(sigs))
            good = {v.id for v in note.verified_by(mine, [w.key])}
            return [sig for sig in sigs if sig.key_id in good]
        return []


class _Handler(http.server.BaseHTTPRequestHandler):
    witness: Witness

    def do_POST(self) -> None:
        if self.path.rstrip("/").rsplit("/", 1)[-1] != "add-checkpoint":
            self._send(Answer(404, b"not found\n"))
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(Answer(413, b"request too large\n"))
            return
        self._send(self.witness.add_checkpoint(self.rfile.read(length)))

    def _send(self, answer: Answer) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the witness's own record is its state file."""


def serve(
    witness: Witness, address: tuple[str, int], context: ssl.SSLContext | None = None
) -> http.server.ThreadingHTTPServer:
    """An HTTP(S) server for ``witness``; call ``serve_forever`` on it."""
    handler = type("WitnessHandler", (_Handler,), {"witness": witness})
    server = http.server.ThreadingHTTPServer(address, handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="sovdeploy-witness", description=__doc__)
    parser.add_argument("--name", required=True, help="the witness's key name")
    parser.add_argument("--key", type=Path, required=True, help="cosigning key file (0600)")
    parser.add_argument(
        "--keygen",
        action="store_true",
        help="make the key if it does not exist, print its verifier key, and exit",
    )
    parser.add_argument(
        "--log-key", type=Path, action="append", default=[], help="a log's verifier key file"
    )
    parser.add_argument("--state", type=Path, help="the witness's state file")
    parser.add_argument("--cert", type=Path)
    parser.add_argument("--cert-key", type=Path)
    parser.add_argument("--listen", default="0.0.0.0:8444")
    args = parser.parse_args(argv)
    if args.keygen:
        signer = _witness_signer(args.key, args.name, create=True)
        print(signer.verifier.vkey())
        return 0
    if not (args.state and args.cert and args.cert_key and args.log_key):
        parser.error("--state, --cert, --cert-key and --log-key are needed to serve")
    signer = _witness_signer(args.key, args.name, create=False)
    logs = [note.Verifier.parse(p.read_text().strip()) for p in args.log_key]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.cert_key)
    host, _, port = args.listen.rpartition(":")
    server = serve(Witness(signer, logs, args.state), (host, int(port)), context)
    print(f"witness {signer.name} for {[v.name for v in logs]} on {host}:{port}", file=sys.stderr)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def _witness_signer(path: Path, name: str, *, create: bool) -> note.Signer:
    """The cosigning key in ``path``; made (0600) first when ``create`` (keygen)."""
    if path.exists():
        signer = note.Signer.parse(path.read_text())
        if signer.name != name or signer.sig_type != note.COSIGNATURE_V1:
            raise Exit(f"{path} is not the cosigning key of {name}")
        return signer
    if not create:
        raise Exit(f"{path} does not exist: run with --keygen first")
    signer = note.Signer.generate(name, note.COSIGNATURE_V1)
    atomic_write(path, (signer.skey() + "\n").encode(), 0o600)
    return signer


if __name__ == "__main__":
    run(main)
