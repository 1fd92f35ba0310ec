"""Every configuration document and manifest the kubernetes role renders validates.

The role is rendered for example-eu (three control hosts behind an API address, two
GPU and SR-IOV workers), offline, as `sovdeploy plan` renders it, with the vault's
placeholders filled as `sovdeploy secrets generate` would fill them. Kinds the API
server serves (DaemonSet, ConfigMap, RBAC, CRDs) are checked against the strict
OpenAPI schemas of Kubernetes v1.37.0 that kubernetes-validate ships; kubeadm's, the
kubelet's and the API server's own files, the NetworkAttachmentDefinition CRD and
Cilium's chart values against the schemas pinned in tests/schemas.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

from sovdeploy import catalogue, secrets
from sovdeploy import inventory as inv
from sovdeploy import preview as render
from sovdeploy.kubernetes import artifacts as mirror
from sovdeploy.kubernetes import nodes

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "tests" / "schemas" / "kubernetes-v1.34"
CILIUM_VALUES = ROOT / "tests" / "schemas" / "cilium-1.18" / "values.yaml"
EXAMPLE = ROOT / "inventories" / "example-eu"
CONTROL = ("k8s-cp01", "k8s-cp02", "k8s-cp03")
WORKERS = ("k8s-wk01", "k8s-wk02")
#: The API server's own kinds: validated against its OpenAPI schemas.
SERVED = {"apps/v1", "v1", "rbac.authorization.k8s.io/v1", "apiextensions.k8s.io/v1"}
KUBERNETES_SCHEMAS = "1.37.0"


def _schema(doc: dict[str, Any]) -> dict[str, Any]:
    name = f"{doc['apiVersion'].replace('/', '_')}_{doc['kind']}.yaml"
    path = SCHEMAS / name
    if not path.exists():
        pytest.fail(f"no pinned schema for {doc['apiVersion']} {doc['kind']} ({path.name})")
    return yaml.safe_load(path.read_text())  # type: ignore[no-any-return]


def _against(schema: dict[str, Any], doc: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


def _errors(doc: dict[str, Any]) -> list[str]:
    if doc["apiVersion"] in SERVED:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_SCHEMAS, strict=True)
        except kubernetes_validate.ValidationError as exc:
            return [f"{'/'.join(map(str, exc.path))}: {exc.message}"]
        return []
    found = _against(_schema(doc), doc)
    for plugin in doc.get("plugins", []) if doc["kind"] == "AdmissionConfiguration" else []:
        if "configuration" in plugin:
            found += _errors(plugin["configuration"])
    if doc["kind"] == "NetworkAttachmentDefinition":
        config = json.loads(doc["spec"]["config"])
        found += [] if {"cniVersion", "name", "type"} <= set(config) else [f"CNI config {config}"]
    return found


def _fill_vault(text: str, values: dict[str, str]) -> str:
    """The rendered text with each secret as `sovdeploy secrets generate` would make it."""

    def value(name: str) -> str:
        if name not in values:
            kind = secrets.kind_of(name)
            assert kind is not None, name
            values[name] = secrets.GENERATORS[kind]()
        return values[name]

    def pin(match: re.Match[str]) -> str:
        # Through Ansible's templating, as the role computes it.
        templar = Templar(loader=DataLoader(), variables={"key": value(match[1])})
        return str(templar.template("{{ key | spki_sha256 }}"))

    text = re.sub(r"sha256:<vault:(\w+)>", pin, text)
    return re.sub(r"<vault:(\w+)>", lambda m: value(m[1]), text)


def _render(out: Path, inventory: Path) -> dict[str, list[Any]]:
    loaded = inv.load(inventory)
    cat = catalogue.for_deployment(loaded.deployment)
    render.render(
        inv.open_ansible(loaded),
        inventory,
        ROOT / "playbooks" / "kubernetes.yml",
        out,
        {**mirror.role_vars(mirror.load()), **nodes.kubernetes_vars(loaded.deployment, cat)},
    )
    files = {}
    values: dict[str, str] = {}
    for path in sorted(out.glob("*/etc/kubernetes/**/*.yaml")):
        host = path.relative_to(out).parts[0]
        text = _fill_vault(path.read_text(), values)
        files[f"{host}:/{path.relative_to(out / host)}"] = list(yaml.safe_load_all(text))
    return files


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Any]]:
    """Each rendered YAML file under /etc/kubernetes (host:path) with its documents."""
    return _render(tmp_path_factory.mktemp("render"), EXAMPLE)


@pytest.fixture(scope="module")
def rendered_cilium(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Any]]:
    """The same with Cilium as the pod network: its chart values on the first host."""
    tmp = tmp_path_factory.mktemp("render-cilium")
    inventory = tmp / "example-eu"
    shutil.copytree(EXAMPLE, inventory)
    settings = inventory / "group_vars" / "all" / "sovdeploy.yml"
    text = settings.read_text()
    settings.write_text(
        text.replace(
            "  pod_subnet: 10.244.0.0/16\n",
            "  pod_subnet: 10.244.0.0/16\n  pod_network: cilium\n",
            1,
        )
    )
    files = _render(tmp / "out", inventory)
    assert "k8s-cp01:/etc/kubernetes/addons/cilium-values.yaml" in files
    return files


POLICY = {
    "/etc/kubernetes/audit-policy.yaml",
    "/etc/kubernetes/admission-config.yaml",
    "/etc/kubernetes/encryption-config.yaml",
}
ADDONS = {
    f"/etc/kubernetes/addons/{name}.yaml"
    for name in ("coredns", "flannel", "nvidia-device-plugin", "multus", "sriov")
}


def _files(rendered: dict[str, Any], host: str) -> set[str]:
    return {k.split(":")[1] for k in rendered if k.startswith(f"{host}:")}


def test_every_host_gets_its_configuration(rendered: dict[str, Any]) -> None:
    # The first control host initialises the cluster and installs the add-ons (the
    # example's workers declare NVIDIA GPUs and SR-IOV VFs); every other host joins.
    assert _files(rendered, "k8s-cp01") == POLICY | ADDONS | {"/etc/kubernetes/kubeadm/config.yaml"}
    for host in CONTROL[1:]:
        assert _files(rendered, host) == POLICY | {"/etc/kubernetes/kubeadm/join.yaml"}
    for host in WORKERS:
        assert _files(rendered, host) == {"/etc/kubernetes/kubeadm/join.yaml"}


def test_every_rendered_document_validates(
    rendered: dict[str, Any], rendered_cilium: dict[str, Any]
) -> None:
    kinds = set()
    values = yaml.safe_load(CILIUM_VALUES.read_text())
    for where, docs in [*rendered.items(), *rendered_cilium.items()]:
        for doc in docs:
            if where.endswith("/cilium-values.yaml"):
                assert _against(values, doc) == [], where
                kinds.add("cilium values")
                continue
            assert _errors(doc) == [], where
            kinds.add(doc["kind"])
            kinds |= {p["configuration"]["kind"] for p in doc.get("plugins", [])}
    assert kinds == {
        "ClusterConfiguration",
        "InitConfiguration",
        "JoinConfiguration",
        "KubeletConfiguration",
        "Policy",
        "EncryptionConfiguration",
        "AdmissionConfiguration",
        "PodSecurityConfiguration",
        "cilium values",
        "DaemonSet",
        "ConfigMap",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "NetworkAttachmentDefinition",
    }


def test_workers_join_with_their_hardwares_labels_and_taints(rendered: dict[str, Any]) -> None:
    [join] = rendered["k8s-wk01:/etc/kubernetes/kubeadm/join.yaml"]
    assert "controlPlane" not in join
    registration = join["nodeRegistration"]
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in registration[
        "taints"
    ]
    labels = dict(
        pair.split("=")
        for arg in registration["kubeletExtraArgs"]
        if arg["name"] == "node-labels"
        for pair in arg["value"].split(",")
    )
    assert labels["nvidia.com/gpu.present"] == "true"
    assert any(k.startswith("sovdeploy.io/sriov-") for k in labels)
    # No label in the domains a kubelet may not set on its own node.
    assert not [k for k in labels if re.search(r"(^|\.)(kubernetes|k8s)\.io/", k)]


def test_the_api_address_and_the_pinned_release_reach_kubeadm(rendered: dict[str, Any]) -> None:
    docs = rendered["k8s-cp01:/etc/kubernetes/kubeadm/config.yaml"]
    cluster = next(d for d in docs if d["kind"] == "ClusterConfiguration")
    init = next(d for d in docs if d["kind"] == "InitConfiguration")
    assert cluster["controlPlaneEndpoint"] == "k8s.eu-ai-prod.example-cloud.eu:6443"
    assert cluster["kubernetesVersion"] == mirror.load().kubernetes_version
    # Upstream names: containerd's registry mirror sends the pulls to the deployment's.
    assert cluster["imageRepository"] == "registry.k8s.io"
    assert {"10.10.3.10", "k8s.eu-ai-prod.example-cloud.eu"} <= set(
        cluster["apiServer"]["certSANs"]
    )
    assert init["localAPIEndpoint"] == {"advertiseAddress": "10.10.3.11", "bindPort": 6444}


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


@pytest.mark.parametrize(
    ("file", "kind", "path", "value"),
    [
        ("multus", "DaemonSet", ["spec", "template", "spec", "hostNetwrok"], True),
        ("sriov", "DaemonSet", ["spec", "updateStrategy", "type"], 7),
        ("sriov", "NetworkAttachmentDefinition", ["spec", "configs"], "{}"),
        ("multus", "ClusterRole", ["rules", 0, "verb"], ["get"]),
    ],
)
def test_a_bad_manifest_is_refused(
    rendered: dict[str, Any], file: str, kind: str, path: list[Any], value: Any
) -> None:
    docs = rendered[f"k8s-cp01:/etc/kubernetes/addons/{file}.yaml"]
    doc = copy.deepcopy(next(d for d in docs if d["kind"] == kind))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert _errors(doc)


def test_a_misspelt_cilium_value_is_refused(rendered_cilium: dict[str, Any]) -> None:
    [values] = rendered_cilium["k8s-cp01:/etc/kubernetes/addons/cilium-values.yaml"]
    schema = yaml.safe_load(CILIUM_VALUES.read_text())
    bad = copy.deepcopy(values)
    bad["image"]["usedigest"] = True
    assert _against(schema, bad)


def test_coredns_keeps_kubeadms_corefile_and_asks_over_udp_only_where_told(
    rendered: dict[str, Any],
) -> None:
    [config] = rendered["k8s-cp01:/etc/kubernetes/addons/coredns.yaml"]
    corefile = config["data"]["Corefile"]
    assert (config["kind"], config["metadata"]["name"]) == ("ConfigMap", "coredns")
    assert "kubernetes cluster.local in-addr.arpa ip6.arpa {" in corefile
    assert "forward . /etc/resolv.conf {" in corefile
    # The example's resolvers answer over TCP: kubeadm's forwarding is left as it is.
    assert "prefer_udp" not in corefile


def test_the_kubelets_eviction_thresholds_are_the_kubelets_own_unless_set(
    rendered: dict[str, Any],
) -> None:
    docs = rendered["k8s-cp01:/etc/kubernetes/kubeadm/config.yaml"]
    kubelet = next(d for d in docs if d["kind"] == "KubeletConfiguration")
    assert "evictionHard" not in kubelet
