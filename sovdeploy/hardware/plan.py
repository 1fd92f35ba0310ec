"""What an accelerated host needs, derived from its declared hardware and the catalogue.

Nobody types a vfio ID, a hex CPU mask or a nova PCI setting: this module computes
them from ``sovdeploy_hardware`` (and from discovered sysfs facts, when there are
some), ``sovdeploy validate`` prints them, and the host roles apply them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sovdeploy import catalogue as catalogue_mod
from sovdeploy.catalogue import Catalogue, GpuModel
from sovdeploy.hostside.sysfs import format_cpulist, parse_cpulist
from sovdeploy.model import Cpu, Deployment, FlavorSize, GpuMode, Host
from sovdeploy.openstack.flavors import standard_flavors

#: Loaded early (initramfs) on hosts that pass devices through. vfio_virqfd is part of vfio
#: since Linux 6.2, so Debian 13's kernel has no module of that name.
VFIO_MODULES: tuple[str, ...] = ("vfio", "vfio_iommu_type1", "vfio_pci")

_HUGEPAGE_BYTES = {"2M": 2 << 20, "1G": 1 << 30}


@dataclass(frozen=True)
class Core:
    """One physical core: its NUMA node and hardware threads."""

    node: int
    cpus: tuple[int, ...]


@dataclass(frozen=True)
class Topology:
    """The cores and memory of a host, from discovery or from its declaration."""

    cores: tuple[Core, ...]
    memory_gib: float | None
    source: str

    @property
    def nodes(self) -> tuple[int, ...]:
        return tuple(sorted({c.node for c in self.cores}))

    @property
    def cpus(self) -> frozenset[int]:
        return frozenset(cpu for core in self.cores for cpu in core.cpus)

    def node_of(self, cpu: int) -> int | None:
        return next((c.node for c in self.cores if cpu in c.cpus), None)

    @classmethod
    def declared(cls, cpu: Cpu, memory_gib: int | None) -> Topology:
        """Linux's usual numbering: every core's first thread node by node, then the siblings."""
        per_thread = cpu.numa_nodes * cpu.cores_per_node
        cores = tuple(
            Core(
                node,
                tuple(
                    t * per_thread + node * cpu.cores_per_node + c
                    for t in range(cpu.threads_per_core)
                ),
            )
            for node in range(cpu.numa_nodes)
            for c in range(cpu.cores_per_node)
        )
        return cls(cores, memory_gib, "declared")

    @classmethod
    def discovered(cls, facts: Mapping[str, Any]) -> Topology:
        by_core: dict[tuple[int, int], list[int]] = {}
        nodes: dict[tuple[int, int], int] = {}
        for cpu in facts["cpus"]:
            key = (cpu["package"], cpu["core"])
            by_core.setdefault(key, []).append(cpu["cpu"])
            nodes[key] = cpu["node"]
        cores = sorted(
            (Core(nodes[k], tuple(sorted(v))) for k, v in by_core.items()),
            key=lambda c: (c.node, c.cpus[0]),
        )
        kib = [n["memory_kib"] for n in facts["nodes"].values() if n.get("memory_kib")]
        return cls(tuple(cores), sum(kib) / (1 << 20) if kib else None, "discovered")


@dataclass(frozen=True)
class CpuSets:
    """Who runs where. Lists are Linux CPU lists; masks are what OVS wants."""

    reserved: frozenset[int]
    pmd: frozenset[int]
    lcore: frozenset[int]
    guest: frozenset[int]
    socket_mem: tuple[int, ...]

    @property
    def isolated(self) -> frozenset[int]:
        return self.pmd | self.guest

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "reserved": format_cpulist(self.reserved),
            "guest": format_cpulist(self.guest),
        }
        if self.pmd:
            out |= {"pmd": format_cpulist(self.pmd), "dpdk_lcore": format_cpulist(self.lcore)}
        return out


def mask(cpus: Iterable[int]) -> str:
    """A CPU set as the hex mask OVS reads (``pmd-cpu-mask``)."""
    value = 0
    for cpu in cpus:
        value |= 1 << cpu
    return f"0x{value:x}"


@dataclass(frozen=True)
class Vfs:
    nic: str
    count: int
    physnet: str | None
    trust: bool
    spoofchk: bool


@dataclass
class HostPlan:
    """Everything derived for one accelerated host."""

    host: str
    topology: Topology | None
    kernel_args: list[str] = field(default_factory=list)
    vfio_ids: list[str] = field(default_factory=list)
    blacklist: list[str] = field(default_factory=list)
    early_modules: list[str] = field(default_factory=list)
    hugepages: dict[str, Any] | None = None
    vfs: list[Vfs] = field(default_factory=list)
    cpus: CpuSets | None = None
    nova: dict[str, Any] = field(default_factory=dict)
    neutron_sriov: dict[str, Any] = field(default_factory=dict)
    ovs_dpdk: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def cmdline(self) -> str:
        return " ".join(self.kernel_args)

    def as_vars(self) -> dict[str, Any]:
        """The plan as the variables the host roles read (``_accel_*``), JSON-able."""
        return {
            "kernel_args": list(self.kernel_args),
            "vfio_ids": list(self.vfio_ids),
            "blacklist": list(self.blacklist),
            "early_modules": list(self.early_modules),
            "hugepages": self.hugepages,
            "vfs": [vars(v) for v in self.vfs],
            "cpus": self.cpus.as_dict() if self.cpus else None,
            "nova": self.nova,
            "neutron_sriov": self.neutron_sriov,
            "ovs_dpdk": self.ovs_dpdk,
        }


def alias_name(model: GpuModel) -> str:
    """The nova PCI alias (and flavor suffix) of a GPU model: ``h100-sxm5-80gb``."""
    words = model.name.lower().split()
    if words and words[0] in {"nvidia", "amd"}:
        words = words[1:]
    if words and words[0] == "instinct":
        words = words[1:]
    return re.sub(r"[^a-z0-9]+", "-", "-".join(words)).strip("-")


def topology(host: Host, facts: Mapping[str, Any] | None) -> Topology | None:
    if facts is not None:
        return Topology.discovered(facts)
    if host.hardware.cpu is not None:
        return Topology.declared(host.hardware.cpu, host.hardware.memory_gib)
    return None


def iommu_vendor(host: Host, facts: Mapping[str, Any] | None) -> str | None:
    if facts is not None and (facts.get("cpu_vendor") or facts["iommu"].get("kind")):
        return str(facts.get("cpu_vendor") or facts["iommu"]["kind"])
    return host.hardware.cpu.vendor if host.hardware.cpu else None


def nic_node(host: Host, name: str, facts: Mapping[str, Any] | None) -> int | None:
    """The NUMA node of a NIC: discovered, else declared."""
    if facts is not None:
        for dev in facts["pci"]:
            if name in dev["net"] and dev["numa_node"] is not None:
                return int(dev["numa_node"])
    nic = next((n for n in host.hardware.nics if n.name == name), None)
    return nic.numa_node if nic else None


def _first_cores(cores: Iterable[Core], count: int, taken: frozenset[int]) -> list[Core]:
    free = [c for c in cores if not taken & set(c.cpus)]
    return free[:count]


def cpu_sets(host: Host, topo: Topology, facts: Mapping[str, Any] | None) -> CpuSets:
    """Host, PMD, lcore and guest CPUs from the NUMA topology.

    Each NUMA node keeps its first ``reserved_cores`` cores for the host; each node with
    a DPDK NIC gives its next ``pmd_cores`` cores to PMD threads; pinned guests get the
    rest, on compute hosts. Explicit lists in the inventory replace the computed ones
    (the preflight checks that they do not overlap).
    """
    hw = host.hardware
    cpu = hw.cpu
    per_node = {n: [c for c in topo.cores if c.node == n] for n in topo.nodes}
    if cpu is not None and cpu.reserved_cpus:
        reserved = frozenset(parse_cpulist(cpu.reserved_cpus))
    else:
        count = cpu.reserved_cores if cpu else 1
        reserved = frozenset(x for n in topo.nodes for c in per_node[n][:count] for x in c.cpus)
    pmd: frozenset[int] = frozenset()
    lcore: frozenset[int] = frozenset()
    socket_mem: tuple[int, ...] = ()
    if hw.dpdk is not None:
        if hw.dpdk.pmd_cpus:
            pmd = frozenset(parse_cpulist(hw.dpdk.pmd_cpus))
        else:
            for node in pmd_nodes(host, facts):
                picked = _first_cores(per_node.get(node, []), hw.dpdk.pmd_cores, reserved)
                pmd |= {x for c in picked for x in c.cpus}
        first = min(reserved) if reserved else 0
        lcore = frozenset({first})
        pmd_node_set = {topo.node_of(x) for x in pmd}
        socket_mem = tuple(hw.dpdk.socket_mem_mb if n in pmd_node_set else 0 for n in topo.nodes)
    if "compute" not in host.groups:
        guest: frozenset[int] = frozenset()
    elif cpu is not None and cpu.guest_cpus:
        guest = frozenset(parse_cpulist(cpu.guest_cpus))
    else:
        guest = topo.cpus - reserved - pmd
    return CpuSets(reserved, pmd, lcore, guest, socket_mem)


def pmd_nodes(host: Host, facts: Mapping[str, Any] | None) -> list[int]:
    """The NUMA nodes of the DPDK NICs (node 0 for a NIC whose node is unknown)."""
    dpdk = host.hardware.dpdk
    if dpdk is None:
        return []
    return sorted({nic_node(host, n, facts) or 0 for n in dpdk.nics} or {0})


def plan(host: Host, catalogue: Catalogue, facts: Mapping[str, Any] | None = None) -> HostPlan:
    """Derive what ``host`` needs; a host with no accelerated hardware gets an empty plan."""
    hw = host.hardware
    topo = topology(host, facts)
    out = HostPlan(host=host.name, topology=topo)
    if not hw.accelerated:
        return out
    # GPUs serve guests on compute hosts; on Kubernetes workers the host driver keeps them
    # for pods, so nothing there is bound to vfio-pci.
    vm_gpus = hw.gpus if "compute" in host.groups else ()
    if hw.gpus and not vm_gpus:
        out.notes.append("GPUs stay with the host driver, for Kubernetes pods")
    passthrough = [(g, catalogue.gpu(g.pci_id)) for g in vm_gpus if g.mode is GpuMode.PASSTHROUGH]
    mediated = [(g, catalogue.gpu(g.pci_id)) for g in vm_gpus if g.mode is not GpuMode.PASSTHROUGH]
    vendor = iommu_vendor(host, facts)
    needs_iommu = bool(vm_gpus or any(n.sriov_vfs for n in hw.nics) or hw.dpdk)
    if needs_iommu:
        out.kernel_args += [f"{vendor or 'intel'}_iommu=on", "iommu=pt"]
        if vendor is None:
            out.notes.append("CPU vendor unknown: declare cpu.vendor (amd hosts need amd_iommu)")
    _gpu_settings(out, passthrough, mediated)
    _cpu_settings(out, host, topo, facts)
    out.vfs = [
        Vfs(n.name, n.sriov_vfs, n.physnet, n.trust, n.spoofchk) for n in hw.nics if n.sriov_vfs
    ]
    if "compute" in host.groups:
        out.nova = _nova(out, passthrough, mediated)
    if out.vfs and "compute" in host.groups:
        mappings = sorted({f"{v.physnet}:{v.nic}" for v in out.vfs if v.physnet})
        out.neutron_sriov = {
            "mechanism_driver": "sriovnicswitch",
            "physical_device_mappings": ",".join(mappings),
        }
    if hw.dpdk is not None and out.cpus is not None:
        out.ovs_dpdk = {
            "dpdk-init": "true",
            "dpdk-socket-mem": ",".join(str(m) for m in out.cpus.socket_mem),
            "pmd-cpu-mask": mask(out.cpus.pmd),
            "dpdk-lcore-mask": mask(out.cpus.lcore),
            "ports": {nic: _dpdk_driver(host, nic, catalogue) for nic in hw.dpdk.nics},
        }
    return out


def _gpu_settings(
    out: HostPlan,
    passthrough: list[tuple[Any, GpuModel | None]],
    mediated: list[tuple[Any, GpuModel | None]],
) -> None:
    """vfio-pci IDs, early modules and the drivers kept off the GPUs."""
    if passthrough:
        out.vfio_ids = sorted({g.pci_id for g, _ in passthrough})
        out.kernel_args.append("vfio-pci.ids=" + ",".join(out.vfio_ids))
        out.early_modules = list(VFIO_MODULES)
        drivers: set[str] = set()
        for _, model in passthrough:
            drivers |= set(model.host_drivers if model else ())
        out.blacklist = sorted(drivers)
    if mediated:
        # The vGPU host driver must own the device; only the open-source nouveau is kept off.
        out.blacklist = sorted(
            {d for d in out.blacklist if not d.startswith("nvidia")} | {"nouveau"}
        )


def _cpu_settings(
    out: HostPlan, host: Host, topo: Topology | None, facts: Mapping[str, Any] | None
) -> None:
    """Hugepages, CPU sets and the kernel arguments that isolate them."""
    hw = host.hardware
    if hw.dpdk is not None:
        size = hw.dpdk.hugepage_size
        out.hugepages = {"size": size, "count": hw.dpdk.hugepages}
        out.kernel_args += [
            f"default_hugepagesz={size}",
            f"hugepagesz={size}",
            f"hugepages={hw.dpdk.hugepages}",
        ]
    if topo is not None and (hw.dpdk is not None or "compute" in host.groups):
        out.cpus = cpu_sets(host, topo, facts)
        isolated = format_cpulist(out.cpus.isolated)
        if isolated:
            out.kernel_args += [
                f"isolcpus={isolated}",
                f"nohz_full={isolated}",
                f"rcu_nocbs={isolated}",
            ]
    elif hw.dpdk is not None:
        out.notes.append("no CPU layout: declare sovdeploy_hardware.cpu or run sovdeploy discover")


def _dpdk_driver(host: Host, nic: str, catalogue: Catalogue) -> str:
    """What DPDK needs the port bound to; vfio-pci unless the catalogue says otherwise."""
    pci_id = next((n.pci_id for n in host.hardware.nics if n.name == nic), None)
    model = catalogue.nic(pci_id)
    return model.dpdk_driver if model else "vfio-pci"


def _nova(
    out: HostPlan,
    passthrough: list[tuple[Any, GpuModel | None]],
    mediated: list[tuple[Any, GpuModel | None]],
) -> dict[str, Any]:
    spec: list[dict[str, str]] = []
    alias: list[dict[str, str]] = []
    for gpu, model in passthrough:
        vendor_id, product_id = gpu.pci_id.split(":")
        spec.append({"vendor_id": vendor_id, "product_id": product_id})
        if model is not None:
            alias.append(
                {
                    "name": alias_name(model),
                    "vendor_id": vendor_id,
                    "product_id": product_id,
                    "device_type": "type-PCI",
                    "numa_policy": "preferred",
                }
            )
    for vfs in out.vfs:
        if vfs.physnet:
            entry = {"devname": vfs.nic, "physical_network": vfs.physnet}
            if vfs.trust:
                entry["trusted"] = "true"
            spec.append(entry)
    nova: dict[str, Any] = {}
    if spec:
        # Placement tracks whole devices requested through an alias; nova leaves the VFs
        # Neutron ports ask for (those with a physical_network) to its PCI tracker.
        nova["pci"] = {"device_spec": spec, "alias": alias, "report_in_placement": bool(alias)}
        nova["filters"] = ["PciPassthroughFilter"]
    types = []
    for gpu, model in mediated:
        if model is None or not gpu.profile:
            continue
        types.append(model.mig_vgpu_type(gpu.profile) if gpu.mode is GpuMode.MIG else gpu.profile)
    if types:
        names = sorted(set(types))
        # A resource class per type, so that a flavor lands on a GPU of its type.
        nova["devices"] = {
            "enabled_mdev_types": names,
            "mdev_classes": {t: vgpu_resource_class(t) for t in names},
        }
        out.notes.append(
            "vGPU types are resolved to the host's mdev type IDs by name at deploy time"
        )
    if out.cpus is not None and out.cpus.guest:
        nova["compute"] = {
            "cpu_dedicated_set": format_cpulist(out.cpus.guest),
            "cpu_shared_set": format_cpulist(out.cpus.reserved),
        }
        nova.setdefault("filters", []).append("NUMATopologyFilter")
    return nova


#: The hugepage size a DPDK flavor asks for (``hw:mem_page_size`` takes KiB units).
_PAGE_SIZE = {"2M": "2MB", "1G": "1GB"}


def flavors(deployment: Deployment, catalogue: Catalogue) -> list[dict[str, Any]]:
    """The flavors guests ask for accelerators through, from every compute host's hardware.

    A passthrough model gets ``gpu.<alias>.x<k>`` for k = 1, 2, 4, ... up to the most any
    host has; a vGPU or MIG-backed vGPU type gets ``vgpu.<type>``, asking for one unit of
    the type's own resource class; hosts with OVS-DPDK get
    ``dpdk.<size>``: pinned, hugepage-backed guests, as vhost-user ports need.
    """
    size = deployment.settings.flavor_size
    most: dict[str, tuple[int, GpuModel]] = {}
    vgpu_types: set[str] = set()
    pages: set[str] = set()
    for host in deployment.hosts_in("compute"):
        for gpu in host.hardware.gpus:
            model = catalogue.gpu(gpu.pci_id)
            if model is None:
                continue
            if gpu.mode is GpuMode.PASSTHROUGH:
                name = alias_name(model)
                most[name] = (max(gpu.count, most.get(name, (0, model))[0]), model)
            elif gpu.profile:
                mig = gpu.mode is GpuMode.MIG
                vgpu_types.add(model.mig_vgpu_type(gpu.profile) if mig else gpu.profile)
        if host.hardware.dpdk is not None:
            pages.add(host.hardware.dpdk.hugepage_size)
    out: list[dict[str, Any]] = []
    for alias, (count, model) in sorted(most.items()):
        k = 1
        while k <= count:
            specs = {"pci_passthrough:alias": f"{alias}:{k}"}
            out.append(_flavor(f"gpu.{alias}.x{k}", size, k, specs, f"{k} x {model.name}"))
            k *= 2
    for vgpu in sorted(vgpu_types):
        specs = {f"resources:{vgpu_resource_class(vgpu)}": "1"}
        out.append(_flavor(f"vgpu.{vgpu}", size, 1, specs, f"vGPU {vgpu}"))
    for page in sorted(pages):
        specs = {"hw:cpu_policy": "dedicated", "hw:mem_page_size": _PAGE_SIZE[page]}
        name = f"dpdk.{page.lower()}"
        out.append(_flavor(name, size, 1, specs, f"pinned, {page} hugepages (vhost-user)"))
    return out


def _flavor(
    name: str, size: FlavorSize, k: int, specs: dict[str, str], description: str
) -> dict[str, Any]:
    return {
        "name": name,
        "vcpus": size.vcpus * k,
        "ram": size.ram_mb * k,
        "disk": size.disk_gb,
        "extra_specs": specs,
        "description": description,
    }


def vgpu_resource_class(vgpu_type: str) -> str:
    """Placement's resource class of a vGPU type: ``L40S-12C`` → ``CUSTOM_VGPU_L40S_12C``."""
    return "CUSTOM_VGPU_" + re.sub(r"[^A-Z0-9]+", "_", vgpu_type.upper()).strip("_")


