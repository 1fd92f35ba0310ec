"""Filters over the Kubernetes artifact manifest (``sovdeploy/data/kubernetes.yml``).

sovdeploy passes the manifest's entries by name as ``kubernetes_artifacts``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError


def _entry(artifacts: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    try:
        return artifacts[name]  # type: ignore[no-any-return]
    except KeyError:
        raise AnsibleFilterError(f"the artifact manifest has no '{name}'") from None


def apt_pins(names: Iterable[str], artifacts: Mapping[str, Any]) -> list[str]:
    """``name=version`` for apt, for each named deb of the manifest."""
    pins = []
    for name in names:
        entry = _entry(artifacts, name)
        if entry.get("kind") != "deb":
            raise AnsibleFilterError(f"'{name}' is a {entry.get('kind')}, not a deb")
        pins.append(f"{name}={entry['version']}")
    return pins


def debs_for(artifacts: Mapping[str, Any], needed_on: str) -> list[str]:
    """The names of the manifest's debs that ``needed_on`` hosts (k8s, control) need."""
    return [
        name
        for name, entry in artifacts.items()
        if entry.get("kind") == "deb" and entry.get("for") == needed_on
    ]


def pinned_image(name: str, artifacts: Mapping[str, Any], registry: str = "") -> str:
    """The image ``name`` by its pinned digest: its upstream name, or under ``registry``.

    The hosts name images by their upstream names (containerd's registry mirrors send
    the pulls to the deployment's registry); a registry prefix names its copy directly.
    """
    entry = _entry(artifacts, name)
    if entry.get("kind") != "image":
        raise AnsibleFilterError(f"'{name}' is a {entry.get('kind')}, not an image")
    prefix = f"{registry.rstrip('/')}/" if registry else ""
    return f"{prefix}{entry['path']}@sha256:{entry['sha256']}"


def spki_sha256(private_key: str) -> str:
    """The CA pin kubeadm joins with: ``sha256:`` and the digest of the key's SPKI (DER).

    A joining node checks the cluster CA it discovers against this pin. ``sovdeploy plan``
    renders without the vault, with ``<vault:NAME>`` for each secret: such a value passes
    through as ``sha256:<vault:NAME>``, so the plan shows where the pin comes from.
    """
    if private_key.startswith("<vault:"):
        return f"sha256:{private_key}"
    from cryptography.hazmat.primitives import hashes, serialization

    try:
        key = serialization.load_pem_private_key(private_key.encode(), password=None)
    except ValueError as exc:
        message = f"spki_sha256 needs an unencrypted PEM private key: {exc}"
        raise AnsibleFilterError(message) from None
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    return f"sha256:{digest.finalize().hex()}"


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "apt_pins": apt_pins,
            "debs_for": debs_for,
            "pinned_image": pinned_image,
            "spki_sha256": spki_sha256,
        }
