"""OCI images, the same bytes from the same inputs, and their push to a registry.

No image builder and no base image from a public registry: a layer is a tar of the
files given (sorted, owned by the uid and gid given, every time the release's
``SOURCE_DATE_EPOCH``), gzip'd with no name and no time in its header; the config,
manifest and index are canonical JSON. So an image's digest depends only on its files,
its settings and the epoch, and can be pinned like any other artifact. The index (one
linux/amd64 manifest) is what a tag names and what ``mirror check`` hashes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import ssl
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sovdeploy.fsutil import atomic_write
from sovdeploy.supply.recipes import SupplyError

__all__ = ["Blob", "Entry", "Image", "image", "layer", "push", "read_layout", "write_layout"]

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
_TIMEOUT = 60


@dataclass(frozen=True)
class Entry:
    """A file (``data``), a symbolic link (``link``) or a directory (neither) in a layer."""

    path: str
    data: bytes | None
    mode: int = 0o755
    uid: int = 0
    gid: int = 0
    link: str | None = None


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    def descriptor(self, **more: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data), **more}


@dataclass(frozen=True)
class Image:
    index: Blob
    manifest: Blob
    config: Blob
    layers: tuple[Blob, ...]

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (*self.layers, self.config, self.manifest, self.index)


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def layer(entries: Iterable[Entry], epoch: int) -> tuple[Blob, str]:
    """A gzip'd tar of ``entries`` and the digest of the uncompressed tar (its diff ID)."""
    given = {e.path.strip("/"): e for e in entries}
    # Every parent directory has an entry of its own (root's, 0755), as image builders do.
    for path in list(given):
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            parent = "/".join(parts[:depth])
            given.setdefault(parent, Entry(parent, None, 0o755))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(given.values(), key=lambda e: e.path.strip("/")):
            info = tarfile.TarInfo(entry.path.strip("/"))
            info.mtime = epoch
            info.mode = entry.mode
            info.uid, info.gid = entry.uid, entry.gid
            info.uname = info.gname = ""
            if entry.link is not None:
                info.type = tarfile.SYMTYPE
                info.linkname = entry.link
                info.mode = 0o777
                tar.addfile(info)
            elif entry.data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
    tar_bytes = raw.getvalue()
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", fileobj=packed, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(tar_bytes)
    return Blob(LAYER, packed.getvalue()), "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


def image(
    entries: Iterable[Entry],
    *,
    epoch: int,
    entrypoint: list[str],
    cmd: list[str] | None = None,
    user: str = "",
    env: tuple[str, ...] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",),
    labels: dict[str, str] | None = None,
    below: tuple[tuple[Blob, str, str], ...] = (),
) -> Image:
    """A linux/amd64 image whose top layer holds ``entries``.

    ``below`` are the layers under it, bottom first, each as ``layer`` returns it plus
    what made it (the image's history says so): a base made once and shared, so that a
    registry holds its blob once for every image on it.
    """
    blob, diff_id = layer(entries, epoch)
    created = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    settings: dict[str, Any] = {"Env": list(env)}
    if entrypoint:
        settings["Entrypoint"] = entrypoint
    if cmd:
        settings["Cmd"] = cmd
    if user:
        settings["User"] = user
    if labels:
        settings["Labels"] = dict(labels)
    config = Blob(
        CONFIG,
        _canonical(
            {
                "architecture": "amd64",
                "os": "linux",
                "created": created,
                "config": settings,
                "rootfs": {"type": "layers", "diff_ids": [*(d for _, d, _ in below), diff_id]},
                "history": [
                    *({"created": created, "created_by": what} for _, _, what in below),
                    {"created": created, "created_by": "sovdeploy mirror build"},
                ],
            }
        ),
    )
    manifest = Blob(
        MANIFEST,
        _canonical(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": config.descriptor(),
                "layers": [*(b.descriptor() for b, _, _ in below), blob.descriptor()],
            }
        ),
    )
    index = Blob(
        INDEX,
        _canonical(
            {
                "schemaVersion": 2,
                "mediaType": INDEX,
                "manifests": [
                    manifest.descriptor(platform={"architecture": "amd64", "os": "linux"})
                ],
            }
        ),
    )
    return Image(
        index=index, manifest=manifest, config=config, layers=(*(b for b, _, _ in below), blob)
    )