def hugepage_bytes(size: str, count: int) -> int:
    return _HUGEPAGE_BYTES[size] * count


def host_plans(
    deployment: Deployment,
    facts: Mapping[str, Mapping[str, Any]],
    cat: Catalogue | None = None,
) -> list[HostPlan]:
    """Every accelerated host's plan, with its discovered ``facts`` (by host) where saved.

    ``cat`` is the deployment's catalogue, where the caller has it already.
    """
    cat = cat or catalogue_mod.for_deployment(deployment)
    return [plan(h, cat, facts.get(h.name)) for h in deployment.hosts if h.hardware.accelerated]


def plans(
    deployment: Deployment,
    facts: Mapping[str, Mapping[str, Any]],
    cat: Catalogue | None = None,
) -> dict[str, dict[str, Any]]:
    """Every accelerated host's plan as the accel_host role's variables."""
    return {p.host: p.as_vars() for p in host_plans(deployment, facts, cat)}


def tenancy_vars(deployment: Deployment, facts: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The plans, the flavors and the SR-IOV networks of a deployment.

    The accelerator flavors are derived from one merged catalogue; a deployment that runs
    OpenStack gets its standard flavor set (SCS-0103) before them.
    """
    cat = catalogue_mod.for_deployment(deployment)
    standard = (
        standard_flavors(deployment.settings.standard_flavors) if deployment.has_openstack() else []
    )
    return {
        "accel_plans": plans(deployment, facts, cat),
        "accel_flavors": standard + flavors(deployment, cat),
        "accel_networks": networks(deployment),
    }


def networks(deployment: Deployment) -> list[dict[str, Any]]:
    """The declared SR-IOV provider networks, as the tenancy role and module take them."""
    return [
        {
            "name": name,
            "physnet": net.physnet,
            "type": net.type,
            "vlan": net.vlan,
            "cidr": str(net.cidr),
            "gateway": str(net.gateway) if net.gateway else None,
            "dhcp": net.dhcp,
            "shared": net.shared,
        }
        for name, net in sorted(deployment.settings.sriov_networks.items())
    ]
