"""A CycloneDX 1.6 SBOM of what was deployed: every host's Debian packages and images.

Built from the probe's readings (``dpkg-query`` and the container runtime on each host),
sovdeploy's pinned Kubernetes manifest, and what `mirror build` built from source for the
deployment (each with the Go module and version it was built from), with package URLs
that name the mirror each artifact came from. The serial number is derived from the content and the
timestamp is the facts', so the same facts give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from sovdeploy import __version__
from sovdeploy.kubernetes import artifacts as mirror
from sovdeploy.model import Deployment, SourceKind
from sovdeploy.supply import build as supply_build
from sovdeploy.supply import recipes

#: Debian 13's code name, for the package URLs' distro qualifier.
DISTRO = "debian-13"


def _source(deployment: Deployment, kind: SourceKind) -> tuple[str, str] | None:
    for name, source in sorted(deployment.settings.artifact_sources.items()):
        if source.kind == kind:
            return name, source.url
    return None


def _deb(key: tuple[str, str, str, str], *, hosts: list[str], apt: str | None) -> dict[str, Any]:
    name, version, arch, source_pkg = key
    purl = f"pkg:deb/debian/{quote(name)}@{quote(version)}?arch={arch}&distro={DISTRO}"
    component: dict[str, Any] = {
        "type": "library" if name.startswith("lib") else "application",
        "bom-ref": purl,
        "name": name,
        "version": version,
        "purl": purl,
        "properties": [{"name": "sovdeploy:hosts", "value": ",".join(hosts)}],
    }
    if source_pkg and source_pkg != name:
        component["properties"].append({"name": "debian:source", "value": source_pkg})
    if apt:
        component["externalReferences"] = [{"type": "distribution", "url": apt}]
    return component


def _image(ref: str, hosts: list[str]) -> dict[str, Any]:
    repo, _, digest = ref.partition("@")
    registry, _, path = repo.partition("/")
    name = path.rsplit("/", 1)[-1] or repo
    purl = f"pkg:oci/{quote(name)}@{quote(digest)}?repository_url={quote(repo, safe='/.:')}"
    alg, _, value = digest.partition(":")
    return {
        "type": "container",
        "bom-ref": purl,
        "name": name,
        "version": digest,
        "purl": purl,
        "hashes": [{"alg": "SHA-256", "content": value}] if alg == "sha256" else [],
        "externalReferences": [{"type": "distribution", "url": f"https://{registry}"}],
        "properties": [{"name": "sovdeploy:hosts", "value": ",".join(hosts)}],
    }


def _pinned(deployment: Deployment) -> list[dict[str, Any]]:
    """Kubernetes binaries and images from the manifest, where the deployment has the hosts."""
    found = []
    mirrors = mirror.sources(deployment)
    for artifact in mirror.needed(mirror.load(), deployment):
        if artifact.kind is mirror.ArtifactKind.DEB:
            continue  # the hosts' dpkg lists these, with the version they really run
        where = mirror.location(artifact, mirrors)
        component: dict[str, Any] = {
            "type": "container" if artifact.kind is mirror.ArtifactKind.IMAGE else "file",
            "bom-ref": f"sovdeploy-pin:{artifact.kind.value}/{artifact.name}@{artifact.version}",
            "name": artifact.name,
            "version": artifact.version,
            "hashes": [{"alg": "SHA-256", "content": artifact.sha256}],
            "properties": [{"name": "sovdeploy:origin", "value": artifact.origin}],
        }
        if where:
            component["externalReferences"] = [{"type": "distribution", "url": where}]
        found.append(component)
    return found


def _built(deployment: Deployment) -> list[dict[str, Any]]:
    """What the deployment runs that was built from pinned source, where the tree holds it."""
    supply = recipes.load()
    tree = supply_build.tree(deployment)
    found = []
    for recipe in supply.in_groups(supply_build.needed_groups(deployment)):
        ok, detail = tree.verify(recipe)
        if not ok:
            continue
        component: dict[str, Any] = {
            "type": "container" if recipe.image is not None else "application",
            "bom-ref": f"sovdeploy-build:{recipe.name}@{recipe.version}",
            "name": recipe.name,
            "version": recipe.version,
            "purl": f"pkg:golang/{recipe.module}@{recipe.version}",
            "hashes": [{"alg": "SHA-256", "content": detail.removeprefix("sha256:")}],
            "properties": [
                {"name": "sovdeploy:built-from", "value": f"{recipe.module}@{recipe.version}"},
                {"name": "sovdeploy:package", "value": recipe.package},
                {
                    "name": "sovdeploy:provenance",
                    "value": str(tree.statement_path(recipe).relative_to(tree.root)),
                },
            ],
        }
        found.append(component)
    return found


def build(deployment: Deployment, facts: Mapping[str, Any]) -> dict[str, Any]:
    """The SBOM as a JSON-ready dict."""
    apt = _source(deployment, SourceKind.APT)
    debs: dict[tuple[str, str, str, str], list[str]] = {}
    images: dict[str, list[str]] = {}
    for host, found in sorted(facts["hosts"].items()):
        for name, version, arch, source_pkg in found.get("packages", []):
            debs.setdefault((name, version, arch, source_pkg), []).append(host)
        for image in found.get("images", []):
            images.setdefault(image["ref"], []).append(host)
    components = [
        _deb(key, hosts=hosts, apt=apt[1] if apt else None) for key, hosts in sorted(debs.items())
    ]
    components += [_image(ref, hosts) for ref, hosts in sorted(images.items())]
    components += _pinned(deployment)
    components += _built(deployment)
    body = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "metadata": {
            "timestamp": facts["gathered"],
            "tools": {
                "components": [{"type": "application", "name": "sovdeploy", "version": __version__}]
            },
            "component": {
                "type": "platform",
                "bom-ref": f"deployment:{deployment.name}",
                "name": deployment.name,
                "supplier": {"name": deployment.settings.operator.name},
            },
        },
        "components": components,
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    serial = uuid.uuid5(uuid.NAMESPACE_URL, f"sovdeploy:{deployment.name}:{digest}")
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        **body,
        "serialNumber": f"urn:uuid:{serial}",
    }