def write_layout(directory: Path, img: Image, tag: str) -> None:
    """The image as an OCI image layout (``oci-layout``, ``index.json``, ``blobs/``)."""
    for blob in img.blobs:
        path = directory / "blobs" / "sha256" / blob.digest.removeprefix("sha256:")
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, blob.data)
    atomic_write(directory / "oci-layout", _canonical({"imageLayoutVersion": "1.0.0"}))
    top = img.index.descriptor(annotations={"org.opencontainers.image.ref.name": tag})
    atomic_write(directory / "index.json", _canonical({"schemaVersion": 2, "manifests": [top]}))


def _request(
    method: str,
    url: str,
    data: bytes | None = None,
    ctype: str = "",
    context: ssl.SSLContext | None = None,
) -> Any:
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s) only
    if ctype:
        req.add_header("Content-Type", ctype)
    return urllib.request.urlopen(req, timeout=_TIMEOUT, context=context)  # noqa: S310


def read_layout(directory: Path) -> Image:
    """The image an OCI image layout (as ``write_layout`` writes it) holds, blobs checked."""

    def blob(media_type: str, digest: str) -> Blob:
        data = (directory / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
        found = Blob(media_type, data)
        if found.digest != digest:
            raise SupplyError(f"{directory}: blob {digest} holds other bytes ({found.digest})")
        return found

    try:
        top = json.loads((directory / "index.json").read_text())["manifests"][0]["digest"]
        index = blob(INDEX, top)
        manifest = blob(MANIFEST, json.loads(index.data)["manifests"][0]["digest"])
        doc = json.loads(manifest.data)
        config = blob(CONFIG, doc["config"]["digest"])
        layers = tuple(blob(LAYER, d["digest"]) for d in doc["layers"])
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise SupplyError(f"{directory} is not a whole OCI image layout: {exc}") from exc
    return Image(index=index, manifest=manifest, config=config, layers=layers)


def push(
    registry: str,
    repository: str,
    tag: str,
    img: Image,
    context: ssl.SSLContext | None = None,
) -> str:
    """Push ``img`` as ``repository:tag`` (registry v2 API); return the index's digest.

    ``registry`` is the registry's base URL (``https://mirror.example:5000``), verified
    with ``context`` (the deployment's CA) when it is HTTPS. Blobs the
    registry already holds are not sent again; the manifest goes by digest, the index by
    tag.
    """
    if urllib.parse.urlparse(registry).scheme not in ("http", "https"):
        raise SupplyError(f"{registry}: a registry URL is http(s)")
    base = f"{registry.rstrip('/')}/v2/{repository}"
    try:
        for blob in (*img.layers, img.config):
            try:
                _request("HEAD", f"{base}/blobs/{blob.digest}", context=context).close()
                continue
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
            with _request("POST", f"{base}/blobs/uploads/", b"", context=context) as started:
                location = started.headers["Location"]
            upload = urllib.parse.urljoin(f"{registry.rstrip('/')}/", location)
            sep = "&" if "?" in upload else "?"
            digest = urllib.parse.quote(blob.digest)
            _request(
                "PUT",
                f"{upload}{sep}digest={digest}",
                blob.data,
                "application/octet-stream",
                context,
            ).close()
        _request(
            "PUT", f"{base}/manifests/{img.manifest.digest}", img.manifest.data, MANIFEST, context
        ).close()
        _request("PUT", f"{base}/manifests/{tag}", img.index.data, INDEX, context).close()
    except (urllib.error.URLError, OSError) as exc:
        raise SupplyError(f"cannot push {repository}:{tag} to {registry}: {exc}") from exc
    return img.index.digest
