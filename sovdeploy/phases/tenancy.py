"""tenancy: flavors for the GPUs, vGPU types and DPDK hosts; SR-IOV networks."""

from __future__ import annotations

from sovdeploy.context import Context
from sovdeploy.phases.accelerators import accel_vars
from sovdeploy.steps import workspaces
from sovdeploy.steps.credentials import vault_values, write_clouds
from sovdeploy.steps.playbooks import playbook_phase


def run(ctx: Context) -> str:
    if not ctx.deployment.has_openstack():
        return "no OpenStack in this deployment"
    found = accel_vars(ctx)
    made = [f["name"] for f in found["accel_flavors"]] + [
        n["name"] for n in found["accel_networks"]
    ]
    if not made:
        return "no compute host declares GPUs or DPDK, no SR-IOV network is declared"
    mirror = workspaces.configured_mirror(ctx)
    if mirror is None:
        # No provider mirror: the same from the same data, through openstack.cloud.
        ran = playbook_phase("tenancy", check=False, extravars=lambda _ctx: found)(ctx)
        return f"{', '.join(made)} (openstack.cloud); {ran}"
    clouds = write_clouds(ctx, vault_values(ctx))
    summary = workspaces.apply_workspace(
        ctx, workspaces.tenancy_workspace(ctx, found, mirror, clouds)
    )
    return f"{', '.join(made)} (terraform: {summary.describe()})"


def plan(ctx: Context) -> str:
    if not ctx.deployment.has_openstack():
        return "no OpenStack in this deployment"
    found = accel_vars(ctx)
    flavors, networks = found["accel_flavors"], found["accel_networks"]
    for flavor in flavors:
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
    path = "terraform" if workspaces.configured_mirror(ctx) else "openstack.cloud"
    return f"would ensure {len(flavors)} flavor(s), {len(networks)} network(s) ({path})"
