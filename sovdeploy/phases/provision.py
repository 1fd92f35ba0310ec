"""provision: create or enroll the hosts (OpenTofu)."""

from __future__ import annotations

from sovdeploy.context import Context
from sovdeploy.engines import terraform
from sovdeploy.errors import UsageError
from sovdeploy.model import Provisioner
from sovdeploy.steps import workspaces


def run(ctx: Context) -> str:
    ws = workspaces.workspace(ctx)
    summary = workspaces.apply_workspace(ctx, ws)
    workspaces.write_generated_inventory(ctx, terraform.outputs(ws))
    return f"{ws.engine.name if ws.engine else 'tofu'}: {summary.describe()}"


def plan(ctx: Context) -> str:
    if ctx.deployment.settings.provisioner is Provisioner.BAREMETAL:
        # A plan is a preview: say what cannot be shown, and go on to the next phase.
        try:
            mirror = workspaces.provider_mirror(ctx)
        except UsageError as exc:
            return f"skipped: {exc}"
        if not mirror.is_dir():
            return (
                f"skipped: the Terraform provider mirror {mirror} is not on this machine "
                "(bare-metal provisioning needs the Ironic provider from it)"
            )
    ws = workspaces.workspace(ctx)
    terraform.init(ws)
    summary = terraform.plan(ws)
    for verb, items in (("+", summary.add), ("~", summary.change), ("-", summary.destroy)):
        for address in items:
            ctx.progress.console.print(f"    {verb} {address}", markup=False)
    return f"{ws.engine.name if ws.engine else 'tofu'} would: {summary.describe()}"
