"""What the kubernetes role derives from declared hardware: node labels, taints, SR-IOV pools."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from sovdeploy.catalogue import Catalogue
from sovdeploy.hardware.plan import alias_name
from sovdeploy.model import Deployment, Host

#: The label prefix of what sovdeploy derives from declared hardware, and of the SR-IOV
#: device plugin's resource names.
LABEL_PREFIX = "sovdeploy.io"


def _sriov_label(physnet: str) -> str:
    """The label of a worker with VFs on ``physnet``; the SR-IOV add-ons select it."""
    return f"{LABEL_PREFIX}/sriov-{physnet}"


def kubernetes_node(host: Host, cat: Catalogue) -> dict[str, Any]:
    """Labels and taints of a Kubernetes worker, from its declared GPUs and SR-IOV NICs.

    A GPU worker is tainted ``<vendor>.com/gpu=present:NoSchedule``, so that only pods that
    tolerate it (those asking for GPUs) land there. Labels stay outside the kubernetes.io
    and k8s.io domains, which a kubelet may not set on its own node.
    """
    labels: dict[str, str] = {}
    taints: list[dict[str, str]] = []
    for gpu in host.hardware.gpus:
        model = cat.gpu(gpu.pci_id)
        if model is None:
            continue
        labels[f"{LABEL_PREFIX}/gpu"] = alias_name(model)
        labels[f"{LABEL_PREFIX}/gpu-count"] = str(gpu.count)
        if model.vendor in {"nvidia", "amd"}:
            key = f"{model.vendor}.com/gpu"
            labels[f"{key}.present"] = "true"
            taint = {"key": key, "value": "present", "effect": "NoSchedule"}
            if taint not in taints:
                taints.append(taint)
    for physnet in sorted({n.physnet for n in host.hardware.nics if n.sriov_vfs and n.physnet}):
        labels[_sriov_label(physnet)] = "true"
    return {"labels": dict(sorted(labels.items())), "taints": taints}


def sriov_pools(hosts: Iterable[Host]) -> list[dict[str, Any]]:
    """One SR-IOV device plugin resource a physnet: the PFs that carry its VFs.

    The resource is ``sovdeploy.io/sriov_<physnet>``; a pod asks for it, and Multus
    attaches the VF through the physnet's NetworkAttachmentDefinition. ``label`` is the
    node label of the workers that have the pool, which the add-ons are scheduled by.
    """
    pfs: dict[str, set[str]] = {}
    for host in hosts:
        for nic in host.hardware.nics:
            if nic.sriov_vfs and nic.physnet:
                pfs.setdefault(nic.physnet, set()).add(nic.name)
    return [
        {
            "physnet": physnet,
            "label": _sriov_label(physnet),
            "resource": "sriov_" + re.sub(r"[^A-Za-z0-9_]", "_", physnet),
            "pf_names": sorted(names),
        }
        for physnet, names in sorted(pfs.items())
    ]


def kubernetes_vars(deployment: Deployment, cat: Catalogue) -> dict[str, Any]:
    """What the kubernetes role derives from hardware: node labels, taints, SR-IOV pools."""
    workers = deployment.hosts_in("k8s_worker")
    return {
        "kubernetes_nodes": {h.name: kubernetes_node(h, cat) for h in workers},
        "kubernetes_sriov_pools": sriov_pools(workers),
    }
