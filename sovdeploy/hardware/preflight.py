"""Hardware preflight: refuse a plan the hardware cannot carry, naming host, device and fix.

Rules that need the host's real hardware (IOMMU state and groups, VF limits of the
actual ports) run when ``sovdeploy discover`` has read the host; the others run on
the declaration alone. The rules that need no declaration at all (:func:`facts_problems`:
IOMMU off, a GPU sharing its IOMMU group, SR-IOV switched off) are the same ones that
``sovdeploy discover`` reports for a host read without an inventory.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sovdeploy import catalogue as catalogue_mod
from sovdeploy.catalogue import Catalogue
from sovdeploy.findings import Finding, locate
from sovdeploy.hardware.facts import ACCELERATOR_CLASSES, drift
from sovdeploy.hardware.plan import (
    Topology,
    cpu_sets,
    hugepage_bytes,
    nic_node,
    pmd_nodes,
    topology,
)
from sovdeploy.hostside.sysfs import format_cpulist, parse_cpulist
from sovdeploy.model import Deployment, GpuMode, Host

RULES: dict[str, str] = {
    "hardware.unknown_gpu": "every declared GPU model is in the accelerator catalogue",
    "hardware.gpu_mode": "a GPU's mode and profile are ones the catalogue says it supports",
    "hardware.cpu_missing": "a DPDK host declares its CPU layout (or has been discovered)",
    "hardware.iommu_off": "the IOMMU is on where devices are passed through or VFs made",
    "hardware.iommu_group": "a passed-through GPU shares its IOMMU group with no other device",
    "hardware.vf_count": "no port is asked for more VFs than it offers",
    "hardware.sriov_off": "a port whose model has SR-IOV offers VFs (it is on in the firmware)",
    "hardware.hugepages": "hugepages leave the host memory to run on",
    "hardware.cpu_overlap": "PMD, host-reserved and guest CPUs do not overlap",
    "hardware.cpu_unknown": "explicit CPU lists name CPUs the host has",
    "hardware.pmd_cores": "each NUMA node with a DPDK NIC has the PMD cores asked for",
    "hardware.dpdk_numa": "every DPDK NIC has a PMD core on its NUMA node",
    "hardware.gpu_missing": "a discovered host has the GPUs it declares",
    "hardware.sriov_physnet": "an SR-IOV network's physnet has VFs on some compute host",
}

#: PCI class of bridges: VFIO accepts them in a passed-through device's group.
_BRIDGE_CLASSES = frozenset({"0600", "0604"})


def _host_memory_left(total_gib: float) -> float:
    """Memory a host keeps out of hugepages: 10 %, and never less than 4 GiB."""
    return max(4.0, total_gib * 0.10)


class _Checker:
    def __init__(
        self,
        host: Host,
        catalogue: Catalogue,
        facts: Mapping[str, Any] | None,
        raw: Mapping[str, Any],
    ) -> None:
        self.host = host
        self.catalogue = catalogue
        self.facts = facts
        self.raw = raw.get("sovdeploy_hardware")

    def finding(
        self, code: str, path: Sequence[str | int], message: str, hint: str, value: Any = None
    ) -> Finding:
        file, line = locate(self.raw, path)
        subject = f"hosts.{self.host.name}.{'.'.join(str(p) for p in path)}".rstrip(".")
        return Finding(
            code=code,
            message=f"{self.host.name}: {message}",
            file=file,
            line=line,
            key=f"hosts.{self.host.name}.sovdeploy_hardware" + "".join(f".{p}" for p in path),
            value=None if value is None else str(value),
            hint=hint,
            subject=subject,
        )

    def run(self) -> Iterator[Finding]:
        hw = self.host.hardware
        if not hw.accelerated:
            return
        yield from self.gpus()
        yield from self.vfs()
        if hw.dpdk is not None and hw.cpu is None and self.facts is None:
            yield self.finding(
                "hardware.cpu_missing",
                ["dpdk"],
                "declares DPDK but not its CPU layout, so PMD and guest CPUs cannot be placed",
                "declare sovdeploy_hardware.cpu (vendor, numa_nodes, cores_per_node, "
                "threads_per_core), or run `sovdeploy discover` on the host",
            )
        topo = topology(self.host, self.facts)
        if topo is not None:
            yield from self.cpus(topo)
            yield from self.hugepages(topo)
        if self.facts is not None:
            yield from self.iommu()

    def gpus(self) -> Iterator[Finding]:
        for i, gpu in enumerate(self.host.hardware.gpus):
            model = self.catalogue.gpu(gpu.pci_id)
            if model is None:
                yield self.finding(
                    "hardware.unknown_gpu",
                    ["gpus", i, "pci_id"],
                    f"GPU {gpu.pci_id} is not in the accelerator catalogue",
                    "declare it under sovdeploy_catalogue.gpus in group_vars/all (one entry, "
                    "the fields of sovdeploy/data/accelerators.yml), or fix the ID; "
                    "`sovdeploy discover` prints the IDs a host has",
                    gpu.pci_id,
                )
                continue
            if gpu.mode not in model.modes:
                yield self.finding(
                    "hardware.gpu_mode",
                    ["gpus", i, "mode"],
                    f"{model.name} ({gpu.pci_id}) does not support {gpu.mode}",
                    f"use one of: {', '.join(model.modes)}",
                    gpu.mode,
                )
                continue
            profiles = model.profiles(gpu.mode)
            if gpu.mode is not GpuMode.PASSTHROUGH and gpu.profile not in profiles:
                yield self.finding(
                    "hardware.gpu_mode",
                    ["gpus", i, "profile"],
                    f"{model.name} ({gpu.pci_id}) in {gpu.mode} mode has no profile "
                    f"'{gpu.profile}'",
                    f"profiles for {gpu.mode}: {', '.join(profiles)}",
                    gpu.profile,
                )
            if self.facts is not None:
                found = [d for d in self.facts["pci"] if d["id"] == gpu.pci_id]
                if len(found) < gpu.count:
                    yield self.finding(
                        "hardware.gpu_missing",
                        ["gpus", i, "count"],
                        f"declares {gpu.count} x {model.name} but the host has {len(found)}",
                        "check the cards are seated and powered, or correct the count",
                        gpu.count,
                    )

    def _port(self, name: str) -> dict[str, Any] | None:
        if self.facts is None:
            return None
        return next((d for d in self.facts["pci"] if name in d["net"]), None)

    def vfs(self) -> Iterator[Finding]:
        for i, nic in enumerate(self.host.hardware.nics):
            if not nic.sriov_vfs:
                continue
            port = self._port(nic.name)
            model = self.catalogue.nic(port["id"] if port else nic.pci_id)
            limit: int | None = None
            source = ""
            if port is not None:
                limit = int(port.get("sriov_totalvfs", 0))
                source = "sriov_totalvfs"
            elif model is not None:
                limit, source = model.max_vfs, f"the catalogue's limit for {model.name}"
            if limit is not None and nic.sriov_vfs > limit:
                yield self.finding(
                    "hardware.vf_count",
                    ["nics", i, "sriov_vfs"],
                    f"{nic.name} is asked for {nic.sriov_vfs} VFs but offers {limit} ({source})",
                    f"ask for at most {limit}"
                    + (
                        ", or raise the VF count in the NIC's firmware"
                        if limit
                        else "; SR-IOV is off in its firmware: enable it there"
                        if model is not None and model.max_vfs
                        else "; this port has no SR-IOV: use another port"
                    ),
                    nic.sriov_vfs,
                )

    def hugepages(self, topo: Topology) -> Iterator[Finding]:
        dpdk = self.host.hardware.dpdk
        if dpdk is None or topo.memory_gib is None:
            return
        asked = hugepage_bytes(dpdk.hugepage_size, dpdk.hugepages) / (1 << 30)
        room = topo.memory_gib - _host_memory_left(topo.memory_gib)
        if asked > room:
            yield self.finding(
                "hardware.hugepages",
                ["dpdk", "hugepages"],
                f"{dpdk.hugepages} x {dpdk.hugepage_size} hugepages ({asked:g} GiB) leave "
                f"the host too little of its {topo.memory_gib:.0f} GiB",
                f"reserve at most {room:.0f} GiB of hugepages (the host keeps 10 %, at least "
                "4 GiB)",
                dpdk.hugepages,
            )

    def cpus(self, topo: Topology) -> Iterator[Finding]:
        hw = self.host.hardware
        # The plan places CPUs on DPDK and compute hosts only.
        if hw.dpdk is None and "compute" not in self.host.groups:
            return
        derived = cpu_sets(self.host, topo, self.facts)
        explicit = {
            ("cpu", "reserved_cpus"): hw.cpu.reserved_cpus if hw.cpu else None,
            ("cpu", "guest_cpus"): hw.cpu.guest_cpus if hw.cpu else None,
            ("dpdk", "pmd_cpus"): hw.dpdk.pmd_cpus if hw.dpdk else None,
        }
        for path, text in explicit.items():
            unknown = set(parse_cpulist(text)) - topo.cpus if text else set()
            if unknown:
                yield self.finding(
                    "hardware.cpu_unknown",
                    list(path),
                    f"{path[1]} names CPUs {format_cpulist(unknown)} the host does not have",
                    f"the host's CPUs are {format_cpulist(topo.cpus)} ({topo.source})",
                    text,
                )
        for other, name in ((derived.reserved, "host-reserved"), (derived.guest, "guest")):
            both = derived.pmd & other
            if both:
                yield self.finding(
                    "hardware.cpu_overlap",
                    ["dpdk"],
                    f"PMD CPUs {format_cpulist(both)} are also {name} CPUs",
                    "give PMD threads, the host and pinned guests separate cores; drop the "
                    "explicit lists to have them computed",
                    format_cpulist(both),
                )
        if derived.reserved & derived.guest:
            yield self.finding(
                "hardware.cpu_overlap",
                ["cpu"],
                f"CPUs {format_cpulist(derived.reserved & derived.guest)} are both host-reserved "
                "and guest CPUs",
                "give the host and pinned guests separate cores",
            )
        dpdk = hw.dpdk
        if dpdk is None:
            return
        pmd_node_set = {topo.node_of(x) for x in derived.pmd}
        if not dpdk.pmd_cpus:
            for node in pmd_nodes(self.host, self.facts):
                on_node = [c for c in topo.cores if c.node == node]
                placed = [c for c in on_node if set(c.cpus) & derived.pmd]
                if len(placed) < dpdk.pmd_cores:
                    free = [c for c in on_node if not set(c.cpus) & derived.reserved]
                    yield self.finding(
                        "hardware.pmd_cores",
                        ["dpdk", "pmd_cores"],
                        f"NUMA node {node} has {len(free)} cores left after the host-reserved "
                        f"ones, for {dpdk.pmd_cores} PMD cores",
                        "ask for fewer PMD cores or fewer host-reserved cores",
                        dpdk.pmd_cores,
                    )
        for i, nic in enumerate(dpdk.nics):
            nic_numa = nic_node(self.host, nic, self.facts)
            if nic_numa is not None and nic_numa not in pmd_node_set:
                yield self.finding(
                    "hardware.dpdk_numa",
                    ["dpdk", "nics", i],
                    f"DPDK NIC {nic} is on NUMA node {nic_numa}, which has no PMD core",
                    f"put a PMD core on node {nic_numa} (drop pmd_cpus to have them computed), "
                    "or move the NIC to a slot on a node with PMD cores",
                    nic,
                )

    def iommu(self) -> Iterator[Finding]:
        assert self.facts is not None
        hw = self.host.hardware
        passthrough = [
            (i, g.pci_id) for i, g in enumerate(hw.gpus) if g.mode is GpuMode.PASSTHROUGH
        ]
        # Every accelerated host needs the IOMMU; the VF counts are vfs()'s to check.
        for problem in facts_problems(
            self.facts,
            self.catalogue,
            passthrough={pci_id for _, pci_id in passthrough},
            vf_ports=set(),
            needs_iommu=True,
        ):
            path: list[str | int] = []
            if problem.pci_id is not None:
                path = ["gpus", next(i for i, pci_id in passthrough if pci_id == problem.pci_id)]
            yield self.finding(problem.code, path, problem.message, problem.hint, problem.value)


@dataclass(frozen=True)
class Problem:
    """What a rule over sysfs facts alone found; the caller says where it is declared."""

    code: str
    message: str
    hint: str
    #: The PCI ID of the GPU it concerns, if it concerns one.
    pci_id: str | None = None
    value: str | None = None


def facts_problems(
    facts: Mapping[str, Any],
    catalogue: Catalogue,
    passthrough: set[str] | None = None,
    vf_ports: set[str] | None = None,
    needs_iommu: bool | None = None,
) -> Iterator[Problem]:
    """The rules that need only a host's sysfs facts.

    ``passthrough`` are the PCI IDs of the GPUs to pass through and ``vf_ports`` the
    ports to make VFs on, as the inventory declares them; ``None`` (no inventory) takes
    every accelerator the host has, and every port whose model has SR-IOV.
    ``needs_iommu``: whether an IOMMU that is off is a problem; by default, when there
    is a GPU to pass through or a port to make VFs on.
    """
    devices = {d["address"]: d for d in facts["pci"]}
    gpus = [d for d in facts["pci"] if d["class"] in ACCELERATOR_CLASSES]
    passed = {d["id"] for d in gpus} if passthrough is None else passthrough
    ports = {name: d for d in facts["pci"] for name in d["net"]}
    if vf_ports is None:
        vf_ports = {
            name
            for name, d in ports.items()
            if int(d.get("sriov_totalvfs", 0)) or _has_vfs(catalogue, d["id"])
        }
    if needs_iommu is None:
        needs_iommu = bool(passed & {d["id"] for d in gpus} or vf_ports & set(ports))
    iommu = facts["iommu"]
    if not iommu["enabled"]:
        if needs_iommu:
            yield Problem(
                "hardware.iommu_off",
                "the IOMMU is off (no IOMMU groups in sysfs), so no device can be passed "
                "through and no VF assigned",
                "enable VT-d (Intel) or AMD-Vi/IOMMU in the firmware; sovdeploy sets "
                "intel_iommu=on/amd_iommu=on on the kernel command line",
            )
        return
    for dev in (d for d in gpus if d["id"] in passed):
        group = dev["iommu_group"]
        members = iommu["groups"].get(str(group), [])
        for other in (
            devices[a]
            for a in members
            if a != dev["address"]
            and a in devices
            and devices[a]["class"] not in _BRIDGE_CLASSES
            and devices[a]["id"] not in passed
        ):
            yield Problem(
                "hardware.iommu_group",
                f"GPU {dev['address']} ({dev['id']}) shares IOMMU group {group} with "
                f"{other['address']} ({other['id']}, driver "
                f"{other['driver'] or 'none'}), which is not passed through",
                "move the GPU to a slot behind its own root port, enable ACS in the "
                "firmware, or pass the other device through as well",
                pci_id=dev["id"],
                value=other["address"],
            )
    for name in sorted(vf_ports & set(ports)):
        port = ports[name]
        if not int(port.get("sriov_totalvfs", 0)) and _has_vfs(catalogue, port["id"]):
            model = catalogue.nic(port["id"])
            yield Problem(
                "hardware.sriov_off",
                f"port {name} ({port['id']}, {model.name if model else 'unknown model'}) "
                "offers no VFs although its model has SR-IOV",
                "enable SR-IOV (and the VF count) in the NIC's firmware or the server's "
                "BIOS, then run `sovdeploy discover` again",
                value=name,
            )


def _has_vfs(catalogue: Catalogue, pci_id: str) -> bool:
    model = catalogue.nic(pci_id)
    return model is not None and model.max_vfs > 0


def host_findings(where: str, facts: Mapping[str, Any], catalogue: Catalogue) -> list[Finding]:
    """:func:`facts_problems` for a host read without an inventory, as findings."""
    return [
        Finding(code=p.code, message=p.message, file=where, hint=p.hint, value=p.value)
        for p in facts_problems(facts, catalogue)
    ]


def findings(
    deployment: Deployment,
    facts: Mapping[str, Mapping[str, Any]],
    host_raw: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Finding]:
    """Hardware preflight, with the discovered ``facts`` where there are some, and their drift."""
    cat = catalogue_mod.for_deployment(deployment)
    found = check(deployment, cat, facts, host_raw)
    for host in deployment.hosts:
        if host.name in facts:
            found.extend(drift(host, facts[host.name], cat))
    return found


def check(
    deployment: Deployment,
    catalogue: Catalogue,
    facts: Mapping[str, Mapping[str, Any]],
    host_raw: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Finding]:
    """Preflight every host; ``facts`` holds the discovered hosts' sysfs facts by name."""
    out: list[Finding] = []
    for host in deployment.hosts:
        raw = (host_raw or {}).get(host.name, {})
        out.extend(_Checker(host, catalogue, facts.get(host.name), raw).run())
    out.extend(_sriov_networks(deployment))
    return out


def _sriov_networks(deployment: Deployment) -> Iterator[Finding]:
    physnets = {
        nic.physnet
        for host in deployment.hosts_in("compute")
        for nic in host.hardware.nics
        if nic.sriov_vfs and nic.physnet
    }
    for name, network in deployment.settings.sriov_networks.items():
        if network.physnet not in physnets:
            yield Finding(
                code="hardware.sriov_physnet",
                message=(
                    f"SR-IOV network {name} is on physnet {network.physnet}, where no compute "
                    "host has VFs"
                ),
                key=f"sovdeploy_sriov_networks.{name}.physnet",
                value=network.physnet,
                hint=(
                    "name a physnet of a compute host's NIC with sriov_vfs ("
                    + (", ".join(sorted(physnets)) or "none is declared")
                    + ")"
                ),
            )
