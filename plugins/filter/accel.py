"""Filters that turn sovdeploy's per-host accelerator plans into nova.conf sections.

sovdeploy passes ``accel_plans`` (host name -> plan, as ``sovdeploy validate --json``
prints them). nova-api resolves a flavor's PCI alias, so every nova host needs the
aliases of the whole deployment; a compute host also needs its own device_spec, vGPU
types and CPU sets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def accel_aliases(plans: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Every PCI alias of the deployment, once each, sorted by name."""
    seen: dict[str, dict[str, Any]] = {}
    for plan in (plans or {}).values():
        for alias in ((plan or {}).get("nova") or {}).get("pci", {}).get("alias", []):
            seen.setdefault(json.dumps(alias, sort_keys=True), alias)
    return sorted(seen.values(), key=lambda a: (str(a.get("name")), json.dumps(a, sort_keys=True)))


def sriov_physnets(plans: Mapping[str, Any] | None) -> list[str]:
    """The physical networks of every host's SR-IOV VFs, once each, sorted."""
    return sorted(
        {
            vfs["physnet"]
            for plan in (plans or {}).values()
            for vfs in (plan or {}).get("vfs", [])
            if vfs.get("physnet")
        }
    )


def nova_accel_conf(
    plan: Mapping[str, Any] | None,
    aliases: list[dict[str, Any]],
    *,
    compute: bool,
    mdev_types: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The nova.conf sections a host's plan (and the deployment's aliases) call for.

    Args:
        plan: the host's plan (its ``nova`` key is read); empty for a host without one.
        aliases: ``accel_aliases`` of the deployment.
        compute: whether the host runs nova-compute (device_spec, vGPU, CPU sets).
        mdev_types: the host's mdev type ID of each of the plan's vGPU type names, once
            resolved; each ID gets a ``[mdev_<id>]`` section naming the type's resource class.

    """
    nova = dict((plan or {}).get("nova") or {})
    out: dict[str, dict[str, Any]] = {}
    pci: dict[str, Any] = {}
    if aliases:
        pci["alias"] = list(aliases)
        # The scheduler asks Placement for the aliased devices, not its PCI tracker.
        out["filter_scheduler"] = {"pci_in_placement": True}
    if compute and nova.get("pci"):
        pci["device_spec"] = list(nova["pci"].get("device_spec", []))
        if nova["pci"].get("report_in_placement"):
            pci["report_in_placement"] = True
    if pci:
        out["pci"] = pci
    if compute and mdev_types:
        classes = ((nova.get("devices") or {}).get("mdev_classes")) or {}
        out["devices"] = {"enabled_mdev_types": [mdev_types[n] for n in sorted(mdev_types)]}
        for name, type_id in sorted(mdev_types.items()):
            if name in classes:
                out[f"mdev_{type_id}"] = {"mdev_class": classes[name]}
    if compute and nova.get("compute"):
        out["compute"] = dict(nova["compute"])
    return out


def mdev_type_ids(names: list[str], offered: list[str]) -> dict[str, str | None]:
    """Each vGPU type name's mdev type ID on this host (None where none is offered).

    ``offered`` holds tab-separated ``<type id> <name>`` lines from the host's mdev types;
    a type's name is the vGPU type, or ends with it after a word ("NVIDIA L40S-12C").
    """
    pairs = [line.split("\t", 1) for line in offered if "\t" in line]
    return {
        name: next(
            (
                tid
                for tid, text in pairs
                if text.strip() == name or text.strip().endswith(" " + name)
            ),
            None,
        )
        for name in names
    }


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "accel_aliases": accel_aliases,
            "sriov_physnets": sriov_physnets,
            "nova_accel_conf": nova_accel_conf,
            "mdev_type_ids": mdev_type_ids,
        }
