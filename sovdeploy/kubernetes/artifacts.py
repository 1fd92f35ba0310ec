"""The Kubernetes artifact manifest (``sovdeploy/data/kubernetes.yml``), and its mirror check.

Every package, binary and image the kubernetes phase puts on a host is pinned there
by version and sha256. ``check`` asks the inventory's own mirrors for each one and
hashes what they serve: a deb is looked up in its suite's Packages index (what apt
will verify it against) and its pool file hashed; a file is hashed; an image's
manifest list is fetched by digest from the registry's v2 API and hashed.
"""

from __future__ import annotations

import contextvars
import gzip
import hashlib
import json
import lzma
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
import urllib.response
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sovdeploy.errors import SovdeployError
from sovdeploy.model import Deployment, Host, SourceKind

__all__ = [
    "Artifact",
    "ArtifactKind",
    "CheckResult",
    "Manifest",
    "MirrorError",
    "check",
    "load",
    "location",
    "needed",
    "role_vars",
    "sources",
]

#: What a registry is asked for: a manifest list or index first, a single manifest else.
_MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
_CHUNK = 1 << 20
_TIMEOUT = 30


class MirrorError(SovdeployError):
    """A mirror lacks an artifact, serves a wrong one, or cannot be read."""


class ArtifactKind(StrEnum):
    DEB = "deb"
    FILE = "file"
    IMAGE = "image"


#: The kind of inventory artifact source each kind of artifact comes from.
SOURCE_OF = {
    ArtifactKind.DEB: SourceKind.APT,
    ArtifactKind.FILE: SourceKind.FILES,
    ArtifactKind.IMAGE: SourceKind.CONTAINER_REGISTRY,
}


class Artifact(BaseModel):
    """One pinned artifact."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")
    kind: ArtifactKind
    needed_on: Literal["k8s", "control", "gpu", "sriov", "flannel", "cilium"] = Field(alias="for")
    version: str
    suite: str | None = None
    path: str = Field(pattern=r"^[^/].*[^/]$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    origin: str
    recipe: str | None = Field(
        default=None, description="the supply.yml recipe it is built from, where it is built"
    )

    @model_validator(mode="after")
    def _suite_for_debs(self) -> Artifact:
        if (self.kind is ArtifactKind.DEB) != (self.suite is not None):
            raise ValueError(f"{self.name}: a deb names the suite that lists it, nothing else does")
        return self

    @property
    def digest(self) -> str:
        return f"sha256:{self.sha256}"


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kubernetes_version: str = Field(pattern=r"^v\d+\.\d+\.\d+$")
    artifacts: tuple[Artifact, ...]

    @model_validator(mode="after")
    def _unique(self) -> Manifest:
        names = [a.name for a in self.artifacts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"artifacts named twice: {', '.join(dupes)}")
        return self

    def get(self, name: str) -> Artifact:
        for artifact in self.artifacts:
            if artifact.name == name:
                return artifact
        raise MirrorError(
            f"no artifact '{name}' in the manifest; it has: "
            + ", ".join(a.name for a in self.artifacts)
        )


@cache
def load() -> Manifest:
    """The manifest shipped with sovdeploy."""
    text = resources.files("sovdeploy").joinpath("data/kubernetes.yml").read_text("utf-8")
    return Manifest.model_validate(yaml.safe_load(text))


def role_vars(manifest: Manifest) -> dict[str, Any]:
    """What the kubernetes role reads: ``kubernetes_artifacts``, the entries by name."""
    return {
        "kubernetes_artifacts": {
            a.name: a.model_dump(mode="json", by_alias=True) for a in manifest.artifacts
        }
    }


def cluster_hosts(deployment: Deployment) -> tuple[Host, ...]:
    """The hosts of the Kubernetes cluster: every k8s_control and k8s_worker host."""
    return tuple(h for h in deployment.hosts if {"k8s_control", "k8s_worker"} & set(h.groups))


def needed(manifest: Manifest, deployment: Deployment) -> list[Artifact]:
    """The artifacts this deployment's Kubernetes hosts need (none without such hosts)."""
    workers = deployment.hosts_in("k8s_worker")
    wanted = set()
    if cluster_hosts(deployment):
        wanted.add("k8s")
    if deployment.hosts_in("k8s_control"):
        wanted.add("control")
    if any(h.hardware.gpus for h in workers):
        wanted.add("gpu")
    if any(n.sriov_vfs for h in workers for n in h.hardware.nics):
        wanted.add("sriov")
    if "k8s" in wanted:
        wanted.add(deployment.settings.kubernetes.pod_network)
    return [a for a in manifest.artifacts if a.needed_on in wanted]


def sources(deployment: Deployment) -> dict[ArtifactKind, str]:
    """The mirror URL of each artifact kind, from the inventory's first source of its kind."""
    found: dict[ArtifactKind, str] = {}
    for kind, source_kind in SOURCE_OF.items():
        for source in deployment.settings.artifact_sources.values():
            if source.kind == source_kind:
                found[kind] = source.url
                break
    return found


