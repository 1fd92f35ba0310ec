"""Read a host's hardware from sysfs into plain JSON-able data.

This module uses the standard library only: ``sovdeploy discover`` imports it, and
Ansible copies it to inventory hosts and runs it there (``ansible.builtin.script``),
so the same code reads a recorded tree, this machine and a remote host.

Run as a script it prints the facts of ``--root`` (default ``/sys``) as JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: The format of the facts; bumped when a key changes meaning.
FORMAT = 1


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None


def _int(path: Path, base: int = 10) -> int | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return int(text, base)
    except ValueError:
        return None


def _link_name(path: Path) -> str | None:
    try:
        return path.readlink().name
    except OSError:
        return None


def parse_cpulist(text: str) -> list[int]:
    """``0-3,8,10-11`` as a sorted list of CPU numbers."""
    cpus: set[int] = set()
    for item in text.split(","):
        part = item.strip()
        if not part:
            continue
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return sorted(cpus)


def format_cpulist(cpus: Iterable[int]) -> str:
    """The shortest ``a-b,c`` form of a set of CPU numbers."""
    ordered = sorted(set(cpus))
    ranges: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        ranges.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(ranges)


def _pci_device(dev: Path) -> dict[str, Any]:
    vendor = (_read(dev / "vendor") or "0x0000").removeprefix("0x")
    device = (_read(dev / "device") or "0x0000").removeprefix("0x")
    numa = _int(dev / "numa_node")
    group = _link_name(dev / "iommu_group")
    entry: dict[str, Any] = {
        "address": dev.name,
        "id": f"{vendor}:{device}".lower(),
        "class": (_read(dev / "class") or "0x000000").removeprefix("0x")[:4],
        "numa_node": numa if numa is not None and numa >= 0 else None,
        "iommu_group": int(group) if group is not None and group.isdigit() else None,
        "driver": _link_name(dev / "driver"),
        # A virtio NIC's interface sits one level down (virtio0/net/eth0).
        "net": sorted({p.name for p in [*dev.glob("net/*"), *dev.glob("virtio*/net/*")]}),
    }
    total = _int(dev / "sriov_totalvfs")
    if total is not None:
        entry["sriov_totalvfs"] = total
        entry["sriov_numvfs"] = _int(dev / "sriov_numvfs") or 0
    physfn = _link_name(dev / "physfn")
    if physfn:
        entry["physfn"] = physfn
    types = dev / "mdev_supported_types"
    if types.is_dir():
        entry["mdev_types"] = {
            t.name: {
                "name": _read(t / "name") or t.name,
                "available_instances": _int(t / "available_instances") or 0,
            }
            for t in sorted(types.iterdir())
        }
    return entry


def _cpus(root: Path) -> list[dict[str, int]]:
    base = root / "devices/system/cpu"
    online = _read(base / "online")
    numbers = (
        parse_cpulist(online)
        if online
        else sorted(int(p.name[3:]) for p in base.glob("cpu[0-9]*") if p.name[3:].isdigit())
    )
    nodes: dict[int, int] = {}
    for node_dir in (root / "devices/system/node").glob("node[0-9]*"):
        for cpu in parse_cpulist(_read(node_dir / "cpulist") or ""):
            nodes[cpu] = int(node_dir.name[4:])
    out = []
    for cpu in numbers:
        topo = base / f"cpu{cpu}/topology"
        out.append(
            {
                "cpu": cpu,
                "package": _int(topo / "physical_package_id") or 0,
                "core": _int(topo / "core_id") or 0,
                "node": nodes.get(cpu, 0),
            }
        )
    return out


#: x86 vendor numbers in the CPU modalias (the kernel's X86_VENDOR_*).
_X86_VENDORS = {"0000": "intel", "0002": "amd"}
_MODALIAS_VENDOR = re.compile(r"type:x86,ven(?P<ven>[0-9A-Fa-f]{4})")


def _cpu_vendor(root: Path) -> str | None:
    match = _MODALIAS_VENDOR.search(_read(root / "devices/system/cpu/modalias") or "")
    return _X86_VENDORS.get(match["ven"]) if match else None


_MEMTOTAL = re.compile(r"MemTotal:\s+(\d+) kB")


def _nodes(root: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for node_dir in sorted((root / "devices/system/node").glob("node[0-9]*")):
        match = _MEMTOTAL.search(_read(node_dir / "meminfo") or "")
        pages = {
            d.name.removeprefix("hugepages-").removesuffix("kB"): _int(d / "nr_hugepages") or 0
            for d in sorted((node_dir / "hugepages").glob("hugepages-*kB"))
        }
        out[node_dir.name[4:]] = {
            "cpus": _read(node_dir / "cpulist") or "",
            "memory_kib": int(match.group(1)) if match else None,
            "hugepages": pages,
        }
    return out


def _hugepages(root: Path) -> dict[str, dict[str, int]]:
    return {
        d.name.removeprefix("hugepages-").removesuffix("kB"): {
            "total": _int(d / "nr_hugepages") or 0,
            "free": _int(d / "free_hugepages") or 0,
        }
        for d in sorted((root / "kernel/mm/hugepages").glob("hugepages-*kB"))
    }


def _iommu(root: Path) -> dict[str, Any]:
    units = sorted(p.name for p in (root / "class/iommu").glob("*"))
    groups = {
        g.name: sorted(d.name for d in (g / "devices").iterdir())
        for g in sorted((root / "kernel/iommu_groups").glob("*"), key=lambda p: int(p.name))
        if (g / "devices").is_dir()
    }
    kind = (
        "intel"
        if any(u.startswith("dmar") for u in units)
        else "amd"
        if any(u.startswith("ivhd") for u in units)
        else None
    )
    return {"enabled": bool(groups), "kind": kind, "units": units, "groups": groups}


def read(root: Path | str = "/sys") -> dict[str, Any]:
    """Everything sovdeploy needs to know about a host's hardware, from ``root``.

    Raises:
        FileNotFoundError: when ``root`` does not look like a sysfs tree.

    """
    root = Path(root)
    missing = [d for d in ("bus/pci/devices", "devices/system/cpu") if not (root / d).is_dir()]
    if missing:
        raise FileNotFoundError(f"{root} is not a sysfs tree (no {' and no '.join(missing)})")
    return {
        "format": FORMAT,
        "root": str(root),
        "pci": [_pci_device(d) for d in sorted((root / "bus/pci/devices").iterdir())],
        "cpu_vendor": _cpu_vendor(root),
        "cpus": _cpus(root),
        "nodes": _nodes(root),
        "hugepages": _hugepages(root),
        "iommu": _iommu(root),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/sys", help="sysfs root (default /sys)")
    args = parser.parse_args(argv)
    try:
        facts = read(args.root)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    json.dump(facts, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
