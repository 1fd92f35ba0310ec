"""tenancy: standard flavors, GPU/vGPU/DPDK flavors and SR-IOV networks.

Through OpenTofu and the OpenStack provider where the inventory declares a provider
mirror, else through the openstack.cloud collection, from the same data.
"""

from __future__ import annotations

from typing import Any

from sovdeploy.context import Context
from sovdeploy.openstack import flavors
from sovdeploy.phases.accelerators import accel_vars
from sovdeploy.steps import workspaces
from sovdeploy.steps.credentials import vault_values, write_clouds
from sovdeploy.steps.playbooks import playbook_phase


def tenancy_vars(ctx: Context) -> dict[str, Any]:
    """What the tenancy module or role makes: standard and accelerator flavors, networks."""
    return accel_vars(ctx)


def _left_out(ctx: Context) -> str:
    missing = flavors.left_out(ctx.deployment.settings.standard_flavors)
    return f"; SCS-0103 flavors not made: {', '.join(missing)}" if missing else ""


def run(ctx: Context) -> str:
    if not ctx.deployment.has_openstack():
        return "no OpenStack in this deployment"
    found = tenancy_vars(ctx)
    made = len(found["accel_flavors"]), len(found["accel_networks"])
    if not any(made):
        return "no standard flavor set, no accelerator, no SR-IOV network is declared"
    what = f"{made[0]} flavor(s), {made[1]} network(s)"
    mirror = workspaces.configured_mirror(ctx)
    if mirror is None:
        # No provider mirror: the same from the same data, through openstack.cloud.
        ran = playbook_phase("tenancy", check=False, extravars=lambda _ctx: found)(ctx)
        return f"{what} (openstack.cloud); {ran}{_left_out(ctx)}"
    values = vault_values(ctx)
    clouds = write_clouds(ctx, values)
    ws = workspaces.tenancy_workspace(
        ctx, found, mirror, clouds, password=str(values["keystone_admin_password"])
    )
    summary = workspaces.apply_workspace(ctx, ws)
    tool = ws.engine.name if ws.engine else "tofu"
    return f"{what} ({tool}: {summary.describe()}){_left_out(ctx)}"


def plan(ctx: Context) -> str:
    if not ctx.deployment.has_openstack():
        return "no OpenStack in this deployment"
    found = tenancy_vars(ctx)
    flavor_list, networks = found["accel_flavors"], found["accel_networks"]
    for flavor in flavor_list:
        specs = ", ".join(f"{k}={v}" for k, v in flavor["extra_specs"].items())
        ctx.progress.console.print(
            f"    flavor {flavor['name']}: {flavor['vcpus']} vCPU, {flavor['ram']} MB, "
            f"{flavor['disk']} GB; {specs}",
            markup=False,
        )
    for net in networks:
        segment = f"vlan {net['vlan']}" if net["type"] == "vlan" else "flat"
        ctx.progress.console.print(
            f"    network {net['name']}: {net['physnet']} {segment}, subnet {net['cidr']}",
            markup=False,
        )
    path = "OpenTofu" if workspaces.configured_mirror(ctx) else "openstack.cloud"
    return (
        f"would ensure {len(flavor_list)} flavor(s), {len(networks)} network(s) ({path})"
        + _left_out(ctx)
    )
