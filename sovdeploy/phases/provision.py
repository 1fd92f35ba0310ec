"""provision: create the sandbox's hosts (OpenTofu), or enroll and deploy bare metal (Ironic)."""

from __future__ import annotations

from typing import Any

from sovdeploy.context import Context
from sovdeploy.engines import terraform
from sovdeploy.model import Provisioner
from sovdeploy.steps import workspaces
from sovdeploy.steps.credentials import bmc_credentials_problem, ensure_ssh_key
from sovdeploy.steps.playbooks import playbook_phase


def _baremetal_vars(ctx: Context) -> dict[str, Any]:
    """What playbooks/baremetal.yml needs besides the inventory and the vault (no secret)."""
    ensure_ssh_key(ctx.state)
    public = ctx.state.ssh_key.with_suffix(".pub")
    return {"baremetal_ssh_public_key": public.read_text().strip()}


def run(ctx: Context) -> str:
    if ctx.deployment.settings.provisioner is Provisioner.BAREMETAL:
        bmc_credentials_problem(ctx)
        ran = playbook_phase("baremetal", check=False, extravars=_baremetal_vars)(ctx)
        workspaces.write_generated_inventory(ctx, {})
        return f"Ironic (openstack.cloud): {ran}"
    ws = workspaces.workspace(ctx)
    summary = workspaces.apply_workspace(ctx, ws)
    workspaces.write_generated_inventory(ctx, terraform.outputs(ws))
    return f"{ws.engine.name if ws.engine else 'tofu'}: {summary.describe()}"


def plan(ctx: Context) -> str:
    if ctx.deployment.settings.provisioner is Provisioner.BAREMETAL:
        # A preview: name what would be enrolled, without asking Ironic.
        s = ctx.deployment.settings
        assert s.baremetal is not None  # the inventory's validation requires it
        for host in ctx.deployment.hosts:
            if host.bmc is not None:
                ctx.progress.console.print(
                    f"    + {host.name}: {host.bmc.driver} {host.bmc.address}, boots from "
                    f"{host.bmc.boot_mac}",
                    markup=False,
                )
        count = sum(1 for h in ctx.deployment.hosts if h.bmc is not None)
        return f"would enroll {count} host(s) in Ironic and deploy {s.baremetal.image.url}"
    ws = workspaces.workspace(ctx)
    terraform.init(ws)
    summary = terraform.plan(ws)
    for verb, items in (("+", summary.add), ("~", summary.change), ("-", summary.destroy)):
        for address in items:
            ctx.progress.console.print(f"    {verb} {address}", markup=False)
    return f"{ws.engine.name if ws.engine else 'tofu'} would: {summary.describe()}"
