"""The Terraform workspaces of the deployment: provision's and tenancy's, and their apply."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from sovdeploy.context import Context
from sovdeploy.engines import terraform
from sovdeploy.errors import UsageError
from sovdeploy.fsutil import atomic_write
from sovdeploy.kubernetes.artifacts import cluster_hosts
from sovdeploy.model import Provisioner
from sovdeploy.paths import containers_conf, project_root
from sovdeploy.supply.build import iac_engine


def engine(ctx: Context) -> terraform.Engine:
    """The deployment's IaC engine: OpenTofu built into the mirror, else the one on PATH."""
    return iac_engine(ctx.deployment)


def lock_file(module: Path) -> Path | None:
    """The module's committed dependency lock file, where it uses providers."""
    lock = module / ".terraform.lock.hcl"
    return lock if lock.is_file() else None


def workspace(ctx: Context) -> terraform.Workspace:
    """The Terraform workspace of the sandbox provisioner (podman containers, QEMU VMs)."""
    s = ctx.deployment.settings
    modules = project_root() / "terraform" / "modules"
    backend = (s.terraform_backend.type, dict(s.terraform_backend.config))
    hosts: list[dict[str, Any]] = [
        {"name": h.name, "groups": list(h.roles)} for h in ctx.deployment.hosts
    ]
    if s.provisioner is not Provisioner.SANDBOX:
        raise UsageError(
            "the baremetal provisioner enrolls and deploys hosts through Ironic with the "
            "baremetal role (playbooks/baremetal.yml), not a Terraform module"
        )
    sb = s.sandbox
    nodes = {h.name for h in cluster_hosts(ctx.deployment)}
    for host in hosts:
        host["vm"] = host["name"] in sb.vms
        host["container_runtime"] = host["name"] in nodes
    return terraform.Workspace(
        workdir=ctx.state.terraform_dir("sandbox_hosts"),
        module=modules / "sandbox_hosts",
        inputs={
            "deployment": s.deployment,
            "hosts": hosts,
            # Resolved, so that a new image recreates the VMs built on the old one.
            "vm_image": str(Path(sb.vm_image).resolve()) if sb.vms else "",
            "vm_memory": sb.vm_memory,
            "network": sb.network,
            "subnet": sb.subnet,
            "image": sb.image,
            "privileged": sb.privileged,
            "apt_cache_dir": sb.apt_cache or "",
            "ssh_authorized_keys": str(ctx.state.ssh_key.parent / "authorized_keys"),
            "containers_conf": os.environ.get("CONTAINERS_CONF", str(containers_conf())),
        },
        backend=backend,
        engine=engine(ctx),
    )


def provider_mirror(ctx: Context) -> Path:
    env = os.environ.get("SOVDEPLOY_TF_PLUGIN_MIRROR")
    if env:
        return Path(env)
    for source in ctx.deployment.settings.artifact_sources.values():
        if source.kind == "terraform_providers":
            return Path(source.url)
    raise UsageError(
        "no provider mirror: declare an artifact source of kind 'terraform_providers' "
        "(a filesystem mirror path; `sovdeploy mirror build` fills the deployer's own)"
    )


def configured_mirror(ctx: Context) -> Path | None:
    """The provider mirror, where one is declared and on this machine."""
    try:
        mirror = provider_mirror(ctx)
    except UsageError:
        return None
    return mirror if mirror.is_dir() else None


def apply_workspace(ctx: Context, ws: terraform.Workspace) -> terraform.PlanSummary:
    """init, plan and (when it changes something) apply ``ws``, each step recorded."""
    tool = ws.engine.name if ws.engine else "tofu"
    ctx.progress.step(f"{tool} init")
    terraform.init(ws, on_line=ctx.progress.step)
    ctx.progress.step(f"{tool} plan")
    summary = terraform.plan(ws, on_line=ctx.progress.step)
    ctx.record_artifact(ws.workdir / "main.tf.json")
    ctx.run.record(
        "terraform_plan",
        module=ws.module.name,
        add=summary.add,
        change=summary.change,
        destroy=summary.destroy,
    )
    if summary.changes:
        ctx.progress.step(f"{tool} apply: {summary.describe()}")
        terraform.apply(ws, on_line=ctx.progress.step)
        ctx.run.record("terraform_apply", module=ws.module.name, summary=summary.describe())
    return summary


def tenancy_workspace(
    ctx: Context, found: dict[str, Any], mirror: Path, clouds: tuple[Path, Path], password: str
) -> terraform.Workspace:
    """terraform/modules/tenancy, reaching the cloud as the operator does.

    ``clouds`` are the clouds.yaml and secure.yaml that ``write_clouds`` wrote. The
    OpenStack provider (gophercloud) reads clouds.yaml from OS_CLIENT_CONFIG_FILE but
    looks for secure.yaml only in the working directory and ~/.config/openstack, so the
    admin password reaches it as OS_PASSWORD, in the engine's environment alone (never
    on its command line, in the root module or in the plan).
    """
    s = ctx.deployment.settings
    module = project_root() / "terraform" / "modules" / "tenancy"
    return terraform.Workspace(
        workdir=ctx.state.terraform_dir("tenancy"),
        module=module,
        inputs={"flavors": found["accel_flavors"], "networks": found["accel_networks"]},
        backend=(s.terraform_backend.type, dict(s.terraform_backend.config)),
        plugin_mirror=mirror,
        engine=engine(ctx),
        lock_file=lock_file(module),
        env={
            "OS_CLOUD": s.deployment,
            "OS_CLIENT_CONFIG_FILE": str(clouds[0]),
            "OS_CLIENT_SECURE_FILE": str(clouds[1]),
            "OS_PASSWORD": password,
        },
    )


def write_generated_inventory(ctx: Context, outputs: dict[str, Any]) -> None:
    """Layer the provisioned addresses (and, in the sandbox, the SSH key) over the inventory."""
    hosts: dict[str, dict[str, Any]] = {}
    common: dict[str, Any] = {}
    if ctx.deployment.settings.provisioner is Provisioner.SANDBOX:
        for name, host in outputs.get("hosts", {}).items():
            hosts[name] = {"ansible_host": host["address"]}
        # Sandbox containers get new host keys whenever they are recreated.
        common = {
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(ctx.state.ssh_key),
            "ansible_ssh_common_args": (
                "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
            ),
        }
    doc = {"all": {"hosts": hosts, "vars": common}}
    header = "# Generated by sovdeploy's provision phase; do not edit.\n"
    atomic_write(ctx.state.generated_inventory, header + yaml.safe_dump(doc, sort_keys=True))
    ctx.record_artifact(ctx.state.generated_inventory)
