"""Hardware discovery: what a host's sysfs says, as a host_vars block and as drift.

``sovdeploy.hostside.sysfs`` reads the facts (here, from a recorded tree, or on a host through
Ansible); this module turns them into what an operator reads: the accelerators and
ports found, a suggested ``sovdeploy_hardware`` block, and the differences from what
the inventory declares.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from sovdeploy.catalogue import Catalogue
from sovdeploy.errors import StateFileError, UsageError
from sovdeploy.findings import Finding, Severity
from sovdeploy.fsutil import atomic_write, read_json
from sovdeploy.hardware.plan import Topology
from sovdeploy.hostside.sysfs import FORMAT
from sovdeploy.hostside.sysfs import read as read_sysfs
from sovdeploy.model import Deployment, Host
from sovdeploy.state import StateDir

#: PCI classes of accelerators: VGA, 3D controller, processing accelerator.
ACCELERATOR_CLASSES = frozenset({"0300", "0302", "1200"})
_ETHERNET = "0200"


def load_facts(path: Path) -> dict[str, Any]:
    """Facts saved by an earlier discovery.

    Raises:
        UsageError: when the file is not sysfs facts of this format.

    """
    remedy = "run `sovdeploy discover` on the host again"
    facts: dict[str, Any] = read_json(path, remedy)
    if facts.get("format") != FORMAT:
        raise StateFileError(path, f"it holds no sysfs facts of format {FORMAT}", remedy)
    return facts


def saved(
    state: StateDir, deployment: Deployment
) -> tuple[dict[str, dict[str, Any]], list[Finding]]:
    """The facts ``sovdeploy discover`` saved for the deployment's hosts, by host.

    A saved file that cannot be read is an error naming it: the preflight would
    otherwise pass the host on its declaration alone. `sovdeploy discover` does not
    read them, so it can always write them again.
    """
    facts: dict[str, dict[str, Any]] = {}
    problems: list[Finding] = []
    for host in deployment.hosts:
        file = state.discovery(host.name)
        if not file.exists():
            continue
        try:
            facts[host.name] = load_facts(file)
        except UsageError as exc:
            problems.append(
                Finding(
                    code="discover.facts",
                    severity=Severity.ERROR,
                    message=str(exc),
                    file=str(file),
                    hint=(
                        f"run `sovdeploy discover -i {state.root.parent} --host {host.name}` again"
                    ),
                )
            )
    return facts, problems


def read(root: Path) -> dict[str, Any]:
    """The facts of a sysfs tree on this machine (``/sys``, or a recorded one).

    Raises:
        UsageError: when ``root`` is not a sysfs tree.

    """
    try:
        return read_sysfs(root)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from exc


def save(state: StateDir, host: str, facts: Mapping[str, Any], catalogue: Catalogue) -> Path:
    """Keep a host's facts for validate's preflight; write its suggested host_vars block.

    Returns the suggestion's path: ``discovery/<host>.host_vars.yml`` in the state dir,
    to copy into the inventory's host_vars by hand (sovdeploy never edits an inventory).
    """
    state.ensure()
    path = state.discovery(host)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(facts, sort_keys=True, indent=1) + "\n")
    suggestion = path.with_name(f"{host}.host_vars.yml")
    atomic_write(suggestion, host_vars_text(host, facts, catalogue))
    return suggestion


def host_vars_text(host: str, facts: Mapping[str, Any], catalogue: Catalogue) -> str:
    """The suggested block as a host_vars file, with what needs a human said in comments."""
    block = {"sovdeploy_hardware": suggest(facts, catalogue)}
    head = (
        f"---\n# Suggested by `sovdeploy discover` from {host}'s sysfs. Review before copying\n"
        "# into host_vars: GPUs are listed in passthrough mode, ports without VFs; set\n"
        "# mode/profile, sriov_vfs and physnet, and a dpdk block, as the host is to be used.\n"
    )
    return head + yaml.safe_dump(block, sort_keys=False, default_flow_style=False)


def gpus(facts: Mapping[str, Any], catalogue: Catalogue) -> list[dict[str, Any]]:
    """Accelerator devices: catalogued ones by model, and any other GPU-class device."""
    out = []
    for dev in facts["pci"]:
        model = catalogue.gpu(dev["id"])
        if model is None and dev["class"] not in ACCELERATOR_CLASSES:
            continue
        out.append(
            {
                "address": dev["address"],
                "id": dev["id"],
                "name": model.name if model else "not in the catalogue",
                "numa_node": dev["numa_node"],
                "iommu_group": dev["iommu_group"],
                "driver": dev["driver"],
                "catalogued": model is not None,
            }
        )
    return out


def ports(facts: Mapping[str, Any], catalogue: Catalogue) -> list[dict[str, Any]]:
    """Ethernet physical functions with their interface names and SR-IOV capacity."""
    out = []
    for dev in facts["pci"]:
        if dev["class"] != _ETHERNET or "physfn" in dev:
            continue
        model = catalogue.nic(dev["id"])
        for name in dev["net"] or [None]:
            out.append(
                {
                    "name": name,
                    "address": dev["address"],
                    "id": dev["id"],
                    "model": model.name if model else None,
                    "numa_node": dev["numa_node"],
                    "sriov_totalvfs": dev.get("sriov_totalvfs", 0),
                    "driver": dev["driver"],
                }
            )
    return out


def cpu_layout(facts: Mapping[str, Any]) -> dict[str, Any]:
    topo = Topology.discovered(facts)
    per_node = Counter(c.node for c in topo.cores)
    layout: dict[str, Any] = {}
    kind = facts.get("cpu_vendor") or facts["iommu"].get("kind")
    if kind:
        layout["vendor"] = kind
    layout |= {
        "numa_nodes": len(topo.nodes),
        "cores_per_node": min(per_node.values()) if per_node else 0,
        "threads_per_core": max((len(c.cpus) for c in topo.cores), default=1),
    }
    return layout


def suggest(facts: Mapping[str, Any], catalogue: Catalogue) -> dict[str, Any]:
    """A ``sovdeploy_hardware`` block for host_vars: what was found, in passthrough mode."""
    block: dict[str, Any] = {"cpu": cpu_layout(facts)}
    topo = Topology.discovered(facts)
    if topo.memory_gib:
        block["memory_gib"] = round(topo.memory_gib)
    counts = Counter(g["id"] for g in gpus(facts, catalogue) if g["catalogued"])
    if counts:
        block["gpus"] = [
            {"pci_id": pci_id, "count": n, "mode": "passthrough"}
            for pci_id, n in sorted(counts.items())
        ]
    nics = []
    for port in ports(facts, catalogue):
        if port["name"] is None or not (port["sriov_totalvfs"] or port["model"]):
            continue
        nic: dict[str, Any] = {"name": port["name"], "pci_id": port["id"]}
        if port["numa_node"] is not None:
            nic["numa_node"] = port["numa_node"]
        nics.append(nic)
    if nics:
        block["nics"] = nics
    return block


def _drift(host: str, key: str, message: str, value: Any = None) -> Finding:
    return Finding(
        code="discover.drift",
        severity=Severity.WARNING,
        message=f"{host}: {message}",
        key=f"hosts.{host}.sovdeploy_hardware.{key}",
        value=None if value is None else str(value),
        hint="correct host_vars (`sovdeploy discover` prints a suggested block), or the host",
        subject=f"hosts.{host}",
    )


def drift(host: Host, facts: Mapping[str, Any], catalogue: Catalogue) -> Iterator[Finding]:
    """Where the inventory's declaration and the host's sysfs disagree."""
    hw = host.hardware
    found = Counter(g["id"] for g in gpus(facts, catalogue))
    for i, gpu in enumerate(hw.gpus):
        if found[gpu.pci_id] != gpu.count:
            yield _drift(
                host.name,
                f"gpus.{i}.count",
                f"declares {gpu.count} GPU(s) {gpu.pci_id}, sysfs has {found[gpu.pci_id]}",
                gpu.count,
            )
    declared_ids = {g.pci_id for g in hw.gpus}
    for pci_id, n in sorted(found.items()):
        if pci_id not in declared_ids:
            yield _drift(host.name, "gpus", f"has {n} GPU(s) {pci_id} the inventory omits", pci_id)
    by_name = {p["name"]: p for p in ports(facts, catalogue) if p["name"]}
    for i, nic in enumerate(hw.nics):
        port = by_name.get(nic.name)
        if port is None:
            yield _drift(host.name, f"nics.{i}.name", f"has no port {nic.name}", nic.name)
            continue
        if nic.pci_id and nic.pci_id != port["id"]:
            yield _drift(host.name, f"nics.{i}.pci_id", f"{nic.name} is {port['id']}", nic.pci_id)
        if nic.numa_node is not None and port["numa_node"] not in {None, nic.numa_node}:
            yield _drift(
                host.name,
                f"nics.{i}.numa_node",
                f"{nic.name} sits on NUMA node {port['numa_node']}",
                nic.numa_node,
            )
    if hw.cpu is not None:
        layout = cpu_layout(facts)
        for key in ("vendor", "numa_nodes", "cores_per_node", "threads_per_core"):
            declared = getattr(hw.cpu, key)
            if key in layout and layout[key] != declared:
                yield _drift(
                    host.name, f"cpu.{key}", f"cpu.{key} is {layout[key]} on the host", declared
                )
    memory = Topology.discovered(facts).memory_gib
    if hw.memory_gib and memory and abs(memory - hw.memory_gib) > 0.05 * hw.memory_gib:
        yield _drift(host.name, "memory_gib", f"has {memory:.0f} GiB", hw.memory_gib)
