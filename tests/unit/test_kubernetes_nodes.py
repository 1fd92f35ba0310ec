"""What the kubernetes role derives from declared hardware: node labels, taints, SR-IOV pools."""

from __future__ import annotations

import re
from pathlib import Path

from sovdeploy import catalogue, secrets
from sovdeploy import inventory as inv
from sovdeploy.kubernetes import nodes

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example-eu"


def _vars() -> dict[str, object]:
    loaded = inv.load(EXAMPLE)
    return nodes.kubernetes_vars(loaded.deployment, catalogue.for_deployment(loaded.deployment))


def test_a_gpu_worker_is_labelled_and_tainted_from_its_declared_gpus() -> None:
    node = _vars()["kubernetes_nodes"]["k8s-wk01"]  # type: ignore[index]
    assert node["labels"]["nvidia.com/gpu.present"] == "true"
    assert node["labels"]["sovdeploy.io/gpu-count"] == "8"
    assert node["labels"]["sovdeploy.io/sriov-physnet-sriov"] == "true"
    assert node["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]


def test_only_workers_get_node_settings_and_pools_name_each_pf() -> None:
    found = _vars()
    assert set(found["kubernetes_nodes"]) == {"k8s-wk01", "k8s-wk02"}  # type: ignore[arg-type]
    [pool] = found["kubernetes_sriov_pools"]  # type: ignore[misc]
    assert pool["physnet"] == "physnet-sriov"
    # A resource name the device plugin accepts: letters, digits and underscores.
    assert pool["resource"] == "sriov_physnet_sriov"
    # The add-ons are scheduled by the label the workers with the pool carry.
    assert found["kubernetes_nodes"]["k8s-wk01"]["labels"][pool["label"]] == "true"  # type: ignore[index]
    assert "ens1f0np0" in pool["pf_names"] and "ens1f1np1" in pool["pf_names"]


def test_a_worker_without_accelerators_gets_no_labels_or_taints() -> None:
    loaded = inv.load(EXAMPLE)
    plain = loaded.deployment.hosts_in("k8s_worker")[0].model_copy(
        update={"hardware": loaded.deployment.hosts_in("k8s_control")[0].hardware}
    )
    cat = catalogue.for_deployment(loaded.deployment)
    assert nodes.kubernetes_node(plain, cat) == {"labels": {}, "taints": []}


def test_bootstrap_tokens_have_kubeadms_format_and_differ() -> None:
    kind = secrets.kind_of("kubernetes_bootstrap_token")
    assert kind == "_bootstrap_token"
    tokens = {secrets.GENERATORS[kind]() for _ in range(20)}
    assert len(tokens) == 20
    assert all(re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", t) for t in tokens)
