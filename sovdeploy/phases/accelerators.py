"""accelerators: kernel command line, vfio, hugepages and SR-IOV VFs on accelerated hosts."""

from __future__ import annotations

from typing import Any

from sovdeploy.context import Context
from sovdeploy.hardware import plan
from sovdeploy.steps.playbooks import playbook_phase


def accel_vars(ctx: Context) -> dict[str, Any]:
    """The derived plans and flavors of the deployment's hosts.

    ``accel_plans`` (one plan a host) is read by the host roles and nova; ``accel_flavors``
    are the flavors tenants ask for accelerators through.
    """
    return plan.tenancy_vars(ctx.deployment, ctx.inventory.facts)


def run(ctx: Context) -> str:
    found = accel_vars(ctx)
    if not found["accel_plans"]:
        return "no host declares GPUs, SR-IOV VFs or DPDK"
    return playbook_phase("accelerators", check=False, extravars=lambda _ctx: found)(ctx)
