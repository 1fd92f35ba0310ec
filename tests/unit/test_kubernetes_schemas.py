"""Every configuration document the kubernetes role renders validates against its schema.

The role is rendered for example-eu (three control hosts behind an API address, two
GPU and SR-IOV workers), offline, as `sovdeploy plan` renders it. The schemas, one per
apiVersion and kind, are pinned for Kubernetes v1.34 in tests/schemas/kubernetes-v1.34.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from sovdeploy import inventory as inv
from sovdeploy import mirror, render

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "tests" / "schemas" / "kubernetes-v1.34"
EXAMPLE = ROOT / "inventories" / "example-eu"
CONTROL = ("k8s-cp01", "k8s-cp02", "k8s-cp03")


def _schema(doc: dict[str, Any]) -> dict[str, Any]:
    name = f"{doc['apiVersion'].replace('/', '_')}_{doc['kind']}.yaml"
    path = SCHEMAS / name
    if not path.exists():
        pytest.fail(f"no pinned schema for {doc['apiVersion']} {doc['kind']} ({path.name})")
    return yaml.safe_load(path.read_text())  # type: ignore[no-any-return]


def _errors(doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(
        _schema(doc), format_checker=jsonschema.FormatChecker()
    )
    found = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]
    for plugin in doc.get("plugins", []) if doc["kind"] == "AdmissionConfiguration" else []:
        if "configuration" in plugin:
            found += _errors(plugin["configuration"])
    return found


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Each rendered YAML file under /etc/kubernetes (host:path) with its documents."""
    out = tmp_path_factory.mktemp("render")
    loaded = inv.load(EXAMPLE)
    render.render(
        inv.open_ansible(loaded),
        EXAMPLE,
        ROOT / "playbooks" / "kubernetes.yml",
        out,
        mirror.role_vars(mirror.load()),
    )
    files = {}
    for path in sorted(out.glob("*/etc/kubernetes/**/*.yaml")):
        host = path.relative_to(out).parts[0]
        files[f"{host}:/{path.relative_to(out / host)}"] = list(
            yaml.safe_load_all(path.read_text())
        )
    return files


def test_every_control_host_gets_every_configuration(rendered: dict[str, Any]) -> None:
    for host in CONTROL:
        assert {k.split(":")[1] for k in rendered if k.startswith(f"{host}:")} == {
            "/etc/kubernetes/audit-policy.yaml",
            "/etc/kubernetes/admission-config.yaml",
            "/etc/kubernetes/encryption-config.yaml",
            "/etc/kubernetes/kubeadm/config.yaml",
        }


def test_every_rendered_document_validates(rendered: dict[str, Any]) -> None:
    kinds = set()
    for where, docs in rendered.items():
        for doc in docs:
            assert _errors(doc) == [], where
            kinds.add(doc["kind"])
            kinds |= {p["configuration"]["kind"] for p in doc.get("plugins", [])}
    assert kinds == {
        "ClusterConfiguration",
        "InitConfiguration",
        "KubeletConfiguration",
        "Policy",
        "EncryptionConfiguration",
        "AdmissionConfiguration",
        "PodSecurityConfiguration",
    }


def test_the_api_address_and_the_pinned_release_reach_kubeadm(rendered: dict[str, Any]) -> None:
    docs = rendered["k8s-cp02:/etc/kubernetes/kubeadm/config.yaml"]
    cluster = next(d for d in docs if d["kind"] == "ClusterConfiguration")
    init = next(d for d in docs if d["kind"] == "InitConfiguration")
    assert cluster["controlPlaneEndpoint"] == "k8s.eu-ai-prod.example-cloud.eu:6443"
    assert cluster["kubernetesVersion"] == mirror.load().kubernetes_version
    assert cluster["imageRepository"] == "registry.fra1.example-cloud.eu/registry.k8s.io"
    assert {"10.10.3.10", "k8s.eu-ai-prod.example-cloud.eu"} <= set(
        cluster["apiServer"]["certSANs"]
    )
    assert init["localAPIEndpoint"] == {"advertiseAddress": "10.20.3.11", "bindPort": 6444}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["encryptionAlgorithim"], "ECDSA-P384"),
        (["apiServer", "extraArgs", 0, "valeu"], "x"),
        (["encryptionAlgorithm"], "ECDSA-P521"),
        (["networking", "podSubnet"], "10.244.0.0"),
    ],
)
def test_a_misspelt_field_or_a_bad_value_is_refused(
    rendered: dict[str, Any], path: list[Any], value: Any
) -> None:
    docs = rendered["k8s-cp01:/etc/kubernetes/kubeadm/config.yaml"]
    doc = copy.deepcopy(next(d for d in docs if d["kind"] == "ClusterConfiguration"))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert _errors(doc)
