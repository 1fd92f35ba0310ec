"""openstack: CA, MariaDB, RabbitMQ, memcached, HAProxy and the OpenStack services."""

from __future__ import annotations

from sovdeploy.context import Context
from sovdeploy.phases.accelerators import accel_vars
from sovdeploy.steps.credentials import vault_values, write_clouds
from sovdeploy.steps.playbooks import playbook_phase


def run(ctx: Context) -> str:
    # nova reads the accelerator plans: PCI aliases and device specs, vGPU types, CPU sets.
    summary = playbook_phase("openstack", check=False, extravars=accel_vars)(ctx)
    if ctx.deployment.has_openstack():
        clouds, secure = write_clouds(ctx, vault_values(ctx))
        ctx.record_artifact(clouds, secure)
        summary += f"; credentials in {clouds}"
    return summary
