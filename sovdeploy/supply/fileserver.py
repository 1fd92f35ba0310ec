"""The mirror tree's files and provider mirror over HTTPS (`python -m sovdeploy.supply.fileserver`).

Serves ``files/`` and ``providers/`` of the tree that ``sovdeploy mirror build`` fills
(each artifact and its ``.intoto.json`` statement), read-only: GET and HEAD, no
directory listing, nothing outside those two directories (the build records and work
directories under ``.supply/`` are never served). `sovdeploy mirror serve` starts it with
a certificate of the deployment's CA and stops it.
"""

from __future__ import annotations

import argparse
import http.server
import shutil
import ssl
import sys
from pathlib import Path

__all__ = ["main"]

SERVED = ("files", "providers")
_CHUNK = 1 << 20


class _Handler(http.server.BaseHTTPRequestHandler):
    root: Path
    server_version = "sovdeploy-mirror"

    def _target(self) -> Path | None:
        path = self.path.split("?", 1)[0]
        parts = [p for p in path.split("/") if p]
        if not parts or parts[0] not in SERVED or any(p in (".", "..") for p in parts):
            return None
        target = self.root.joinpath(*parts)
        try:
            target.resolve().relative_to(self.root.resolve() / parts[0])
        except ValueError:
            return None  # a link out of the served directory
        return target if target.is_file() else None

    def _head(self) -> Path | None:
        target = self._target()
        if target is None:
            self.send_error(404)
            return None
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(target.stat().st_size))
        self.end_headers()
        return target

    def do_HEAD(self) -> None:
        self._head()

    def do_GET(self) -> None:
        target = self._head()
        if target is not None:
            with target.open("rb") as handle:
                shutil.copyfileobj(handle, self.wfile, _CHUNK)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sovdeploy-mirror-files", description=__doc__)
    parser.add_argument("--root", type=Path, required=True, help="the mirror tree")
    parser.add_argument("--listen", required=True, help="ADDRESS:PORT")
    parser.add_argument("--cert", type=Path, required=True, help="server certificate (PEM)")
    parser.add_argument("--key", type=Path, required=True, help="its private key (PEM)")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.cert, args.key)
    handler = type("MirrorHandler", (_Handler,), {"root": args.root})
    server = http.server.ThreadingHTTPServer((host, int(port)), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
