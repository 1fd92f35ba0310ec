"""Generate synthetic production-shaped inventories of N hosts for the validate benchmark."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
GROUPS = ("control", "network", "compute", "storage", "k8s_worker", "logging")


def generate(dest: Path, hosts: int) -> Path:
    """Write an inventory with ``hosts`` hosts (one host_vars file each) under ``dest``."""
    shutil.copytree(ROOT / "inventories/example-eu/group_vars", dest / "group_vars")
    children: dict[str, dict[str, dict[str, None]]] = {g: {} for g in GROUPS}
    (dest / "host_vars").mkdir()
    for i in range(hosts):
        name = f"node{i:05d}"
        group = GROUPS[0] if i < 3 else GROUPS[1 + i % (len(GROUPS) - 1)]
        children[group][name] = None
        hv: dict[str, object] = {
            "ansible_host": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
            "sovdeploy_site": "ams1" if i % 2 else "fra1",
            "sovdeploy_bmc": {
                "driver": "redfish",
                "address": f"https://bmc-{name}.oob",
                "boot_mac": f"52:54:00:{i // 65536:02x}:{i // 256 % 256:02x}:{i % 256:02x}",
            },
        }
        if group in ("compute", "k8s_worker"):
            hv["sovdeploy_hardware"] = {
                "gpus": [{"pci_id": "10de:2330", "count": 8, "mode": "passthrough"}],
                "nics": [{"name": "ens1f0np0", "sriov_vfs": 16, "physnet": "physnet-sriov"}],
            }
        (dest / "host_vars" / f"{name}.yml").write_text(yaml.safe_dump(hv))
    doc = {"all": {"children": {g: {"hosts": h} for g, h in children.items()}}}
    (dest / "hosts.yml").write_text(yaml.safe_dump(doc))
    return dest
