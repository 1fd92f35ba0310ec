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

from sovdeploy.ledger import merkle, note
from sovdeploy.ledger.checkpoint import CheckpointError, SignedCheckpoint
from sovdeploy.state import atomic_write

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
) -> list[note.Signature]:
    """Ask a witness to cosign; return its signature lines (unverified: check them)."""
    req = urllib.request.Request(  # noqa: S310 - the witness URL comes from the inventory
        url.rstrip("/") + "/add-checkpoint", data=request_body(old, proof, signed), method="POST"
    )
    try:
        with urllib.request.urlopen(req, context=context, timeout=30) as resp:  # noqa: S310
            text = resp.read().decode()
    except urllib.error.HTTPError as exc:
        raise WitnessRefused(exc.code, exc.read().decode(errors="replace")) from None
    parsed = note.parse((signed.note.text + "\n" + text).encode())
    return list(parsed.signatures)


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
