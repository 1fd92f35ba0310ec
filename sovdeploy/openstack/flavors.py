"""The standard flavors every cloud offers: SCS-0103 (Sovereign Cloud Stack), v1.1.

SCS-0103 lists flavors that must exist on every SCS-compliant x86-64 cloud, with exact
vCPU, RAM and root-disk figures and the extra_specs ``scs:name-v1``, ``scs:name-v2``,
``scs:cpu-type`` and, for a flavor with a disk, ``scs:disk0-type``. Two mandatory
flavors promise SSD root disks (1000 sequential IOPS a VM, power-loss protection): they
are made only where the inventory says the compute hosts' local disks give that
(``sovdeploy_standard_flavors.ssd_root_disks``), because the property is a promise.
"""

from __future__ import annotations

from typing import Any

from sovdeploy.model import StandardFlavors

__all__ = ["SCS_0103_MANDATORY", "standard_flavors"]

#: (name, vCPUs, vCPU type, RAM GiB, root disk GB, disk type) as the standard's table.
SCS_0103_MANDATORY: tuple[tuple[str, int, str, int, int, str | None], ...] = (
    ("SCS-1V-4", 1, "shared-core", 4, 0, None),
    ("SCS-2V-8", 2, "shared-core", 8, 0, None),
    ("SCS-4V-16", 4, "shared-core", 16, 0, None),
    ("SCS-4V-16-100s", 4, "shared-core", 16, 100, "ssd"),
    ("SCS-8V-32", 8, "shared-core", 32, 0, None),
    ("SCS-1V-2", 1, "shared-core", 2, 0, None),
    ("SCS-2V-4", 2, "shared-core", 4, 0, None),
    ("SCS-2V-4-20s", 2, "shared-core", 4, 20, "ssd"),
    ("SCS-4V-8", 4, "shared-core", 8, 0, None),
    ("SCS-8V-16", 8, "shared-core", 16, 0, None),
    ("SCS-16V-32", 16, "shared-core", 32, 0, None),
    ("SCS-1V-8", 1, "shared-core", 8, 0, None),
    ("SCS-2V-16", 2, "shared-core", 16, 0, None),
    ("SCS-4V-32", 4, "shared-core", 32, 0, None),
    ("SCS-1L-1", 1, "crowded-core", 1, 0, None),
)


def _name_v1(name: str) -> str:
    """The v1 name: each dash after the first one a colon (SCS-2V-4-20s -> SCS-2V:4:20s)."""
    head, _, rest = name.partition("-")
    return f"{head}-{rest.replace('-', ':')}"


def standard_flavors(settings: StandardFlavors) -> list[dict[str, Any]]:
    """The flavors to create, in the tenancy module's shape (as ``accel_flavors``)."""
    if settings.set == "none":
        return []
    flavors = []
    for name, vcpus, cpu_type, ram_gib, disk, disk_type in SCS_0103_MANDATORY:
        if disk_type == "ssd" and not settings.ssd_root_disks:
            continue
        specs = {"scs:name-v1": _name_v1(name), "scs:name-v2": name, "scs:cpu-type": cpu_type}
        if disk_type is not None:
            specs["scs:disk0-type"] = disk_type
        flavors.append(
            {
                "name": name,
                "vcpus": vcpus,
                "ram": ram_gib * 1024,
                "disk": disk,
                "extra_specs": specs,
                "description": f"SCS-0103 standard flavor: {vcpus} vCPU ({cpu_type}), "
                f"{ram_gib} GiB" + (f", {disk} GB {disk_type} root disk" if disk else ""),
            }
        )
    return flavors


def left_out(settings: StandardFlavors) -> list[str]:
    """The mandatory flavors not made, by the inventory's word: say so, do not hide it."""
    if settings.set == "none":
        return [f[0] for f in SCS_0103_MANDATORY]
    if settings.ssd_root_disks:
        return []
    return [f[0] for f in SCS_0103_MANDATORY if f[5] == "ssd"]
