"""Write the recorded sysfs trees under tests/sysfs/ (run: python tests/sysfs/record.py).

Each tree is the part of /sys that ``sovdeploy.hostside.sysfs`` reads, for a host built from
public documentation of its parts: PCI IDs from the PCI ID repository, SR-IOV limits
from the NIC vendors' manuals (ConnectX-6 Dx: 127 VFs per port by default firmware
settings; E810: 256 VFs per device, shared by its ports), and the usual Linux layout of
a two-socket server. A unit test checks that the committed trees are what this script
writes, so a tree cannot drift from its description here.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
GIB_KIB = 1 << 20


@dataclass
class Dev:
    address: str
    pci_id: str
    cls: str
    node: int
    group: int | None
    driver: str | None = None
    net: tuple[str, ...] = ()
    totalvfs: int | None = None
    mdev: dict[str, str] = field(default_factory=dict)


@dataclass
class Tree:
    name: str
    description: str
    vendor: str
    iommu_units: tuple[str, ...]
    nodes: int
    cores_per_node: int
    threads: int
    memory_gib_per_node: int
    devices: list[Dev]
    extra_group_members: dict[int, list[str]] = field(default_factory=dict)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="ascii")


def _link(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def write(tree: Tree, root: Path) -> None:
    if root.exists():
        shutil.rmtree(root)
    _write(root / "DESCRIPTION", tree.description)
    cpu_base = root / "devices/system/cpu"
    per_thread = tree.nodes * tree.cores_per_node
    total = per_thread * tree.threads
    _write(cpu_base / "online", f"0-{total - 1}")
    ven = {"intel": "0000", "amd": "0002"}[tree.vendor]
    _write(cpu_base / "modalias", f"cpu:type:x86,ven{ven}fam0019mod0011:feature:,0000,0001")
    for node in range(tree.nodes):
        for t in range(tree.threads):
            for c in range(tree.cores_per_node):
                cpu = t * per_thread + node * tree.cores_per_node + c
                topo = cpu_base / f"cpu{cpu}/topology"
                _write(topo / "physical_package_id", str(node))
                _write(topo / "core_id", str(c))
        ranges = ",".join(
            f"{t * per_thread + node * tree.cores_per_node}-"
            f"{t * per_thread + node * tree.cores_per_node + tree.cores_per_node - 1}"
            for t in range(tree.threads)
        )
        node_dir = root / f"devices/system/node/node{node}"
        _write(node_dir / "cpulist", ranges)
        _write(
            node_dir / "meminfo",
            f"Node {node} MemTotal:       {tree.memory_gib_per_node * GIB_KIB} kB",
        )
        for size in ("2048", "1048576"):
            _write(node_dir / f"hugepages/hugepages-{size}kB/nr_hugepages", "0")
    for size in ("2048", "1048576"):
        pages = root / f"kernel/mm/hugepages/hugepages-{size}kB"
        _write(pages / "nr_hugepages", "0")
        _write(pages / "free_hugepages", "0")
    # Git keeps no empty directory: every directory the reader lists holds a file, as in /sys.
    for unit in tree.iommu_units:
        _write(root / "devices/virtual/iommu" / unit / "uevent", "")
        _link(root / "class/iommu" / unit, f"../../devices/virtual/iommu/{unit}")
    (root / "bus/pci/devices").mkdir(parents=True)
    (root / "kernel/iommu_groups").mkdir(parents=True, exist_ok=True)
    for dev in tree.devices:
        d = root / "bus/pci/devices" / dev.address
        vendor, device = dev.pci_id.split(":")
        _write(d / "vendor", f"0x{vendor}")
        _write(d / "device", f"0x{device}")
        _write(d / "class", f"0x{dev.cls}00")
        _write(d / "numa_node", str(dev.node))
        if dev.driver:
            _link(d / "driver", f"../../../../bus/pci/drivers/{dev.driver}")
        for index, ifname in enumerate(dev.net):
            bus, slot = int(dev.address[5:7], 16), int(dev.address[8:10], 16)
            mac = f"0c:42:a1:{bus:02x}:{slot:02x}:{index:02x}"
            _write(d / "net" / ifname / "address", mac)
        if dev.totalvfs is not None:
            _write(d / "sriov_totalvfs", str(dev.totalvfs))
            _write(d / "sriov_numvfs", "0")
        for type_id, type_name in dev.mdev.items():
            _write(d / "mdev_supported_types" / type_id / "name", type_name)
            _write(d / "mdev_supported_types" / type_id / "available_instances", "1")
        if dev.group is not None:
            _link(d / "iommu_group", f"../../../../kernel/iommu_groups/{dev.group}")
            _link(
                root / f"kernel/iommu_groups/{dev.group}/devices/{dev.address}",
                f"../../../../bus/pci/devices/{dev.address}",
            )


def _gpus(pci_id: str, driver: str | None, count: int, per_node: int) -> list[Dev]:
    """GPUs behind their own PCIe switch ports: one IOMMU group each (ACS on)."""
    buses = ["18", "2a", "3a", "5d", "9a", "ab", "ba", "db"]
    return [
        Dev(f"0000:{buses[i]}:00.0", pci_id, "0302", i // per_node, 20 + i, driver)
        for i in range(count)
    ]


def trees() -> list[Tree]:
    h100 = _gpus("10de:2330", "vfio-pci", 8, 4)
    nvswitch = [
        Dev(f"0000:{b}:00.0", "10de:22a3", "0680", 1, 40 + i, "nvidia")
        for i, b in enumerate(["c1", "c2", "c3", "c4"])
    ]
    cx6 = [
        Dev("0000:31:00.0", "15b3:101d", "0200", 0, 10, "mlx5_core", ("ens1f0np0",), 127),
        Dev("0000:31:00.1", "15b3:101d", "0200", 0, 11, "mlx5_core", ("ens1f1np1",), 127),
    ]
    bridges = [
        Dev("0000:00:00.0", "8086:09a2", "0600", 0, 1),
        Dev("0000:16:02.0", "8086:347a", "0604", 0, 20),
    ]
    shared = _gpus("10de:2330", "vfio-pci", 4, 2)
    nvme = Dev("0000:2a:00.1", "144d:a80a", "0108", 0, 21, "nvme")
    e810 = [
        Dev("0000:c1:00.0", "8086:159b", "0200", 1, 60, "ice", ("ens2f0np0",), 256),
        Dev("0000:c1:00.1", "8086:159b", "0200", 1, 61, "ice", ("ens2f1np1",), 256),
    ]
    return [
        Tree(
            "gpu-h100",
            "Two-socket Intel HGX H100 host: 8 x H100 SXM5 80GB (10de:2330) bound to vfio-pci, "
            "each in its own IOMMU group; 4 NVSwitches; a dual-port ConnectX-6 Dx (127 VFs a "
            "port) on NUMA node 0; 2 NUMA nodes x 16 cores x 2 threads; 1 TiB.",
            "intel",
            ("dmar0", "dmar1"),
            2,
            16,
            2,
            512,
            [bridges[0], *h100, *nvswitch, *cx6],
        ),
        Tree(
            "gpu-h100-shared-group",
            "Like gpu-h100 with 4 GPUs, but the GPU at 0000:2a:00.0 shares IOMMU group 21 with "
            "an NVMe controller (no ACS on that switch port): not clean for passthrough. The "
            "bridge in group 20 is accepted.",
            "intel",
            ("dmar0", "dmar1"),
            2,
            16,
            2,
            512,
            [bridges[0], bridges[1], *shared, nvme, *cx6],
        ),
        Tree(
            "dpdk-e810",
            "Two-socket AMD network node: a dual-port Intel E810-XXV (256 VFs) on NUMA node 1; "
            "2 NUMA nodes x 8 cores x 2 threads; 128 GiB.",
            "amd",
            ("ivhd0",),
            2,
            8,
            2,
            64,
            [Dev("0000:00:00.0", "1022:14a4", "0600", 0, 1), *e810],
        ),
        Tree(
            "iommu-off",
            "One-socket Intel host with 2 x L40S (10de:26b9) and the IOMMU off in firmware: "
            "no DMAR unit, no IOMMU groups.",
            "intel",
            (),
            1,
            16,
            2,
            256,
            [
                Dev("0000:17:00.0", "10de:26b9", "0302", 0, None, "nouveau"),
                Dev("0000:65:00.0", "10de:26b9", "0302", 0, None, "nouveau"),
            ],
        ),
        Tree(
            "mi300x",
            "Two-socket AMD host with 8 x Instinct MI300X (1002:74a1), each in its own IOMMU "
            "group; 2 NUMA nodes x 32 cores x 2 threads; 1.5 TiB.",
            "amd",
            ("ivhd0", "ivhd1"),
            2,
            32,
            2,
            768,
            _gpus("1002:74a1", "amdgpu", 8, 4),
        ),
    ]


def main() -> int:
    for tree in trees():
        write(tree, HERE / tree.name)
        print(f"wrote {HERE / tree.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