def registry_host(mirrors: dict[ArtifactKind, str]) -> str:
    """The registry images are named by (host and path, no scheme), as the roles name it."""
    url = mirrors.get(ArtifactKind.IMAGE)
    if url is None:
        raise MirrorError("the inventory declares no artifact source of kind 'container_registry'")
    return re.sub(r"^https?://", "", url).rstrip("/")


def image_ref(artifact: Artifact, registry: str) -> str:
    """An image in the deployment's registry, by its pinned digest (the pinned_image filter)."""
    return f"{registry}/{artifact.path}@{artifact.digest}"


def location(artifact: Artifact, mirrors: dict[ArtifactKind, str]) -> str | None:
    """Where ``artifact`` lies in the mirrors: a URL (for an image, its manifest's)."""
    base = mirrors.get(artifact.kind)
    if base is None:
        return None
    base = _as_url(base).rstrip("/")
    if artifact.kind is ArtifactKind.IMAGE:
        return f"{base}/v2/{artifact.path}/manifests/{artifact.digest}"
    return f"{base}/{urllib.parse.quote(artifact.path)}"


def _as_url(base: str) -> str:
    return Path(base).as_uri() if base.startswith("/") else base


@dataclass(frozen=True)
class CheckResult:
    artifact: Artifact
    url: str | None
    ok: bool
    detail: str


def check(
    artifacts: Iterable[Artifact],
    mirrors: dict[ArtifactKind, str],
    on_result: Callable[[CheckResult], None] | None = None,
    on_start: Callable[[Artifact], None] | None = None,
    ca_file: Path | None = None,
) -> list[CheckResult]:
    """Ask the mirrors for each artifact and verify its digest; report every one.

    Nothing is raised for a bad artifact: each gets a result, so that one run names
    every problem. A mirror that cannot be reached fails its artifacts with the reason.
    HTTPS mirrors are verified against the system's CAs and ``ca_file`` (the
    deployment's CA, which the deployer's mirror service's certificate is issued by).
    """
    indexes: dict[tuple[str, str, str], dict[tuple[str, str], dict[str, str]] | str] = {}
    results = []
    token = _TRUST.set(trust(ca_file))
    try:
        for artifact in artifacts:
            if on_start is not None:
                on_start(artifact)
            result = _check_one(artifact, mirrors, indexes)
            results.append(result)
            if on_result is not None:
                on_result(result)
    finally:
        _TRUST.reset(token)
    return results


def require_all(results: list[CheckResult], what: str = "artifact(s)", then: str = "") -> None:
    """Raise :class:`MirrorError` naming every artifact ``results`` fail; nothing if none.

    ``what`` names the artifacts in the message, ``then`` is said after the list.
    """
    bad = [r.artifact.name for r in results if not r.ok]
    if bad:
        raise MirrorError(
            f"the mirrors fail {len(bad)} of {len(results)} {what}: {', '.join(bad)}{then}"
        )


def _check_one(
    artifact: Artifact,
    mirrors: dict[ArtifactKind, str],
    indexes: dict[tuple[str, str, str], dict[tuple[str, str], dict[str, str]] | str],
) -> CheckResult:
    url = location(artifact, mirrors)
    if url is None:
        return CheckResult(
            artifact,
            None,
            False,
            f"the inventory declares no artifact source of kind '{SOURCE_OF[artifact.kind]}'",
        )
    if artifact.kind is ArtifactKind.DEB:
        problem = _index_problem(artifact, mirrors[ArtifactKind.DEB], indexes)
        if problem:
            return CheckResult(artifact, url, False, problem)
    try:
        if artifact.kind is ArtifactKind.IMAGE:
            digest, size = _hash_stream(_open_manifest(url, artifact.path))
        else:
            digest, size = _hash_stream(_open(url))
    except MirrorError as exc:
        return CheckResult(artifact, url, False, str(exc))
    if digest != artifact.sha256:
        return CheckResult(
            artifact, url, False, f"wrong digest: the mirror serves sha256:{digest} ({size} bytes)"
        )
    return CheckResult(artifact, url, True, f"sha256 verified, {_size(size)}")


def _index_problem(
    artifact: Artifact,
    apt: str,
    indexes: dict[tuple[str, str, str], dict[tuple[str, str], dict[str, str]] | str],
) -> str | None:
    """Why apt would not install this exact deb from the mirror, or None."""
    assert artifact.suite is not None
    component = artifact.path.split("/")[1] if artifact.path.startswith("pool/") else "main"
    key = (apt, artifact.suite, component)
    if key not in indexes:
        indexes[key] = _read_index(apt, artifact.suite, component)
    index = indexes[key]
    if isinstance(index, str):
        return index
    entry = index.get((artifact.name, artifact.version))
    where = f"{artifact.suite}/{component} Packages index"
    if entry is None:
        versions = sorted(v for (n, v) in index if n == artifact.name)
        held = f" (it lists {', '.join(versions)})" if versions else ""
        return f"missing: {artifact.name} {artifact.version} is not in the {where}{held}"
    if entry.get("SHA256") != artifact.sha256:
        return f"wrong digest: the {where} has sha256:{entry.get('SHA256')}"
    if entry.get("Filename") != artifact.path:
        return f"the {where} puts it at {entry.get('Filename')}, not {artifact.path}"
    return None


def _read_index(
    apt: str, suite: str, component: str
) -> dict[tuple[str, str], dict[str, str]] | str:
    base = f"{_as_url(apt).rstrip('/')}/dists/{suite}/{component}/binary-amd64/Packages"
    tried = []
    for suffix, unpack in ((".xz", lzma.decompress), (".gz", gzip.decompress), ("", bytes)):
        try:
            with _open(base + suffix) as response:
                data = unpack(response.read())
        except MirrorError as exc:
            tried.append(str(exc))
            if not str(exc).startswith("missing"):
                break  # the mirror itself cannot be reached: one reason is enough
            continue
        return dict(_stanzas(data.decode("utf-8", "replace")))
    return "the Packages index cannot be read: " + "; ".join(tried)


def _stanzas(text: str) -> Iterator[tuple[tuple[str, str], dict[str, str]]]:
    for block in re.split(r"\n\s*\n", text):
        fields = {
            m.group(1): m.group(2).strip() for m in re.finditer(r"^([\w-]+):(.*)$", block, re.M)
        }
        if "Package" in fields and "Version" in fields:
            yield (fields["Package"], fields["Version"]), fields


#: Whom HTTPS mirrors are verified against: the system's CAs, and the deployment's own
#: CA where ``check`` is given it (the deployer's mirror service presents its certificate).
_TRUST: contextvars.ContextVar[ssl.SSLContext | None] = contextvars.ContextVar(
    "mirror_trust", default=None
)


def trust(cafile: Path | None) -> ssl.SSLContext:
    """The system's CAs, plus ``cafile`` (the deployment's CA) where it exists."""
    context = ssl.create_default_context()
    if cafile is not None and cafile.is_file():
        context.load_verify_locations(cafile=str(cafile))
    return context


def _open(url: str, headers: dict[str, str] | None = None) -> urllib.response.addinfourl:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - the inventory's mirrors
    try:
        return urllib.request.urlopen(request, timeout=_TIMEOUT, context=_TRUST.get())  # type: ignore[no-any-return]  # noqa: S310
    except urllib.error.HTTPError as exc:
        what = "missing" if exc.code == 404 else "refused"
        raise MirrorError(f"{what}: HTTP {exc.code} from {url}") from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, FileNotFoundError):
            path = urllib.parse.unquote(urllib.parse.urlparse(url).path)
            raise MirrorError(f"missing: no file {path}") from exc
        raise MirrorError(f"unreachable: {url}: {reason}") from exc
    except OSError as exc:
        raise MirrorError(f"unreachable: {url}: {exc}") from exc


def _open_manifest(url: str, repository: str) -> urllib.response.addinfourl:
    """GET a manifest, with an anonymous bearer token where the registry asks for one."""
    headers = {"Accept": _MANIFEST_TYPES}
    try:
        return _open(url, headers)
    except MirrorError as exc:
        cause = exc.__cause__
        challenge = ""
        if isinstance(cause, urllib.error.HTTPError) and cause.code == 401:
            challenge = cause.headers.get("WWW-Authenticate", "")
        if not challenge.lower().startswith("bearer "):
            raise
    token = _bearer_token(challenge, repository)
    return _open(url, {**headers, "Authorization": f"Bearer {token}"})


def _bearer_token(challenge: str, repository: str) -> str:
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm = params.pop("realm", "")
    if not realm:
        raise MirrorError(f"refused: the registry's challenge names no token realm: {challenge}")
    params.setdefault("scope", f"repository:{repository}:pull")
    with _open(f"{realm}?{urllib.parse.urlencode(params)}") as response:
        body = json.loads(response.read())
    token = body.get("token") or body.get("access_token")
    if not isinstance(token, str):
        raise MirrorError(f"refused: the token service at {realm} gave no token")
    return token


def _hash_stream(
    response: urllib.response.addinfourl, sink: BinaryIO | None = None
) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with response:
        while chunk := response.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if sink is not None:
                sink.write(chunk)
    return digest.hexdigest(), size


def fetch(artifact: Artifact, mirrors: dict[ArtifactKind, str], dest: Path) -> Path:
    """Download a file artifact to ``dest``, there only once its digest is verified."""
    if artifact.kind is ArtifactKind.IMAGE:
        raise MirrorError(f"{artifact.name} is an image: the container runtime pulls it")
    url = location(artifact, mirrors)
    if url is None:
        raise MirrorError(f"{artifact.name}: no {SOURCE_OF[artifact.kind]} source to fetch it from")
    partial = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with partial.open("wb") as sink:
            digest, size = _hash_stream(_open(url), sink)
        if digest != artifact.sha256:
            raise MirrorError(
                f"{artifact.name}: wrong digest: {url} serves sha256:{digest} ({size} bytes)"
            )
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)
    return dest


def _size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size} bytes"
